"""r1lab's GRPO step against TRL's GRPOTrainer: same model weights, data, rewards and settings, same run.

    python bench/compare_trl.py                                   # everything: both models, fp32 + bf16
    python bench/compare_trl.py --precisions fp32 --steps 20      # fp32 only, 20 measured steps per side
    python bench/compare_trl.py --models qwen --steps 1 --warmup 1 --precisions fp32 --threads 1   # smoke test
    python bench/compare_trl.py --scaling --models none           # only r1lab's scaling table

Models (each is given to both sides from the same folder):
  qwen  a randomly initialised Qwen2 (hidden 256, 4 layers, 4 heads, tied embeddings, ~4.33M parameters)
        with a byte-level BPE tokenizer (516 tokens) trained here, and 512 arithmetic prompts;
  base  r1lab's shipped base model (a 0.9M Llama) with toy-task prompts in the R1-Zero template.
Both are built in a scratch folder (--workdir, default: a temporary folder removed at the end).

Workload, both sides: 8 prompts x 8 samples, <= 64 new tokens, temperature 1, beta 0.04 (k3 KL to a frozen
reference), one update per batch (mu = 1), seq-mean loss, clip 0.2, AdamW lr 1e-4 (betas 0.9/0.99, constant),
grad-norm clip 1.0, no activation checkpointing, rewards format (weight 0.5) + accuracy (weight 1) computed by
r1lab's own rule functions on both sides.

How it measures: per (model, precision) the parent starts one child process per side (fresh interpreter, so
one side's memory never counts for the other) and then drives them one step at a time, alternating
TRL, r1lab, r1lab, TRL, ... so that machine drift hits both sides alike. A child reports a step only when it
is idle again, so the other side never runs while it is busy. Peak RSS is each child's high-water mark.

The last line printed is one JSON object (rollout_vs_hf: the smaller of the two models' fp32 rollout ratios;
speedups, RSS ratio, r1lab's share of the matmul peak).
TRL is an optional dependency (pyproject extra `bench`): the script says how to install it if missing.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRL_TESTED = "1.16.0"
# TRL pinned to 1.16.x: the phase timers wrap private GRPOTrainer methods, which other versions may rename
BENCH_EXTRA = 'bench = ["trl>=1.16,<1.17", "datasets>=4.7", "accelerate>=1.10.1"]   # bench/compare_trl.py'
PHASES = ("gen", "ref", "reward", "train", "other")
PHASE_NAMES = {"gen": "generation", "ref": "ref log-probs", "reward": "reward", "train": "train (fwd+bwd+opt)",
               "other": "other"}
REWARD_WEIGHTS = {"accuracy": 1.0, "format": 0.5}  # r1lab's default R1-Zero rule reward


# --------------------------------------------------------------------------------------------------
# The machine


def cpu_flags() -> set[str]:
    """CPU feature flags from /proc/cpuinfo (empty where there is none): bf16 speed depends on them."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_note() -> str | None:
    """A warning when bf16 matmuls have no hardware path (AVX512-BF16 or AMX) and are emulated."""
    flags = cpu_flags()
    if flags and not ({"avx512_bf16", "amx_bf16"} & flags):
        return ("this CPU has neither AVX512-BF16 nor AMX-BF16: bf16 matmuls are emulated (typically ~100x "
                "slower than fp32), so bf16 figures here say nothing about bf16 on a CPU that has them")
    return None


def matmul_peak(dtype_name: str, threads: int) -> dict:
    """Median FLOP/s of a square matmul in `dtype_name`: the ceiling a step's achieved FLOP/s is compared to.

    Emulated bf16 is very sensitive to operand layout (on an AVX2 CPU: ~1 GFLOP/s for a @ b, ~10 for a @ b.T as
    in nn.Linear, ~20 for a.T @ b), so the three layouts are probed at 512 and the fastest is the peak. The target
    size is 2048; where one product would take more than ~2 s, a smaller square is used (and reported)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    layouts = {"a@b": lambda a, b: a @ b, "a@b.T": lambda a, b: a @ b.t(), "a.T@b": lambda a, b: a.t() @ b}

    def timing(n: int, layout: str, reps: int) -> float:
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        layouts[layout](a, b)  # first call of a shape/layout may build kernels
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            layouts[layout](a, b)
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    probes = {name: timing(512, name, 2) for name in layouts}
    layout = min(probes, key=probes.get)
    n = 2048
    while n > 512 and probes[layout] * (n / 512) ** 3 > 2.0:
        n //= 2
    reps = 5 if probes[layout] * (n / 512) ** 3 < 0.5 else 3
    t = timing(n, layout, reps)
    return {"dtype": dtype_name, "n": n, "reps": reps, "layout": layout, "seconds": t, "flops": 2 * n ** 3 / t,
            "probes_gflops": {k: 2 * 512 ** 3 / v / 1e9 for k, v in probes.items()}}


# --------------------------------------------------------------------------------------------------
# Scratch set-up: tokenizer, random Qwen2, prompts


QWEN_PROMPT = ("<|user|>Work it out between <think> </think>, then put just the number between <answer> "
               "</answer>. Problem: {a} {op} {b}\n<|assistant|>")
QWEN_SPECIAL = ["<pad>", "<eos>", "<|user|>", "<|assistant|>"]
QWEN_TAGS = ["<think>", "</think>", "<answer>", "</answer>"]  # ordinary added tokens: kept by skip_special_tokens


def arithmetic_problem(rng: random.Random) -> tuple[int, str, int, int]:
    a, b, op = rng.randint(1, 99), rng.randint(1, 99), rng.choice("+-*")
    return a, op, b, {"+": a + b, "-": a - b, "*": a * b}[op]


def training_text(rng: random.Random) -> str:
    """A prompt with a well-formed answer: the corpus the BPE merges are learned from."""
    a, op, b, ans = arithmetic_problem(rng)
    return (QWEN_PROMPT.format(a=a, op=op, b=b)
            + f"<think> {a} {op} {b} gives {ans}, so the result is {ans}. </think> <answer> {ans} </answer><eos>")


def build_tokenizer(folder: Path, vocab: int = 512, seed: int = 0):
    """Byte-level BPE (tokenizers library) with pad/eos/role specials and the four tags as single tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    rng = random.Random(seed)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=QWEN_SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator([training_text(rng) for _ in range(20000)], trainer=trainer)
    bpe.add_tokens(QWEN_TAGS)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", eos_token="<eos>",
                                  padding_side="left", model_max_length=512)
    tok.save_pretrained(str(folder))
    return tok


def build_qwen(folder: Path, tok, hidden: int = 256, layers: int = 4, seed: int = 0) -> int:
    """A randomly initialised Qwen2 (MLP 4x hidden, 64-dim heads, tied embeddings); returns its parameter count."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    heads = max(1, hidden // 64)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=hidden, intermediate_size=4 * hidden,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                      max_position_embeddings=512, tie_word_embeddings=True, pad_token_id=tok.pad_token_id,
                      eos_token_id=tok.eos_token_id, bos_token_id=None)
    model = Qwen2ForCausalLM(cfg)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return sum(p.numel() for p in model.parameters())


def qwen_examples(n: int, seed: int = 1) -> list[dict]:
    """n distinct arithmetic prompts (already rendered) with their numeric answers, r1lab example dicts."""
    rng, seen, rows = random.Random(seed), set(), []
    while len(rows) < n:
        a, op, b, ans = arithmetic_problem(rng)
        if (a, op, b) not in seen:
            seen.add((a, op, b))
            rows.append({"prompt": QWEN_PROMPT.format(a=a, op=op, b=b), "answer": str(ans),
                         "kind": "reasoning", "verifier": "number"})
    return rows


def toy_examples(n: int) -> list[dict]:
    """The first n training prompts of r1lab's toy task, rendered with the R1-Zero template."""
    from r1lab.tasks import load_task
    from r1lab.template import render_prompt

    task = load_task("toy", eval_problems=0, train_size=max(n, 64))
    return [{"prompt": render_prompt(ex["prompt"], "r1-zero"), "answer": str(ex["answer"]),
             "kind": ex.get("kind", "reasoning"), "verifier": ex.get("verifier", "number")}
            for ex in task.train.examples[:n]]


def write_jsonl(rows: list[dict], path: Path) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


QWEN_SIZES = {"1M": (128, 4), "4M": (256, 4), "14M": (384, 6), "30M": (512, 7)}  # hidden, layers


def prepare(workdir: Path, models: list[str], scaling: bool) -> dict:
    """Build what the runs need in `workdir`; returns {name: {"path", "data", "label"}}."""
    out = {}
    need_qwen = "qwen" in models or scaling
    if need_qwen:
        tok = build_tokenizer(workdir / "tokenizer")
        sizes = QWEN_SIZES if scaling else {"4M": QWEN_SIZES["4M"]}
        write_jsonl(qwen_examples(512), workdir / "arith.jsonl")
        for key, (hidden, layers) in sizes.items():
            folder = workdir / f"qwen-{key}"
            n = build_qwen(folder, tok, hidden, layers)
            out[f"qwen-{key}"] = {"path": str(folder), "data": str(workdir / "arith.jsonl"),
                                  "label": f"random Qwen2 {n / 1e6:.2f}M"}
        out["qwen"] = out["qwen-4M"]
    if "base" in models:
        from r1lab.model import DEFAULT_MODEL

        write_jsonl(toy_examples(512), workdir / "toy.jsonl")
        out["base"] = {"path": str(DEFAULT_MODEL), "data": str(workdir / "toy.jsonl"),
                       "label": "r1lab base (0.9M Llama), toy task"}
    return out


# --------------------------------------------------------------------------------------------------
# Child processes. Protocol over a Pipe: child sends {"ready": info}; then for every "step" it runs one
# step and sends {"step": record} once it is idle again; "finish" -> {"done": {"rss_mb": ...}}.


def peak_rss_mb() -> float:
    """This process's resident-memory high-water mark (VmHWM: of this exec'd image only, not the parent's)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_entry(kind: str, conn, spec: dict) -> None:
    """Start of every child: quiet logs into a file, fix the thread count, run, report any error."""
    log = open(spec["log"], "a", buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    import torch

    import r1lab.model  # noqa: F401 - quiets transformers' load reports and progress bars

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    try:
        {"trl": trl_child, "r1lab": r1lab_child, "gen": gen_child}[kind](conn, spec)
    except BaseException:  # noqa: BLE001 - the parent prints it with the log's tail
        traceback.print_exc()
        try:
            conn.send({"error": traceback.format_exc()})
        except (BrokenPipeError, OSError):
            pass
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def rule_rewards_for_trl():
    """r1lab's format and accuracy rules with TRL's reward-function signature (dataset columns as kwargs)."""
    from r1lab.rewards.rules import accuracy_reward, format_reward

    def adapt(rule):
        def reward(completions, answer, kind, verifier, **_):
            examples = [{"answer": a, "kind": k, "verifier": v} for a, k, v in zip(answer, kind, verifier)]
            return rule([c if isinstance(c, str) else c[0]["content"] for c in completions], examples)

        reward.__name__ = rule.__name__
        return reward

    return [adapt(format_reward), adapt(accuracy_reward)], [REWARD_WEIGHTS["format"], REWARD_WEIGHTS["accuracy"]]


def trl_child(conn, spec: dict) -> None:
    """TRL's GRPOTrainer, gated step by step from its callbacks; phases timed by wrapping its methods."""
    import torch
    import trl
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    w = spec["workload"]
    rows = read_jsonl(spec["data"])
    tok = AutoTokenizer.from_pretrained(spec["model"])
    rec: dict = {}
    rewards, weights = rule_rewards_for_trl()

    def timed(name: str, phase: str, only_no_grad: bool = False, count_tokens: bool = False):
        original = getattr(GRPOTrainer, name)

        def wrapper(self, *args, **kwargs):
            if only_no_grad and torch.is_grad_enabled():
                return original(self, *args, **kwargs)
            t = time.perf_counter()
            out = original(self, *args, **kwargs)
            rec[phase] = rec.get(phase, 0.0) + time.perf_counter() - t
            if name == "_calculate_rewards":  # [rows, functions] -> weighted mean, to compare with r1lab's
                rec["reward_mean"] = float((out.nan_to_num() * torch.tensor(weights)).sum(1).mean())
            if count_tokens:  # (prompt_ids, images, fields, num_generations) -> (completion_ids, logprobs)
                prompts = args[0] if args else kwargs["prompt_ids"]
                rec["prompt_tokens"] = rec.get("prompt_tokens", 0) + sum(len(p) for p in prompts)
                rec["completion_tokens"] = rec.get("completion_tokens", 0) + sum(len(c) for c in out[0])
                rec["rows"] = rec.get("rows", 0) + len(out[0])
            return out

        setattr(GRPOTrainer, name, wrapper)

    timed("_generate_and_score_completions", "gen_and_score")
    timed("_generate_single_turn", "gen", count_tokens=True)
    timed("_calculate_rewards", "reward")
    timed("_get_per_token_logps_and_entropies", "ref", only_no_grad=True)  # reference (and pi_old) forwards

    state = {"started": False, "pending": None, "t0": 0.0}

    class Gate(TrainerCallback):
        """Blocks at the start of every step until the parent says 'step'. The previous step's record is sent
        from here, not from on_step_end, because TRL/Trainer still log and fetch the next batch after
        on_step_end: only here is this process idle, so the other side's step never overlaps its work."""

        def on_step_begin(self, args, st, control, **kw):
            if not state["started"]:
                conn.send({"ready": {"n_params": sum(p.numel() for p in trainer.model.parameters()),
                                     "version": trl.__version__}})
                state["started"] = True
            elif state["pending"] is not None:
                conn.send({"step": state["pending"]})
                state["pending"] = None
            if conn.recv() != "step":
                raise SystemExit(0)
            rec.clear()
            state["t0"] = time.perf_counter()

        def on_step_end(self, args, st, control, **kw):
            total = time.perf_counter() - state["t0"]
            r = dict(rec)
            gen_and_score = r.pop("gen_and_score", 0.0)
            r["total"] = total
            r["train"] = total - gen_and_score  # loss forward + backward, clip, AdamW, scheduler, zero_grad
            r["other"] = gen_and_score - r.get("gen", 0.0) - r.get("ref", 0.0) - r.get("reward", 0.0)
            state["pending"] = r

    cfg = GRPOConfig(
        output_dir=str(Path(spec["workdir"]) / "trl-out"),
        use_cpu=True,
        bf16=spec["precision"] == "bf16",  # TRL's default is True, even on CPU
        fp16=False,
        activation_checkpointing=False,  # TRL's default is True
        per_device_train_batch_size=w["prompts"] * w["group"],  # counts completions, not prompts
        gradient_accumulation_steps=1,
        num_generations=w["group"],
        num_iterations=1,  # mu = 1
        max_completion_length=w["max_new"],
        temperature=1.0,
        top_p=1.0,
        beta=w["beta"],  # TRL's default is 0 (no reference model)
        epsilon=0.2,
        loss_type="grpo",  # per-sequence mean, then mean over sequences (r1lab's seq-mean)
        scale_rewards="group",
        reward_weights=weights,
        learning_rate=w["lr"],
        lr_scheduler_type="constant",
        adam_beta1=0.9,
        adam_beta2=0.99,
        weight_decay=0.0,
        max_grad_norm=1.0,
        max_steps=spec["n_steps"],
        shuffle_dataset=False,  # prompts in file order, as the r1lab side reads them
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        dataloader_num_workers=0,
        disable_tqdm=True,
        seed=0,
    )
    trainer = GRPOTrainer(model=spec["model"], reward_funcs=rewards, args=cfg, train_dataset=Dataset.from_list(rows),
                          processing_class=tok, callbacks=[Gate()])
    trainer.train()
    if state["pending"] is not None:
        conn.send({"step": state["pending"]})
    if conn.recv() == "finish":
        conn.send({"done": {"rss_mb": peak_rss_mb()}})


class InOrder:
    """r1lab's prompt-source interface (.batch(step, n, seed)) over a list read in file order, like TRL's
    unshuffled sampler, so both sides see the same prompts at the same step."""

    def __init__(self, examples: list[dict]):
        self.examples = examples

    def batch(self, step: int, n: int, seed: int) -> list[dict]:
        return [self.examples[(step * n + i) % len(self.examples)] for i in range(n)]


def r1lab_setup(spec: dict):
    """Model, frozen reference, optimizer and config built the way `r1lab.stages.grpo.setup` builds them."""
    import copy

    import torch

    from r1lab.model import autocast, load_model, load_tokenizer
    from r1lab.stages.grpo import GRPOConfig, check_config, lr_lambda

    w = spec["workload"]
    cfg = GRPOConfig(model=spec["model"], prompts_per_step=w["prompts"], group_size=w["group"],
                     max_new_tokens=w["max_new"], temperature=1.0, top_p=1.0, template="plain",  # prompts are rendered
                     rewards=",".join(f"{k}={v}" for k, v in REWARD_WEIGHTS.items()), lr=w["lr"], beta=w["beta"],
                     updates_per_batch=1, loss_agg="seq-mean", micro_batch=64, grad_clip=1.0,
                     precision=spec["precision"], device="cpu", eval_problems=0)
    check_config(cfg)
    tok = load_tokenizer(spec["model"])
    model = load_model(spec["model"])
    ref = copy.deepcopy(model).eval().requires_grad_(False) if cfg.beta > 0 else None
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
    return cfg, tok, model, ref, opt, sched, autocast(torch.device("cpu"), cfg.precision)


def r1lab_child(conn, spec: dict) -> None:
    """One GRPO step per 'step' command, through r1lab's own functions in `train`'s order."""
    from r1lab.forward import frozen_logprobs, sequences
    from r1lab.losses import group_advantages
    from r1lab.rewards import REWARDS, RewardRunner, parse_spec
    from r1lab.stages.grpo import _update, rollout

    cfg, tok, model, ref, opt, sched, amp = r1lab_setup(spec)
    source = InOrder(read_jsonl(spec["data"]))
    weights = parse_spec(cfg.rewards, REWARDS)
    runner = RewardRunner(REWARDS)
    G, prompt_cache = cfg.group_size, {}
    model.train()
    conn.send({"ready": {"n_params": sum(p.numel() for p in model.parameters())}})
    step = 0
    while conn.recv() == "step":
        t0 = time.perf_counter()
        batch = rollout(model, tok, source.batch(step, cfg.prompts_per_step, cfg.seed), cfg, step, 0, weights,
                        runner, prompt_cache, amp)
        advantages = group_advantages(batch.rewards, G, scale=True)
        t1 = time.perf_counter()
        seq = sequences(batch.prompt_ids, batch.completion_ids, tok.pad_token_id, "cpu")
        mask = seq["mask"].clone()
        ref_logp = frozen_logprobs(ref, seq, cfg.micro_batch, cfg.temperature, amp) if ref is not None else None
        t2 = time.perf_counter()
        _update(model, opt, seq, mask, advantages, None, ref_logp, cfg, amp)
        sched.step()
        t3 = time.perf_counter()
        total = t3 - t0
        rec = {"total": total, "gen": batch.t_gen, "reward": batch.t_reward, "ref": t2 - t1, "train": t3 - t2,
               "prompt_tokens": sum(len(p) for p in batch.prompt_ids),
               "completion_tokens": sum(len(c) for c in batch.completion_ids), "rows": len(batch.completion_ids),
               "reward_mean": float(batch.rewards.mean())}
        rec["other"] = total - rec["gen"] - rec["reward"] - rec["ref"] - rec["train"]
        conn.send({"step": rec})
        step += 1
    conn.send({"done": {"rss_mb": peak_rss_mb()}})


def gen_child(conn, spec: dict) -> None:
    """Rollout alone: r1lab's engine.generate vs HF model.generate on the same 8 prompts x 8 samples, exactly
    `max_new` sampled tokens per row (EOS disabled), alternating the two, one rep per 'step' command."""
    import torch
    from transformers import GenerationConfig

    from r1lab.engine import SamplingParams, generate
    from r1lab.model import autocast, load_model, load_tokenizer

    w = spec["workload"]
    tok, model = load_tokenizer(spec["model"]), load_model(spec["model"]).eval()
    amp = autocast(torch.device("cpu"), spec["precision"])
    prompts = [tok(r["prompt"], add_special_tokens=False)["input_ids"] for r in read_jsonl(spec["data"])[:w["prompts"]]]
    G, new = w["group"], w["max_new"]
    rows = [p for p in prompts for _ in range(G)]  # HF gets each prompt G times, as a trainer would pass it
    width = max(len(p) for p in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    for i, p in enumerate(rows):
        ids[i, width - len(p):] = torch.tensor(p)
        attn[i, width - len(p):] = 1
    model.generation_config.eos_token_id = None
    gc = GenerationConfig(do_sample=True, max_new_tokens=new, temperature=1.0, top_k=0, top_p=1.0,
                          pad_token_id=tok.pad_token_id, eos_token_id=None, use_cache=True, disable_compile=True)

    def hf() -> int:
        with torch.inference_mode(), amp:
            out = model.generate(input_ids=ids, attention_mask=attn, generation_config=gc)
        return (out.shape[1] - width) * out.shape[0]

    def r1() -> int:
        out = generate(model, prompts, G, SamplingParams(new, 1.0, 1.0), list(range(len(prompts))), eos_id=-1,
                       pad_id=tok.pad_token_id, autocast=amp)
        return sum(len(c) for c in out.completions)

    conn.send({"ready": {"n_params": sum(p.numel() for p in model.parameters())}})
    rep = 0
    while conn.recv() == "step":
        torch.manual_seed(rep)
        res = {}
        for name, fn in ((("r1lab", r1), ("hf", hf)) if rep % 2 == 0 else (("hf", hf), ("r1lab", r1))):
            t = time.perf_counter()
            n = fn()
            res[name] = {"seconds": time.perf_counter() - t, "tokens": n}
        conn.send({"step": res})
        rep += 1
    conn.send({"done": {"rss_mb": peak_rss_mb()}})


# --------------------------------------------------------------------------------------------------
# The parent's side of the protocol


class ChildFailed(RuntimeError):
    pass


class Child:
    """A spawned child and its pipe; every wait names what it waits for, so a failure says where."""

    def __init__(self, kind: str, spec: dict, name: str):
        self.name, self.log = name, spec["log"]
        ctx = mp.get_context("spawn")
        self.conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(target=child_entry, args=(kind, child_conn, spec), daemon=True)
        self.proc.start()
        child_conn.close()
        self.info = self.expect("ready")

    def expect(self, key: str):
        try:
            msg = self.conn.recv()
        except EOFError:
            msg = {"error": f"process exited with code {self.proc.exitcode}"}
        if key not in msg:
            raise ChildFailed(f"{self.name}: expected {key!r}, got an error:\n{msg.get('error', msg)}\n"
                              f"--- last lines of {self.log} ---\n{tail(self.log)}")
        return msg[key]

    def step(self) -> dict:
        self.conn.send("step")
        return self.expect("step")

    def finish(self) -> dict:
        self.conn.send("finish")
        done = self.expect("done")
        self.proc.join(60)
        return done

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(10)


def tail(path: str, n: int = 30) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def paired(specs: dict, warmup: int, steps: int) -> dict:
    """Run sides {name: (kind, spec)} step by step, alternating the order (ABBA), warm-up steps discarded."""
    children = {}
    try:
        for name, (kind, spec) in specs.items():
            children[name] = Child(kind, spec, name)  # one at a time: set-ups never overlap
        records = {name: [] for name in children}
        names = list(children)
        for i in range(warmup + steps):
            for name in (names if i % 2 == 0 else names[::-1]):
                r = children[name].step()
                if i >= warmup:
                    records[name].append(r)
        return {name: {"info": c.info, "records": records[name], **c.finish()} for name, c in children.items()}
    finally:
        for c in children.values():
            c.kill()


# --------------------------------------------------------------------------------------------------
# Statistics


FLOP_ACCOUNTING = ("FLOPs per step (nominal, identical for both sides): 10*N*T = 2*N*T generation + 2*N*T reference "
                   "forward + 6*N*T policy forward+backward; N = parameters (tied embedding counted once), T = sum "
                   "over the batch's rows of prompt + completion tokens actually present (padding and attention's "
                   "quadratic term not counted; r1lab's shared prompt prefix and dropped rows are not discounted).")


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def summarize(side: dict, beta: float, peak: dict | None) -> dict:
    """Medians over measured steps: s/step and phases, tokens, nominal FLOP/s and its share of the peak."""
    recs, n = side["records"], side["info"]["n_params"]
    per_flop = 2 + (2 if beta else 0) + 6
    out = {"steps": len(recs), "rss_mb": side["rss_mb"], "n_params": n}
    out["s_step"] = med(r["total"] for r in recs)
    out["p10"], out["p90"] = (quantile([r["total"] for r in recs], q) for q in (0.1, 0.9))
    for ph in PHASES:
        out[ph] = med(r.get(ph, 0.0) for r in recs)
    out["tokens"] = med(r["prompt_tokens"] + r["completion_tokens"] for r in recs)
    out["completion_tokens"] = med(r["completion_tokens"] for r in recs)
    out["reward_mean"] = med(r.get("reward_mean") for r in recs)
    out["completion_tok_s"] = med(r["completion_tokens"] / r["total"] for r in recs)
    out["gflop_step"] = med(per_flop * n * (r["prompt_tokens"] + r["completion_tokens"]) for r in recs) / 1e9
    out["flops"] = med(per_flop * n * (r["prompt_tokens"] + r["completion_tokens"]) / r["total"] for r in recs)
    out["mfu"] = out["flops"] / peak["flops"] if peak else float("nan")
    return out


def quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))] if xs else float("nan")


def fmt(x, spec: str = ".3f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def step_table(title: str, trl: dict, r1: dict, peak: dict | None, trl_version: str) -> str:
    """TRL and r1lab side by side, with the TRL/r1lab ratio (> 1: r1lab faster or smaller)."""
    def row(label, key, spec=".3f", ratio=True, scale=1.0):
        a, b = trl.get(key), r1.get(key)
        a = a * scale if a is not None else None
        b = b * scale if b is not None else None
        rt = fmt(a / b, ".2f") + "x" if ratio and a and b else ""
        return f"  {label:<28}{fmt(a, spec):>12}{fmt(b, spec):>12}{rt:>12}"

    lines = [title, f"  {'':<28}{'TRL ' + trl_version:>12}{'r1lab':>12}{'TRL/r1lab':>12}",
             row("median s/step", "s_step"), row("  p10 s/step", "p10", ratio=False),
             row("  p90 s/step", "p90", ratio=False)]
    lines += [row("  " + PHASE_NAMES[ph], ph, ratio=ph != "other") for ph in PHASES]
    lines += [row("peak RSS (MB)", "rss_mb", ".0f"),
              row("prompt+completion tok/step", "tokens", ".0f", ratio=False),
              row("completion tok/step", "completion_tokens", ".0f", ratio=False),
              row("completion tok/s", "completion_tok_s", ".0f"),
              row("mean reward (weighted)", "reward_mean", ".3f", ratio=False),
              row("nominal GFLOP/step", "gflop_step", ".1f", ratio=False),
              row("achieved GFLOP/s", "flops", ".2f", scale=1e-9)]
    if peak:
        lines.append(row(f"share of {peak['dtype']} peak", "mfu", ".1%"))
    lines.append(f"  steps measured: {trl['steps']} per side; params {r1['n_params']:,}. TRL/r1lab > 1 means r1lab is "
                 "faster or smaller on times and memory; on rates (tok/s, GFLOP/s, share) < 1 means r1lab is faster")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Runs


def workload(args) -> dict:
    return {"prompts": args.prompts, "group": args.group, "max_new": args.max_new_tokens, "beta": args.beta,
            "lr": args.lr}


def child_spec(args, workdir: Path, model: dict, precision: str, tag: str, n_steps: int, **overrides) -> dict:
    w = dict(workload(args), **overrides)
    return {"model": model["path"], "data": model["data"], "precision": precision, "threads": args.threads,
            "workload": w, "n_steps": n_steps, "workdir": str(workdir), "log": str(workdir / f"{tag}.log")}


def steps_for(args, precision: str) -> tuple[int, int]:
    return (args.bf16_warmup, args.bf16_steps) if precision == "bf16" else (args.warmup, args.steps)


def compare_steps(args, workdir: Path, name: str, model: dict, precision: str) -> dict:
    warmup, steps = steps_for(args, precision)
    tag = f"{name}-{precision}"
    specs = {"trl": ("trl", child_spec(args, workdir, model, precision, f"{tag}-trl", warmup + steps)),
             "r1lab": ("r1lab", child_spec(args, workdir, model, precision, f"{tag}-r1lab", warmup + steps))}
    print(f"[{tag}] {warmup} warm-up + {steps} measured steps per side, alternating ...", flush=True)
    t = time.perf_counter()
    res = paired(specs, warmup, steps)
    print(f"[{tag}] done in {time.perf_counter() - t:.0f} s", flush=True)
    return res


def compare_rollout(args, workdir: Path, name: str, model: dict, precision: str) -> dict:
    reps = min(args.gen_reps, args.bf16_steps) if precision == "bf16" else args.gen_reps
    spec = child_spec(args, workdir, model, precision, f"{name}-{precision}-gen", reps + 1)
    print(f"[{name}-{precision}] rollout: 1 warm-up + {reps} reps of each generator ...", flush=True)
    res = paired({"gen": ("gen", spec)}, 1, reps)["gen"]["records"]
    out = {}
    for side in ("r1lab", "hf"):
        secs = [r[side]["seconds"] for r in res]
        out[side] = {"seconds": med(secs), "tok_s": med(r[side]["tokens"] / r[side]["seconds"] for r in res)}
    out["ratio"] = out["r1lab"]["tok_s"] / out["hf"]["tok_s"]
    out["reps"] = reps
    return out


def scaling(args, workdir: Path, models: dict, peak: dict | None) -> str:
    """r1lab alone on the random Qwen2: step time as G, the token budget, and the model size grow (one at a time
    from 8 prompts x G 8, 64 tokens, 4.3M), fp32, fresh child per point."""
    points = [("G", g, "qwen-4M", {"group": g}) for g in args.scaling_g]
    points += [("new tokens", n, "qwen-4M", {"max_new": n}) for n in args.scaling_len]
    points += [("params", models[f"qwen-{k}"]["label"].split()[-1], f"qwen-{k}", {}) for k in QWEN_SIZES]
    lines = [f"r1lab scaling (fp32, {args.prompts} prompts, base point G={args.group} / {args.max_new_tokens} tokens / "
             f"4.33M; {args.scaling_warmup} warm-up + {args.scaling_steps} measured steps per point)",
             f"  {'axis':<11}{'value':>8}{'s/step':>9}{'gen':>8}{'ref':>8}{'train':>8}{'compl tok':>10}"
             f"{'tok/s':>8}{'GFLOP/s':>9}{'of peak':>9}{'RSS MB':>8}"]
    for axis, value, key, over in points:
        tag = f"scale-{axis.replace(' ', '')}-{value}"
        spec = child_spec(args, workdir, models[key], "fp32", tag, 0, **over)
        print(f"[scaling] {axis} = {value} ...", flush=True)
        side = paired({"r1lab": ("r1lab", spec)}, args.scaling_warmup, args.scaling_steps)["r1lab"]
        s = summarize(side, args.beta, peak)
        lines.append(f"  {axis:<11}{str(value):>8}{s['s_step']:>9.3f}{s['gen']:>8.3f}{s['ref']:>8.3f}"
                     f"{s['train']:>8.3f}{s['completion_tokens']:>10.0f}{s['completion_tok_s']:>8.0f}"
                     f"{s['flops'] / 1e9:>9.2f}{fmt(s['mfu'], '.1%'):>9}{s['rss_mb']:>8.0f}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Command line


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_argument_group("what to run")
    g.add_argument("--models", default="qwen,base",
                   help="comma list of: qwen (random 4.33M Qwen2), base (r1lab's base model); 'none' for neither")
    g.add_argument("--precisions", default="fp32,bf16", help="comma list of: fp32, bf16 (autocast)")
    g.add_argument("--no-bf16", action="store_true", help="skip bf16 (same as --precisions fp32)")
    g.add_argument("--steps", type=int, default=10, help="measured fp32 steps per side (default 10)")
    g.add_argument("--warmup", type=int, default=2, help="fp32 warm-up steps per side, discarded (default 2)")
    g.add_argument("--bf16-steps", type=int, default=2,
                   help="measured bf16 steps per side (default 2: bf16 is emulated on CPUs without AVX512-BF16/AMX)")
    g.add_argument("--bf16-warmup", type=int, default=1, help="bf16 warm-up steps per side (default 1)")
    g.add_argument("--gen-reps", type=int, default=5,
                   help="reps of the rollout comparison per generator (bf16: at most --bf16-steps; 0 = skip)")
    g.add_argument("--scaling", action="store_true", help="also print r1lab's scaling table (G, tokens, model size)")
    g.add_argument("--scaling-steps", type=int, default=3, help="measured steps per scaling point (default 3)")
    g.add_argument("--scaling-warmup", type=int, default=1, help="warm-up steps per scaling point (default 1)")
    g.add_argument("--scaling-g", type=int, nargs="+", default=[4, 8, 16, 32], help="G values (default 4 8 16 32)")
    g.add_argument("--scaling-len", type=int, nargs="+", default=[32, 64, 128, 256],
                   help="token budgets (default 32 64 128 256)")
    w = ap.add_argument_group("workload (both sides)")
    w.add_argument("--prompts", type=int, default=8, help="prompts per step (default 8)")
    w.add_argument("--group", type=int, default=8, help="samples per prompt G (default 8)")
    w.add_argument("--max-new-tokens", type=int, default=64, help="completion budget (default 64)")
    w.add_argument("--beta", type=float, default=0.04, help="KL coefficient (default 0.04)")
    w.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate (default 1e-4)")
    m = ap.add_argument_group("machine")
    m.add_argument("--threads", type=int, default=0, help="torch threads in every process (default: torch's default)")
    m.add_argument("--workdir", default=None, help="scratch folder (default: a temporary folder, removed at the end)")
    m.add_argument("--keep-workdir", action="store_true", help="keep the scratch folder (child logs are in it)")
    args = ap.parse_args(argv)
    args.models = [] if args.models.strip() == "none" else [s.strip() for s in args.models.split(",") if s.strip()]
    args.precisions = [s.strip() for s in args.precisions.split(",") if s.strip()]
    if args.no_bf16:
        args.precisions = [p for p in args.precisions if p != "bf16"]
    bad = [x for x in args.models if x not in ("qwen", "base")] + [p for p in args.precisions if p not in ("fp32", "bf16")]
    if bad:
        ap.error(f"unknown model/precision: {', '.join(bad)}")
    for name in ("steps", "bf16_steps", "scaling_steps"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def check_trl() -> str:
    """TRL's version, or exit with how to install the optional `bench` extra."""
    import importlib.metadata as md
    import importlib.util

    if importlib.util.find_spec("trl") is None:
        sys.exit("bench/compare_trl.py needs TRL, which is not installed. It belongs to r1lab's optional 'bench' "
                 "extra:\n    pip install -e '.[bench]'\n(pyproject.toml, [project.optional-dependencies]: "
                 f"{BENCH_EXTRA})\nor directly: pip install 'trl>=1.16,<1.17' datasets accelerate")
    version = md.version("trl")
    if version != TRL_TESTED:
        print(f"note: written against TRL {TRL_TESTED}; installed is {version} (its defaults may differ)")
    return version


def final_json(results: dict, gens: dict) -> dict:
    def get(precision, fn):
        r = results.get(("qwen", precision))
        return fn(r["trl"], r["r1lab"]) if r else None

    rollout = [g["ratio"] for (name, precision), g in gens.items() if precision == "fp32"]
    return {"rollout_vs_hf": min(rollout) if rollout else None,  # the smaller of the models' fp32 ratios
            "speedup_fp32": get("fp32", lambda t, r: t["s_step"] / r["s_step"]),
            "speedup_bf16": get("bf16", lambda t, r: t["s_step"] / r["s_step"]),
            "rss_ratio": get("fp32", lambda t, r: r["rss_mb"] / t["rss_mb"]),
            "mfu_fp32": get("fp32", lambda t, r: r["mfu"]),
            "mfu_bf16": get("bf16", lambda t, r: r["mfu"])}


def main(argv=None) -> None:
    args = parse_args(argv)
    trl_version = check_trl() if args.models else None
    import torch

    import r1lab.model  # noqa: F401 - quiets transformers' progress bars

    if args.threads:
        torch.set_num_threads(args.threads)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="r1lab-compare-trl-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}; scratch folder {workdir}")
    note = bf16_note() if args.models and "bf16" in args.precisions else None
    if note:
        print(f"NOTE: {note}")
    try:
        models = prepare(workdir, args.models, args.scaling)
        wanted = (set(args.precisions) if args.models else set()) | ({"fp32"} if args.scaling else set())
        peaks = {p: matmul_peak(p, args.threads) for p in sorted(wanted, reverse=True)}
        for p in peaks.values():
            probes = ", ".join(f"{k} {v:.1f}" for k, v in p["probes_gflops"].items())
            print(f"matmul peak {p['dtype']}: {p['n']}x{p['n']} {p['layout']}, median of {p['reps']}: "
                  f"{p['seconds'] * 1e3:.1f} ms = {p['flops'] / 1e9:.1f} GFLOP/s (512x512 probes, GFLOP/s: {probes})")
        results, gens, tables = {}, {}, []
        for name in args.models:
            for precision in args.precisions:
                raw = compare_steps(args, workdir, name, models[name], precision)
                s = {side: summarize(raw[side], args.beta, peaks.get(precision)) for side in ("trl", "r1lab")}
                results[(name, precision)] = s
                warmup, steps = steps_for(args, precision)
                title = (f"== {models[name]['label']}, {precision}: {args.prompts} prompts x {args.group} samples, <= "
                         f"{args.max_new_tokens} new tokens, beta {args.beta}, mu 1, lr {args.lr}, "
                         f"{torch.get_num_threads()} threads")
                tables.append(step_table(title, s["trl"], s["r1lab"], peaks.get(precision),
                                         raw["trl"]["info"].get("version", trl_version)))
                if args.gen_reps:
                    gens[(name, precision)] = compare_rollout(args, workdir, name, models[name], precision)
        print()
        for t in tables:
            print(t + "\n")
        if tables:
            print(FLOP_ACCOUNTING)
            print("Phases: TRL generation = _generate_single_turn (HF generate), reward = _calculate_rewards, ref = its "
                  "no-grad log-prob forwards, train = step minus _generate_and_score_completions, other = the rest of "
                  "_generate_and_score_completions (tokenising, decoding, padding, advantages). r1lab generation = "
                  "rollout's generate + decode, reward = score, ref = sequences + frozen_logprobs, train = _update + "
                  "scheduler, other = advantages. Peak RSS: VmHWM of each side's own process.\n")
        if gens:
            print(f"Rollout only: {args.prompts} prompts x {args.group} samples, exactly {args.max_new_tokens} sampled "
                  "tokens per row (EOS disabled), KV cache, temperature 1, no top-k/top-p")
            print(f"  {'model':<40}{'prec':>6}{'r1lab tok/s':>13}{'HF tok/s':>11}{'r1lab/HF':>10}{'reps':>6}")
            for (name, precision), g in gens.items():
                print(f"  {models[name]['label']:<40}{precision:>6}{g['r1lab']['tok_s']:>13.0f}{g['hf']['tok_s']:>11.0f}"
                      f"{g['ratio']:>9.2f}x{g['reps']:>6}")
            print()
        if args.scaling:
            print(scaling(args, workdir, models, peaks.get("fp32")) + "\n")
        if note:
            print(f"NOTE: {note}")
    except ChildFailed as e:
        print(f"\nFAILED: {e}", file=sys.stderr)
        print(f"(scratch folder kept: {workdir})", file=sys.stderr)
        sys.exit(1)
    except BaseException:
        print(f"(scratch folder kept: {workdir})", file=sys.stderr)
        raise
    if not (args.keep_workdir or args.workdir):
        shutil.rmtree(workdir, ignore_errors=True)
    elif args.keep_workdir:
        print(f"scratch folder kept: {workdir}")
    print(json.dumps(final_json(results, gens)))


if __name__ == "__main__":
    main()
