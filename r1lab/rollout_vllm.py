"""Optional rollout backend on vLLM (`--rollout vllm`), colocated with training on the same GPU.

vLLM runs in this process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`), next to the policy being trained. It
loads the starting checkpoint once; after each optimizer update `refresh(model)` copies the policy's
current weights into vLLM's copy of the model, as TRL's GRPOTrainer does in colocate mode. It is a
drop-in for `engine.generate`: the same prompts (token ids), seeds and grouping, and the same
`Rollout` back.

    rollout = VLLMRollout("runs/sft/final", max_model_len=1024)
    out = rollout.generate(prompts, n=8, params=SamplingParams(512, 1.0), seeds=seeds, eos_id=eos)
    ...optimizer step...
    rollout.refresh(policy)   # vLLM now samples from the updated policy

Memory: vLLM takes `gpu_memory_utilization` of the GPU's memory (its weights + KV cache) when it
starts, whatever the trainer holds; the trainer has the rest. Lower it if training runs out of memory,
raise it for more concurrent samples.

How it departs from `engine.generate`:
- Samples match `engine.generate` in distribution, not token for token (other kernels, other random
  streams). Each prompt is one request seeded with its own seed, so its samples do not depend on which
  other prompts share the batch, up to the numerical noise of batched kernels.
- Temperature 0 (greedy) samples once and repeats it n times: vLLM refuses n > 1 when greedy, and the
  n samples would be identical anyway.
- No log-probs (`Rollout.logprobs` is None): the GRPO loss recomputes them with the policy.

What was checked, and what was not: the vLLM calls follow vLLM's source (V1 engine: `LLM`,
`SamplingParams`, `UniProcExecutor.driver_worker`, `check_stop`) and TRL's colocate weight sync
(`trl/generation/vllm_generation.py`). tests/test_rollout_vllm.py runs this module against a fake
`vllm`. It has NOT been run against a real vLLM on a GPU in this project's CI.
"""

from __future__ import annotations

import gc
import os

import torch

from .engine import Rollout, SamplingParams
from .errors import UserError


def check_available() -> None:
    """Raise a UserError saying what is missing when `--rollout vllm` cannot run here."""
    try:
        import vllm  # noqa: F401
    except ImportError as e:
        raise UserError("--rollout vllm needs the vllm package: pip install 'r1lab[vllm]' "
                        "(on a machine with a CUDA GPU)") from e
    if not torch.cuda.is_available():
        raise UserError("--rollout vllm needs a CUDA GPU; this machine has none (use --rollout hf)")


class VLLMRollout:
    def __init__(self, model_path: str, *, gpu_memory_utilization: float = 0.3, max_model_len: int,
                 dtype: str = "auto", seed: int = 0):
        check_available()
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            # each process would start its own single-GPU vLLM, which clashes with the trainer's
            # process group; TRL solves this with vLLM's "external_launcher" executor, not done here
            raise UserError("--rollout vllm runs in a single process (one GPU); launch without torchrun")
        # in-process engine: without it the model lives in a child process and `refresh` cannot reach it
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        from vllm import LLM

        self.max_model_len = max_model_len
        self.llm = LLM(model=str(model_path), gpu_memory_utilization=gpu_memory_utilization,
                       max_model_len=max_model_len, dtype=dtype, seed=seed)

    def generate(self, prompts: list[list[int]], n: int, params: SamplingParams, seeds: list[int],
                 eos_id: int) -> Rollout:
        """n samples for each prompt (token ids); returns them grouped: prompt 0's n samples first."""
        from vllm import SamplingParams as VLLMSamplingParams

        assert len(seeds) == len(prompts), "one seed per prompt"
        assert n >= 1 and params.max_new_tokens >= 1
        for p in prompts:
            if len(p) + params.max_new_tokens > self.max_model_len:
                raise UserError(f"a prompt of {len(p)} tokens + max_new_tokens {params.max_new_tokens} does "
                                f"not fit vLLM's max_model_len {self.max_model_len}")
        greedy = params.temperature <= 0
        requests = [
            VLLMSamplingParams(
                n=1 if greedy else n, temperature=max(params.temperature, 0.0), top_p=params.top_p,
                max_tokens=params.max_new_tokens, seed=int(seed),
                # stop on eos_id only: ignore_eos drops the tokenizer's and generation_config's EOS ids
                ignore_eos=True, stop_token_ids=[eos_id], detokenize=False)
            for seed in seeds]
        outputs = self.llm.generate([{"prompt_token_ids": list(p)} for p in prompts], requests,
                                    use_tqdm=False)
        completions, truncated = [], []
        for out in outputs:  # one per prompt, in prompt order
            samples = sorted(out.outputs, key=lambda s: s.index)
            if greedy:
                samples = samples[:1] * n
            for s in samples:
                ids = list(s.token_ids)
                # Some vLLM versions check the token budget before stop tokens, so an EOS drawn as the
                # last allowed token reads "length"; engine.generate counts it as a stop.
                stopped = s.finish_reason == "stop" or ids[-1:] == [eos_id]
                if stopped and ids[-1:] != [eos_id]:
                    ids.append(eos_id)
                completions.append(ids)
                truncated.append(not stopped)
        return Rollout(completions, truncated, None, n_prefill_tokens=sum(len(p) for p in prompts),
                       n_decode_tokens=sum(len(c) for c in completions))

    @torch.no_grad()
    def refresh(self, model: torch.nn.Module) -> None:
        """Copy the policy's current weights into vLLM (HF parameter names; vLLM maps and casts them)."""
        weights = [(name, p.detach()) for name, p in model.named_parameters()]
        target = _vllm_model(self.llm)
        if target is not None:
            target.load_weights(weights)
        elif hasattr(self.llm, "apply_model"):  # vLLM's public hook; in process it runs without pickling
            self.llm.apply_model(lambda m: m.load_weights(weights))
        else:
            raise UserError("this vLLM version offers no way to load weights in process (no "
                            "llm_engine.model_executor.driver_worker...model_runner.model, no LLM.apply_model); "
                            "use vllm>=0.10 or --rollout hf")
        # cached KV blocks of earlier prompts were computed with the old weights
        self.llm.reset_prefix_cache()

    def close(self) -> None:
        """Stop the engine and give its GPU memory back."""
        llm, self.llm = getattr(self, "llm", None), None
        if llm is None:
            return
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if hasattr(core, "shutdown"):
            core.shutdown()
        del llm
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _vllm_model(llm):
    """The torch module vLLM runs, where the engine is in this process; None where it cannot be reached.

    TRL spells it `driver_worker.model_runner.model` (the V1 worker wrapper forwards attributes to its
    worker), verl `driver_worker.worker.model_runner.model`."""
    worker = getattr(getattr(getattr(llm, "llm_engine", None), "model_executor", None), "driver_worker", None)
    for holder in (worker, getattr(worker, "worker", None)):
        model = getattr(getattr(holder, "model_runner", None), "model", None)
        if model is not None and hasattr(model, "load_weights"):
            return model
    return None
