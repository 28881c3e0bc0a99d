"""r1lab's rollout engine against Hugging Face `generate` on one device (run by bench/gpu_check.sh on a GPU;
runs on a CPU too).

    python bench/gpu_engine_check.py [--device cuda] [--precision fp32|bf16]

1. Greedy: the same prompts, 32 new tokens, r1lab's engine (batched, KV cache) and HF `generate` one
   prompt at a time; the token ids must be equal (fp32; under bf16 the share of equal tokens is printed).
2. Rollout speed: 8 prompts x 8 samples x 64 sampled tokens (EOS disabled), r1lab's engine vs HF
   `generate`, the same run, ratio printed.
Exit status 1 when greedy tokens differ in fp32.
"""

import argparse
import sys
import time

import torch

from r1lab.engine import SamplingParams, generate
from r1lab.model import load_model, load_tokenizer
from r1lab.template import render_prompt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    args = ap.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else torch.backends.cpu.get_cpu_capability()
    print(f"device {device} ({name}), torch {torch.__version__}, precision {args.precision}")
    tok, model = load_tokenizer("base"), load_model("base", device=device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    prompts = [tok(render_prompt(f"what is {1234 + 97 * i} times {3 + i % 7}", "r1-zero", tok),
                   add_special_tokens=False)["input_ids"] for i in range(8)]

    ours = generate(model, prompts, 1, SamplingParams(32, 0.0), [0] * len(prompts), tok.eos_token_id,
                    tok.pad_token_id, autocast=amp).completions
    same = total = 0
    for p, mine in zip(prompts, ours):
        ids = torch.tensor([p], device=device)
        with amp:
            ref = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=32, do_sample=False,
                                 eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)[0, len(p):].tolist()
        same += sum(a == b for a, b in zip(mine, ref))
        total += max(len(mine), len(ref))
    print(f"greedy tokens equal to HF generate: {same}/{total}")

    params = SamplingParams(64, 1.0)
    timings = {"r1lab": [], "hf": []}
    for _ in range(3):
        _sync(device)
        t0 = time.perf_counter()
        generate(model, prompts, 8, params, list(range(8)), eos_id=-1, pad_id=tok.pad_token_id, autocast=amp)
        _sync(device)
        timings["r1lab"].append(time.perf_counter() - t0)
        ids, mask = _left_padded(prompts, tok.pad_token_id, device)
        t0 = time.perf_counter()
        with amp:
            model.generate(ids, attention_mask=mask, max_new_tokens=64, min_new_tokens=64, do_sample=True,
                           num_return_sequences=8, pad_token_id=tok.pad_token_id)
        _sync(device)
        timings["hf"].append(time.perf_counter() - t0)
    ours_s, hf_s = min(timings["r1lab"]), min(timings["hf"])
    print(f"rollout 8 x 8 x 64 tokens: r1lab {8 * 8 * 64 / ours_s:.0f} tok/s, HF generate {8 * 8 * 64 / hf_s:.0f} "
          f"tok/s, r1lab/HF {hf_s / ours_s:.2f}x (best of 3)")
    return 0 if same == total or args.precision == "bf16" else 1


def _left_padded(prompts, pad_id, device):
    width = max(map(len, prompts))
    ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    return ids, mask


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    sys.exit(main())
