"""The vLLM rollout backend against a fake `vllm` module (vLLM needs a CUDA GPU; none here).

The fake records what the backend asks of vLLM and answers from a script, so these tests check the
mapping both ways: our SamplingParams/seeds/prompts -> vLLM requests, vLLM outputs -> Rollout.
"""

import os
import sys
import types
from types import SimpleNamespace

import pytest
import torch

from r1lab.engine import SamplingParams
from r1lab.errors import UserError
from r1lab.rollout_vllm import VLLMRollout, check_available

EOS = 2


class FakeSamplingParams:
    def __init__(self, **kwargs):
        if kwargs.get("temperature", 1.0) == 0 and kwargs.get("n", 1) > 1:
            raise ValueError("n must be 1 when using greedy sampling")  # as vLLM does
        self.kwargs = kwargs


class FakeLLM:
    """Answers sample j of a prompt from `script[prompt][j]` = (token_ids, finish_reason)."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.multiprocessing_env = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING")
        self.script = {}
        self.calls = []
        self.events = []
        self.runner_model = FakeVLLMModel(self.events)
        worker = SimpleNamespace(model_runner=SimpleNamespace(model=self.runner_model))
        self.llm_engine = SimpleNamespace(model_executor=SimpleNamespace(driver_worker=worker))

    def generate(self, prompts, sampling_params, use_tqdm=True):
        self.calls.append((prompts, sampling_params))
        outs = []
        for prompt, sp in zip(prompts, sampling_params):
            script = self.script[tuple(prompt["prompt_token_ids"])]
            samples = [SimpleNamespace(index=j, token_ids=tuple(ids), finish_reason=reason)
                       for j, (ids, reason) in enumerate(script[:sp.kwargs["n"]])]
            outs.append(SimpleNamespace(outputs=samples[::-1]))  # vLLM does not promise index order
        return outs

    def reset_prefix_cache(self):
        self.events.append("reset_prefix_cache")


class FakeVLLMModel:
    def __init__(self, events):
        self.events = events
        self.loaded = []

    def load_weights(self, weights):
        weights = [(name, t.clone()) for name, t in weights]
        self.loaded.append(weights)
        self.events.append("load_weights")
        return {name for name, _ in weights}


@pytest.fixture()
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.LLM = FakeLLM
    module.SamplingParams = FakeSamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")  # restored after the test
    return module


def test_check_available_without_vllm(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` fail
    with pytest.raises(UserError, match=r"pip install 'r1lab\[vllm\]'"):
        check_available()


def test_check_available_without_cuda(fake_vllm, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="needs a CUDA GPU; this machine has none"):
        check_available()
    with pytest.raises(UserError, match="needs a CUDA GPU"):
        VLLMRollout("model", max_model_len=64)


def test_check_available_passes_with_vllm_and_cuda(fake_vllm):
    check_available()


def test_engine_is_built_in_process(fake_vllm):
    r = VLLMRollout("some/model", gpu_memory_utilization=0.25, max_model_len=128, dtype="bfloat16", seed=3)
    assert r.llm.multiprocessing_env == "0"  # set before the engine was built
    assert r.llm.kwargs == {"model": "some/model", "gpu_memory_utilization": 0.25, "max_model_len": 128,
                            "dtype": "bfloat16", "seed": 3}


def test_generate_maps_requests_and_outputs(fake_vllm):
    r = VLLMRollout("m", max_model_len=64)
    a, b = [5, 6, 7], [8, 9]
    r.llm.script = {
        (5, 6, 7): [([10, 11, EOS], "stop"),  # EOS kept by vLLM
                    ([12, 13], "stop"),  # EOS stripped: put back
                    ([14, 15, 16, 17], "length")],
        (8, 9): [([20, 21, 22, 23], "length"),
                 ([24, 25, 26, EOS], "length"),  # EOS as the last allowed token: a stop, not truncated
                 ([27], "stop")],
    }
    out = r.generate([a, b], n=3, params=SamplingParams(4, temperature=0.7, top_p=0.9), seeds=[101, 202],
                     eos_id=EOS)

    prompts, requests = r.llm.calls[0]
    assert prompts == [{"prompt_token_ids": a}, {"prompt_token_ids": b}]
    for req, seed in zip(requests, [101, 202]):
        assert req.kwargs["seed"] == seed
        assert req.kwargs["n"] == 3
        assert req.kwargs["max_tokens"] == 4
        assert req.kwargs["temperature"] == 0.7 and req.kwargs["top_p"] == 0.9
        assert req.kwargs["stop_token_ids"] == [EOS] and req.kwargs["ignore_eos"] is True

    assert out.completions == [[10, 11, EOS], [12, 13, EOS], [14, 15, 16, 17],
                               [20, 21, 22, 23], [24, 25, 26, EOS], [27, EOS]]
    assert out.truncated == [False, False, True, True, False, False]
    assert out.logprobs is None
    assert out.n_prefill_tokens == 5
    assert out.n_decode_tokens == sum(len(c) for c in out.completions)


def test_generate_greedy_samples_once_per_prompt(fake_vllm):
    r = VLLMRollout("m", max_model_len=64)
    r.llm.script = {(1, 3): [([30, 31, EOS], "stop")], (4,): [([40, 41], "length")]}
    out = r.generate([[1, 3], [4]], n=4, params=SamplingParams(2, temperature=0.0), seeds=[7, 8], eos_id=EOS)
    requests = r.llm.calls[0][1]
    assert [q.kwargs["n"] for q in requests] == [1, 1]
    assert [q.kwargs["temperature"] for q in requests] == [0.0, 0.0]
    assert out.completions == [[30, 31, EOS]] * 4 + [[40, 41]] * 4
    assert out.truncated == [False] * 4 + [True] * 4
    out.completions[0].append(99)  # the n copies are separate lists
    assert out.completions[1] == [30, 31, EOS]


def test_generate_rejects_prompt_longer_than_model_len(fake_vllm):
    r = VLLMRollout("m", max_model_len=8)
    with pytest.raises(UserError, match="max_model_len 8"):
        r.generate([[1] * 5], n=2, params=SamplingParams(4), seeds=[0], eos_id=EOS)


def _tiny_policy():
    return torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))


def test_refresh_loads_every_parameter_then_resets_prefix_cache(fake_vllm):
    r = VLLMRollout("m", max_model_len=64)
    policy = _tiny_policy()
    r.refresh(policy)
    (loaded,) = r.llm.runner_model.loaded
    expected = list(policy.named_parameters())
    assert [name for name, _ in loaded] == [name for name, _ in expected]
    assert all(torch.equal(t, p) for (_, t), (_, p) in zip(loaded, expected))
    assert r.llm.events == ["load_weights", "reset_prefix_cache"]

    with torch.no_grad():  # an optimizer step: the next refresh sends the new values
        policy[1].weight.add_(1.0)
    r.refresh(policy)
    assert torch.equal(dict(r.llm.runner_model.loaded[1])["1.weight"], policy[1].weight)


def test_refresh_through_the_worker_spelling(fake_vllm):
    r = VLLMRollout("m", max_model_len=64)
    model = r.llm.runner_model
    r.llm.llm_engine.model_executor.driver_worker = SimpleNamespace(
        worker=SimpleNamespace(model_runner=SimpleNamespace(model=model)))
    r.refresh(_tiny_policy())
    assert len(model.loaded) == 1 and len(model.loaded[0]) == 5


def test_refresh_through_apply_model(fake_vllm):
    r = VLLMRollout("m", max_model_len=64)
    model = r.llm.runner_model
    del r.llm.llm_engine.model_executor  # a multiprocess-style engine: no executor in this process
    r.llm.apply_model = lambda fn: [fn(model)]
    r.refresh(_tiny_policy())
    assert [name for name, _ in model.loaded[0]] == ["0.weight", "1.weight", "1.bias", "2.weight", "2.bias"]


def test_refresh_without_any_weight_api_is_a_user_error(fake_vllm):
    r = VLLMRollout("m", max_model_len=64)
    del r.llm.llm_engine.model_executor
    with pytest.raises(UserError, match="load weights in process"):
        r.refresh(_tiny_policy())


def test_close_is_idempotent(fake_vllm):
    r = VLLMRollout("m", max_model_len=64)
    shut = []
    r.llm.llm_engine.engine_core = SimpleNamespace(shutdown=lambda: shut.append(True))
    r.close()
    r.close()
    assert shut == [True] and r.llm is None


def test_zero_with_vllm_rollout_stops_with_a_clear_error_where_vllm_cannot_run(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "r1lab", "zero", "--rollout", "vllm", "--steps", "1",
                           "--out", str(tmp_path / "z")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "--rollout vllm needs" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "z").exists()  # stopped before any work


def test_zero_runs_end_to_end_through_the_vllm_api(monkeypatch, tmp_path, tiny_model_dir, capsys):
    """`r1lab zero --rollout vllm`: rollouts and both evaluations go through the engine, the engine gets
    the policy's weights after every update, close() shuts it down; resuming on the HF engine is refused."""
    import json

    from fake_vllm import install

    from r1lab.cli import main
    from r1lab.model import load_model

    fake = install(monkeypatch)
    out = tmp_path / "run"
    args = ["zero", "--model", str(tiny_model_dir), "--rollout", "vllm", "--device", "cpu", "--prompts-per-step", "2",
            "--group-size", "2", "--max-new-tokens", "6", "--eval-problems", "3", "--eval-k", "2",
            "--eval-max-new-tokens", "6", "--out", str(out)]
    assert main([*args, "--steps", "2"]) == 0, capsys.readouterr().err
    llm = fake.LLM.instances[-1]
    assert len(fake.LLM.instances) == 1
    # 2 steps x 2 prompts of training, then 3 held-out problems before and after training
    assert [sp.n for sp in llm.requests] == [2] * 4 + [2] * 3 + [2] * 3
    assert [sp.max_tokens for sp in llm.requests] == [6] * 4 + [6] * 6
    assert llm.llm_engine.model_executor.driver_worker.model_runner.model.loads == 2  # after each update
    final = load_model(out / "model")
    engine_weights = dict(llm.hf.named_parameters())
    for name, p in final.named_parameters():
        assert torch.equal(p, engine_weights[name]), name  # the engine sampled the trained policy
    assert llm.llm_engine.engine_core.shut_down  # close() released it
    results = json.loads((out / "eval.json").read_text())
    assert results["base"]["n_problems"] == results["final"]["n_problems"] == 3
    args[args.index("vllm")] = "hf"
    assert main([*args, "--steps", "3"]) == 2
    assert "settings differ: rollout" in capsys.readouterr().err


def test_a_setup_that_fails_after_starting_the_engine_shuts_it_down(monkeypatch, tmp_path, tiny_model_dir):
    """The engine holds GPU memory: a run that stops during setup (here: the reward runner) closes it."""
    from fake_vllm import install

    import r1lab.stages.grpo as grpo
    from r1lab.cli import main

    fake = install(monkeypatch)

    def broken(*args, **kwargs):
        raise RuntimeError("setup failed after the engine started")

    monkeypatch.setattr(grpo, "RewardRunner", broken)
    args = ["zero", "--model", str(tiny_model_dir), "--rollout", "vllm", "--device", "cpu", "--prompts-per-step", "2",
            "--group-size", "2", "--max-new-tokens", "6", "--eval-problems", "0", "--steps", "1",
            "--out", str(tmp_path / "run")]
    with pytest.raises(RuntimeError, match="setup failed"):
        main(args)
    assert len(fake.LLM.instances) == 1 and fake.LLM.instances[0].llm_engine.engine_core.shut_down
