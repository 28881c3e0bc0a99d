"""A stand-in for the `vllm` package with the slice of its public API that r1lab uses, run by a
Hugging Face model on the CPU (vLLM itself needs a CUDA GPU): `LLM(model=..., ...)`,
`LLM.generate(prompts, sampling_params)` -> [`RequestOutput`] with `CompletionOutput`s
(`index`, `token_ids`, `finish_reason`, `text`), `SamplingParams(n=, seed=, ...)`, the in-process
model runner whose `load_weights` takes (name, tensor) pairs, `reset_prefix_cache`, and the engine
core's `shutdown`. Every instance is recorded in `LLM.instances` so a test can look inside.

    module = fake_vllm.install(monkeypatch)     # `import vllm` now finds this
"""

import sys
import types
from dataclasses import dataclass, field

import torch


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = 16
    seed: int | None = None
    ignore_eos: bool = False
    stop_token_ids: list[int] | None = None
    detokenize: bool = True

    def __post_init__(self):
        if self.temperature == 0 and self.n > 1:  # as vLLM refuses it
            raise ValueError("n must be 1 when using greedy sampling")


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: tuple
    cumulative_logprob: float | None
    logprobs: None
    finish_reason: str | None  # "stop" or "length"


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]
    finished: bool = True


class _Runner:
    """What `llm_engine.model_executor.driver_worker.model_runner` is in the in-process V1 engine."""

    def __init__(self, hf_model):
        self.model = _VLLMModel(hf_model)


class _VLLMModel:
    def __init__(self, hf_model):
        self.hf = hf_model
        self.loads = 0

    def load_weights(self, weights):
        params = dict(self.hf.named_parameters())
        names = set()
        with torch.no_grad():
            for name, tensor in weights:
                params[name].copy_(tensor)
                names.add(name)
        self.loads += 1
        return names


@dataclass
class _EngineCore:
    shut_down: bool = False

    def shutdown(self):
        self.shut_down = True


@dataclass
class LLM:
    model: str
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    dtype: str = "auto"
    seed: int = 0
    instances = []  # noqa: RUF012 (class-level record of every engine started)
    requests: list = field(default_factory=list)

    def __post_init__(self):
        from transformers import AutoModelForCausalLM

        hf = AutoModelForCausalLM.from_pretrained(self.model).eval()
        core = _EngineCore()
        worker = types.SimpleNamespace(model_runner=_Runner(hf))
        self.llm_engine = types.SimpleNamespace(model_executor=types.SimpleNamespace(driver_worker=worker),
                                                engine_core=core)
        self.prefix_cache_resets = 0
        LLM.instances.append(self)

    @property
    def hf(self):
        return self.llm_engine.model_executor.driver_worker.model_runner.model.hf

    def generate(self, prompts, sampling_params, use_tqdm=True):
        assert not self.llm_engine.engine_core.shut_down, "generate after shutdown"
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
        outputs = []
        for i, (prompt, sp) in enumerate(zip(prompts, params)):
            ids = list(prompt["prompt_token_ids"])
            self.requests.append(sp)
            gen = torch.Generator().manual_seed(sp.seed if sp.seed is not None else self.seed)
            samples = [self._sample(ids, sp, gen, j) for j in range(sp.n)]
            outputs.append(RequestOutput(str(i), None, ids, samples[::-1]))  # no promise of index order
        return outputs

    @torch.no_grad()
    def _sample(self, ids, sp, gen, index):
        stop = set(sp.stop_token_ids or [])
        x, out = torch.tensor([ids]), []
        for _ in range(sp.max_tokens):
            logits = self.hf(input_ids=x).logits[0, -1].float()
            if sp.temperature == 0:
                token = int(logits.argmax())
            else:
                probs = torch.softmax(logits / sp.temperature, -1)
                sorted_p, order = probs.sort(descending=True)
                keep = (sorted_p.cumsum(-1) - sorted_p) < sp.top_p
                token = int(order[torch.multinomial(sorted_p * keep, 1, generator=gen)])
            out.append(token)
            x = torch.cat([x, torch.tensor([[token]])], 1)
            if token in stop:
                return CompletionOutput(index, "", tuple(out), None, None, "stop")
        return CompletionOutput(index, "", tuple(out), None, None, "length")

    def reset_prefix_cache(self):
        self.prefix_cache_resets += 1


def install(monkeypatch):
    """Make `import vllm` find this module and pretend a CUDA GPU is there (the model stays on the CPU:
    run r1lab with --device cpu)."""
    LLM.instances.clear()
    module = types.ModuleType("vllm")
    module.LLM, module.SamplingParams = LLM, SamplingParams
    module.RequestOutput, module.CompletionOutput = RequestOutput, CompletionOutput
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")  # restored after the test
    return module
