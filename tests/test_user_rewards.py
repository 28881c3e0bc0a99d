"""Bring your own verifier: the reward contract, user functions by file, module or Python, async
rewards, reward workers with timeouts, and the examples/ folder, each with tiny settings."""

import asyncio
import importlib.util
import json
import math
from pathlib import Path

import pytest

import r1lab
from r1lab.cli import main
from r1lab.errors import UserError
from r1lab.rewards import RewardRunner, load_function, parse_spec, score
from r1lab.stages.grpo import _step_metrics

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TINY = dict(steps=1, prompts_per_step=2, group_size=2, max_new_tokens=8, eval_problems=0, micro_batch=4)
ROWS = [{"prompt": f"what is {a} times 3", "answer": str(3 * a), "secret": a, "kind": "reasoning"} for a in range(10, 20)]

WORKER_FNS = '''
import os, time

def hangs(completions, examples):
    if any(e.get("hang") for e in examples):
        time.sleep(60)
    return [1.0] * len(completions)

def crashes(completions, examples):
    if any(e.get("crash") for e in examples):
        os._exit(3)
    return [1.0] * len(completions)

def crashes_or_waits(completions, examples):
    if any(e.get("crash") for e in examples):
        os._exit(3)
    time.sleep(1.0)  # still running when the other worker dies
    return [1.0] * len(completions)

def raises(completions, examples):
    return [1 / 0 if "bad" in c else 0.5 for c in completions]

def raises_on_boom(completions, examples):
    return [1 / 0 if e.get("boom") else 0.5 for e in examples]

def always_hangs(completions, examples):
    time.sleep(60)

def wrong_length(completions, examples):
    return [1.0]

NOT_A_FUNCTION = 3
'''


@pytest.fixture()
def fns_file(tmp_path):
    path = tmp_path / "my_rewards.py"
    path.write_text(WORKER_FNS)
    return path


# ---------------------------------------------------------------- the contract


def test_none_adds_nothing_and_is_left_out_of_the_mean():
    def half(completions, examples):
        return [1.0 if e["kind"] == "reasoning" else None for e in examples]

    exs = [{"kind": "reasoning"}, {"kind": "general"}, {"kind": "reasoning"}, {"kind": "general"}]
    s = score(["a", "b", "c", "d"], exs, {"half": 2.0}, {"half": half})
    assert s.total == [2.0, 0.0, 2.0, 0.0] and s.parts["half"] == [1.0, None, 1.0, None] and s.errors == 0
    summary = {"rewards": s.total, "parts": s.parts, "lengths": [1] * 4, "truncated": [False] * 4, "errors": 0,
               "t_gen": 0.0, "t_reward": 0.0, "zero_std": [False, False], "checked": [False] * 4}

    class Opt:
        param_groups = [{"lr": 1.0}]

    row = _step_metrics([summary], {}, Opt(), 0.0)
    assert row["reward_half"] == 1.0  # the mean over the two samples it applies to, not 0.5
    assert row["reward"] == 1.0


def test_builtin_accuracy_does_not_apply_to_general_prompts():
    from r1lab.rewards.rules import accuracy_reward

    good = "<think> x </think> <answer> 36 </answer>"
    assert accuracy_reward([good, good], [{"answer": "36"}, {"answer": "x", "kind": "general"}]) == [1.0, None]


def test_async_rewards_are_awaited_together():
    started = set()

    def waiter(me, other):
        async def fn(completions, examples):
            started.add(me)
            for _ in range(300):  # returns 1 only if the other reward runs at the same time
                if other in started:
                    return [1.0] * len(completions)
                await asyncio.sleep(0.01)
            return [0.0] * len(completions)
        return fn

    s = score(["a", "b"], [{}, {}], {"a": 1.0, "b": 1.0}, {"a": waiter("a", "b"), "b": waiter("b", "a")})
    assert s.parts == {"a": [1.0, 1.0], "b": [1.0, 1.0]}


@pytest.mark.parametrize("bad,message", [
    (lambda c, e: [1.0], "reward 'r' returned 1 values for 2 completions"),
    (lambda c, e: ["1", "2"], "reward 'r' returned a str at position 0"),
    (lambda c, e: [math.nan, 1.0], "reward 'r' returned nan at position 0"),
    (lambda c, e: 1.0, "reward 'r' returned a float"),
])
def test_broken_contract_is_an_error_on_the_first_batch_then_contained(bad, message):
    runner = RewardRunner({"r": bad})
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        runner.score(["a", "b"], [{}, {}], {"r": 1.0})
    good_first = {"calls": 0}

    def flaky(c, e):
        good_first["calls"] += 1
        return [1.0] * len(c) if good_first["calls"] == 1 else bad(c, e)

    runner = RewardRunner({"r": flaky})
    assert runner.score(["a", "b"], [{}, {}], {"r": 1.0}).total == [1.0, 1.0]
    later = runner.score(["a", "b"], [{}, {}], {"r": 1.0})  # later batches: retried one by one, contained
    if "values for" in message:  # one completion at a time, one value is the right length
        assert later.errors == 0 and later.total == [1.0, 1.0]
    else:
        assert later.errors == 2 and later.total == [0.0, 0.0]


# ---------------------------------------------------------------- user functions by name


def test_reward_from_file_and_from_module(fns_file):
    name, fn = load_function(f"{fns_file}:raises")
    assert name == "raises" and fn(["ok"], [{}]) == [0.5]
    name, fn = load_function("r1lab.rewards.rules:format_reward")
    assert name == "format_reward" and fn(["<answer> 1 </answer>"], [{}]) == [0.0]
    weights = parse_spec("accuracy=1,raises=2", r1lab.REWARDS | {"raises": load_function(f"{fns_file}:raises")[1]})
    assert weights == {"accuracy": 1.0, "raises": 2.0}


@pytest.mark.parametrize("spec,message", [
    ("nope.py:f", "--reward-fn nope.py:f: no such file 'nope.py'"),
    ("{file}:missing", "{file}:missing: the file defines no 'missing'"),
    ("{file}:NOT_A_FUNCTION", "{file}:NOT_A_FUNCTION: 'NOT_A_FUNCTION' is a int, not a function"),
    ("{file}", "expected PATH.py:NAME or module:NAME"),
    ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
    ("r1lab.rewards.rules:nothing", "module 'r1lab.rewards.rules' defines no 'nothing'"),
])
def test_bad_reward_fn_specs_stop_before_any_work(tmp_path, capsys, fns_file, spec, message):
    spec, message = spec.format(file=fns_file), message.format(file=fns_file.resolve())
    out = tmp_path / "o"
    code = main(["zero", "--reward-fn", spec, "--out", str(out), "--steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not out.exists()


def test_reward_fn_name_must_be_weighted_or_known(tmp_path, capsys, fns_file):
    code = main(["zero", "--rewards", "accuracy=1,nope=1", "--reward-fn", f"{fns_file}:raises",
                 "--out", str(tmp_path / "o")])
    assert code == 2 and "unknown reward 'nope'" in capsys.readouterr().err


# ---------------------------------------------------------------- worker processes


def test_workers_contain_hangs_crashes_and_exceptions(fns_file):
    fns = {n: load_function(f"{fns_file}:{n}")[1] for n in ("hangs", "crashes", "crashes_or_waits", "raises")}
    runner = RewardRunner(fns, workers=2, timeout=2.0)
    try:
        exs = [{}, {}, {"hang": True}, {}]
        s = runner.score(["a", "b", "c", "d"], exs, {"hangs": 1.0})
        assert s.parts["hangs"] == [1.0, 1.0, 0.0, 0.0]  # the hung call's samples (one chunk) score 0
        assert s.errors == 2 and "--reward-timeout" in s.error_messages[0]
        s = runner.score(["a", "b", "c", "d"], [{}, {}, {}, {"crash": True}], {"crashes": 1.0})
        assert s.parts["crashes"][:2] == [1.0, 1.0] and s.parts["crashes"][3] == 0.0 and s.errors >= 1
        # the dead worker broke the other worker's call in flight: that chunk ran again, alone
        s = runner.score(["a", "b", "c", "d"], [{}, {}, {}, {"crash": True}], {"crashes_or_waits": 1.0})
        assert s.parts["crashes_or_waits"] == [1.0, 1.0, 0.0, 0.0] and s.errors == 2
        s = runner.score(["ok", "bad", "ok", "ok"], [{}] * 4, {"raises": 1.0})  # the pool was replaced
        assert s.parts["raises"] == [0.5, 0.0, 0.5, 0.5] and s.errors == 1
    finally:
        runner.close()


def test_run_finishes_with_hung_and_raising_verifiers(tmp_path, tiny_model_dir, fns_file):
    # two prompts, one group each, one group per worker: the "hang" group's call to `hangs` times
    # out, the "boom" group's call to `raises_on_boom` raises; every other value must survive
    rows = [dict(ROWS[0], hang=True), dict(ROWS[1], boom=True)]
    cfg = r1lab.GRPOConfig(model=str(tiny_model_dir), out=str(tmp_path / "o"), reward_workers=2, reward_timeout=2.0,
                           reward_fn=[f"{fns_file}:hangs", f"{fns_file}:raises_on_boom"],
                           rewards="format=1,hangs=1,raises_on_boom=1", **TINY)
    result = r1lab.grpo(cfg, data=rows)
    row = json.loads(Path(result["metrics"]).read_text().splitlines()[0])
    assert row["reward_errors"] == 4  # 2 hung + 2 raised, each sample counted once
    assert row["reward_hangs"] == 0.5 and row["reward_raises_on_boom"] == 0.25
    assert 0.0 <= row["reward_format"] <= 1.0  # scored in the workers too, not zeroed with the hung call
    assert (Path(result["model"]) / "config.json").is_file()


@pytest.mark.parametrize("workers", [0, 1])
def test_a_row_cannot_name_code_to_run(tmp_path, workers):
    from r1lab.rewards.rules import accuracy_reward
    from r1lab.rewards.verifiers import VERIFIERS

    marker = tmp_path / "ran"
    answers = {"builtins:exec": f"open({str(marker)!r}, 'w').write('x')", "os:system": f"touch {marker}",
               "subprocess:getoutput": f"touch {marker}"}
    exs = [{"answer": a, "verifier": name} for name, a in answers.items()]
    completions = [f"<think> x </think> <answer>{a}</answer>" for a in answers.values()]  # exec'able as is
    runner = RewardRunner({"accuracy": accuracy_reward}, workers=workers, timeout=30.0)
    try:
        s = runner.score(completions, exs, {"accuracy": 1.0})
    except UserError as e:  # every sample raised on the first batch: refused, naming the reward
        assert "reward 'accuracy' raised on every sample" in str(e) and "unknown verifier" in str(e)
    else:
        pytest.fail(f"scored {s}")
    finally:
        runner.close()
    runner = RewardRunner({"accuracy": accuracy_reward}, workers=workers, timeout=30.0)
    runner.checked.add("accuracy")  # a later batch: contained, 0 and counted
    try:
        s = runner.score(completions + ["<think> x </think> <answer> 4 </answer>"], exs + [{"answer": "4"}],
                         {"accuracy": 1.0})
    finally:
        runner.close()
    assert s.parts["accuracy"] == [0.0, 0.0, 0.0, 1.0] and s.errors == 3
    assert not marker.exists() and not set(answers) & set(VERIFIERS)


def test_workers_blame_only_the_reward_that_hung(fns_file):
    fns = {"accuracy": r1lab.REWARDS["accuracy"], "format": r1lab.REWARDS["format"],
           "hangs": load_function(f"{fns_file}:hangs")[1]}
    right = "<think> 12 times 3 is 36 </think> <answer> 36 </answer>"
    runner = RewardRunner(fns, workers=2, timeout=2.0)
    try:
        assert set(runner.keys) == {"accuracy", "format", "hangs"}
        s = runner.score([right] * 4, [{"answer": "36"}, {"answer": "36"}, {"answer": "36", "hang": True},
                                       {"answer": "36"}], {"accuracy": 1.0, "format": 0.5, "hangs": 1.0})
    finally:
        runner.close()
    assert s.parts["accuracy"] == [1.0] * 4 and s.parts["format"] == [1.0] * 4
    assert s.parts["hangs"] == [1.0, 1.0, 0.0, 0.0] and s.total == [2.5, 2.5, 1.5, 1.5]
    assert s.errors == 2 and s.error_messages == ["hangs: no result within --reward-timeout 2 s"]


def test_rewards_that_cannot_reach_a_worker_run_here(monkeypatch, fns_file):
    from r1lab.rewards.verifiers import VERIFIERS, function_key

    def closure(completions, examples):  # defined in a function: no other process can load it
        return [2.0] * len(completions)

    accuracy = r1lab.REWARDS["accuracy"]
    assert function_key(closure) is None and function_key(lambda c, e: c) is None
    assert function_key(load_function(f"{fns_file}:raises")[1]) == f"{fns_file.resolve()}:raises"
    assert function_key(accuracy) == "r1lab.rewards.rules:accuracy_reward"
    right = "<think> x </think> <answer> 36 </answer>"
    runner = RewardRunner({"closure": closure, "accuracy": accuracy}, workers=1, timeout=30.0)
    try:
        assert set(runner.keys) == {"accuracy"}
        s = runner.score([right, right], [{"answer": "36"}] * 2, {"closure": 1.0, "accuracy": 1.0})
        assert s.parts == {"closure": [2.0, 2.0], "accuracy": [1.0, 1.0]} and s.errors == 0
    finally:
        runner.close()
    # a task's verifier that is a closure: accuracy routes to it, so accuracy stays in this process
    monkeypatch.setitem(VERIFIERS, "t.py:task#verify", lambda answer, example: answer.strip() == "yes")
    runner = RewardRunner({"accuracy": accuracy}, workers=1, timeout=30.0)
    try:
        assert runner.keys == {}
        s = runner.score(["<think> x </think> <answer> yes </answer>"], [{"answer": "-", "verifier": "t.py:task#verify"}],
                         {"accuracy": 1.0})
        assert s.parts["accuracy"] == [1.0] and s.errors == 0
    finally:
        runner.close()


def test_a_task_verifier_from_a_file_reaches_the_workers():
    task = r1lab.load_task(str(EXAMPLES / "reverse_task.py") + ":reverse_words", eval_problems=2)
    ex = task.eval_examples[0]
    runner = RewardRunner({"accuracy": r1lab.REWARDS["accuracy"]}, workers=1, timeout=30.0)
    try:
        assert "accuracy" in runner.keys and ex["verifier"] in runner.verifiers
        s = runner.score([f"<think> x </think> <answer> {ex['answer']} </answer>", "<answer> no </answer>"],
                         [ex, ex], {"accuracy": 1.0})
    finally:
        runner.close()
    assert s.parts["accuracy"] == [1.0, 0.0] and s.errors == 0


def test_a_reward_that_raises_on_every_sample_stops_the_first_batch():
    def broken(completions, examples):
        raise KeyError("anwser")

    runner = RewardRunner({"broken": broken})
    with pytest.raises(UserError, match=r"reward 'broken' raised on every sample \(KeyError: 'anwser'\)"):
        runner.score(["a", "b"], [{}, {}], {"broken": 1.0})
    runner.checked.add("broken")  # as after a good first batch: later batches are contained
    later = runner.score(["a", "b"], [{}, {}], {"broken": 1.0})
    assert later.total == [0.0, 0.0] and later.errors == 2


def test_a_run_stopped_by_the_first_batch_leaves_no_worker_behind(tmp_path, tiny_model_dir, fns_file):
    psutil = pytest.importorskip("psutil")
    # workers other tests left running in this process (e.g. the math verifier's) are not this run's
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    cfg = r1lab.GRPOConfig(model=str(tiny_model_dir), out=str(tmp_path / "o"), reward_workers=1, reward_timeout=30.0,
                           reward_fn=[f"{fns_file}:wrong_length"], rewards="format=1,wrong_length=1", **TINY)
    with pytest.raises(UserError, match="reward 'wrong_length' returned 1 values for 4 completions"):
        r1lab.grpo(cfg, data=ROWS)
    alive = [p.cmdline() for p in psutil.Process().children(recursive=True)
             if p.pid not in before and p.status() != psutil.STATUS_ZOMBIE]
    assert [c for c in alive if "resource_tracker" not in " ".join(c)] == []  # the tracker lives with this process


# ---------------------------------------------------------------- the Python API and data


def test_python_api_rewards_see_every_column(tmp_path, tiny_model_dir):
    seen = []

    def secret(completions, examples):
        seen.extend(examples)
        return [float(e["secret"] % 2) if e["secret"] < 15 else None for e in examples]

    async def aio(completions, examples):
        await asyncio.sleep(0)
        return [1.0] * len(completions)

    cfg = r1lab.GRPOConfig(model=str(tiny_model_dir), out=str(tmp_path / "o"), rewards="secret=1,aio=0.5", **TINY)
    result = r1lab.grpo(cfg, data=ROWS, rewards={"secret": secret, "aio": aio})
    assert seen and all("secret" in e and "kind" in e for e in seen)
    row = json.loads(Path(result["metrics"]).read_text().splitlines()[0])
    applied = [e["secret"] % 2 for e in seen if e["secret"] < 15]
    if applied:
        assert row["reward_secret"] == pytest.approx(sum(applied) / len(applied))
    else:
        assert "reward_secret" not in row
    assert row["reward_aio"] == 1.0 and result["model"] == tmp_path / "o" / "model"
    with pytest.raises(UserError, match="does not weigh them"):
        r1lab.grpo(cfg, data=ROWS, rewards={"other": secret})
    with pytest.raises(UserError, match=r"rewards\['accuracy'\]: the name is taken"):  # as --reward-fn refuses it
        r1lab.grpo(cfg, data=ROWS, rewards={"accuracy": secret})


def test_data_alone_is_the_users_file(tmp_path, tiny_model_dir):
    import datasets

    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "saved"))
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    for data in (jsonl, tmp_path / "saved"):
        task = r1lab.load_task(data=str(data), eval_problems=2)
        assert len(task.train.examples) == 8 and task.eval_examples[0]["secret"] == 18


def test_eval_data_reads_the_test_split_of_a_folder(tmp_path):
    import datasets

    folder = tmp_path / "splits"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS[:6]),
                          "test": datasets.Dataset.from_list(ROWS[6:])}).save_to_disk(str(folder))
    task = r1lab.load_task(data=str(folder), eval_data=str(folder), eval_problems=10)
    assert [e["secret"] for e in task.train.examples] == [10, 11, 12, 13, 14, 15]
    assert [e["secret"] for e in task.eval_examples] == [16, 17, 18, 19]
    task = r1lab.load_task(str(EXAMPLES / "reverse_task.py") + ":reverse_words", eval_data=str(folder))
    assert [e["secret"] for e in task.eval_examples] == [16, 17, 18, 19]


@pytest.mark.parametrize("as_dataset", [False, True], ids=["list", "dataset"])
def test_sample_and_reward_model_take_data(tmp_path, tiny_model_dir, monkeypatch, as_dataset):
    import datasets

    from r1lab.stages import sample as stage

    def answered(model, tok, examples, cfg, **kw):  # the policy answers every prompt right
        return [f"<think> times three </think> <answer> {e['answer']} </answer>" for e in examples
                for _ in range(cfg.k)], None, None

    monkeypatch.setattr(stage, "sample_completions", answered)
    wrap = datasets.Dataset.from_list if as_dataset else list
    cfg = r1lab.SampleConfig(model=str(tiny_model_dir), out=str(tmp_path / "rs.jsonl"), prompts=3, samples=2,
                             max_new_tokens=8, general=0, safety=0)
    rows = r1lab.sample(cfg, data=wrap(ROWS[:3]))
    assert sorted(r["prompt"] for r in rows) == sorted(r["prompt"] for r in ROWS[:3])
    pairs = [{"prompt": f"q{i}", "chosen": "good answer", "rejected": "bad"} for i in range(8)]
    rm = r1lab.RMConfig(model=str(tiny_model_dir), out=str(tmp_path / "rm"), epochs=1, batch=4)
    folder = r1lab.reward_model(rm, data=wrap(pairs), eval_data=wrap(pairs[:2]))
    assert (Path(folder) / "config.json").is_file()
    with pytest.raises(UserError, match="data: row 0: missing field 'chosen'"):
        r1lab.reward_model(rm, data=wrap([{"prompt": "q", "response": "r", "label": 1}]))


def test_report_to(tmp_path, monkeypatch):
    from r1lab.logs import MetricsLog, check_report_to

    log = MetricsLog(tmp_path, "grpo", report_to="jsonl")
    log.log(0, {"reward": 1.0})
    log.close()
    assert (tmp_path / "metrics.jsonl").is_file() and not list(tmp_path.glob("events.out.tfevents*"))
    log = MetricsLog(tmp_path / "tb", "grpo", report_to="tensorboard")
    log.log(0, {"reward": 0.75})
    log.close()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb")).Reload()
    assert [(e.step, e.value) for e in events.Scalars("grpo/reward")] == [(0, 0.75)]
    assert not (tmp_path / "tb" / "metrics.jsonl").exists()
    assert check_report_to("none") == set()
    with pytest.raises(UserError, match="unknown 'tensorbord'"):
        check_report_to("terminal,tensorbord")
    monkeypatch.setitem(__import__("sys").modules, "wandb", None)  # as if wandb were not installed
    with pytest.raises(UserError, match=r"pip install 'r1lab\[wandb\]'"):
        check_report_to("wandb")


def test_cli_zero_on_a_parquet_file(tmp_path, tiny_model_dir, capsys):
    import datasets

    data = tmp_path / "d.parquet"
    datasets.Dataset.from_list(ROWS).to_parquet(str(data))
    out = tmp_path / "o"
    code = main(["zero", "--data", str(data), "--model", str(tiny_model_dir), "--steps", "1", "--prompts-per-step", "2",
                 "--group-size", "2", "--max-new-tokens", "8", "--eval-problems", "0", "--out", str(out),
                 "--report-to", "jsonl,tensorboard"])
    assert code == 0, capsys.readouterr().err
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert row["step"] == 0 and "reward_accuracy" in row and list(out.glob("events.out.tfevents*"))


def test_report_to_wandb_offline(tmp_path, tiny_model_dir, monkeypatch, capsys):
    pytest.importorskip("wandb")  # the optional extra: pip install 'r1lab[wandb]'
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "o"
    code = main(["zero", "--model", str(tiny_model_dir), "--steps", "2", "--prompts-per-step", "2", "--group-size", "2",
                 "--max-new-tokens", "8", "--eval-problems", "0", "--out", str(out), "--report-to", "wandb"])
    assert code == 0, capsys.readouterr().err
    runs = list((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1 and not (out / "metrics.jsonl").exists()
    history = runs[0].read_bytes()  # W&B's own record file: the metric names and values are stored as text
    assert b"grpo/reward_format" in history and b"grpo/kl" in history, sorted(p.name for p in out.rglob("*"))


# ---------------------------------------------------------------- examples/


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("args", [
    ["--reward-fn", "examples/short_reasoning.py:short_and_right", "--rewards", "accuracy=1,format=0.5,short_and_right=0.5"],
    ["--reward-fn", "examples/async_reward.py:judged", "--rewards", "accuracy=1,format=0.5,judged=1"],
    ["--task", "examples/reverse_task.py:reverse_words", "--eval-problems", "2", "--eval-k", "2",
     "--eval-max-new-tokens", "8"],
], ids=["reward-file", "async", "task-file"])
def test_command_line_examples(tmp_path, monkeypatch, capsys, args):
    monkeypatch.chdir(EXAMPLES.parent)
    out = tmp_path / "o"
    code = main(["zero", "--steps", "1", "--prompts-per-step", "2", "--group-size", "2", "--max-new-tokens", "16",
                 "--eval-problems", "0", *args, "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    names = ([p.split("=")[0] for p in args[args.index("--rewards") + 1].split(",")] if "--rewards" in args
             else ["accuracy", "format"])  # the default --rewards
    assert [n for n in names if f"reward_{n}" not in row] == []
    if args[0] == "--task":
        assert json.loads((out / "eval.json").read_text())["final"]["n_problems"] == 2


def test_example_task_and_reward_units():
    task = r1lab.load_task(str(EXAMPLES / "reverse_task.py") + ":reverse_words", eval_problems=5)
    ex = task.eval_examples[0]
    from r1lab.rewards.rules import accuracy_reward

    assert accuracy_reward([f"<think> x </think> <answer> {ex['answer']} </answer>"], [ex]) == [1.0]
    assert accuracy_reward(["<think> x </think> <answer> no </answer>"], [ex]) == [0.0]
    short = _load("short_reasoning").short_and_right
    right = "<think> 3 times 4 is 12 </think> <answer> 12 </answer>"
    assert short([right, right], [{"answer": "12"}, {"answer": "12", "kind": "general"}]) == [0.975, None]
    judged = _load("async_reward").judged
    assert asyncio.run(judged(["the answer is 12", "no"], [{"answer": "12"}] * 2)) == [1.0, 0.0]


def test_python_example_on_a_dataset(tmp_path, tiny_model_dir):
    result = _load("zero_with_verifier").main(steps=1, out=str(tmp_path / "o"), model=str(tiny_model_dir), **{
        k: v for k, v in TINY.items() if k != "steps"})
    row = json.loads(Path(result["metrics"]).read_text().splitlines()[0])
    assert "reward_close_enough" in row and (tmp_path / "o" / "model" / "config.json").is_file()


@pytest.mark.slow
def test_readme_python_example_runs_as_shown(tmp_path, monkeypatch, capsys):
    readme = (EXAMPLES.parent / "README.md").read_text()
    section = readme[readme.index("## Your own model and data"):]
    code = section[section.index("```python\n") + len("```python\n"):section.index("```\n", section.index("```python"))]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})  # our own documentation, not model output
    assert (tmp_path / "runs" / "mine" / "model" / "config.json").is_file()
    row = json.loads((tmp_path / "runs" / "mine" / "metrics.jsonl").read_text().splitlines()[0])
    assert "reward_short" in row and "reward_accuracy" in row
    assert "runs/mine/model" in capsys.readouterr().out


def test_pipeline_yaml_takes_the_same_settings(tmp_path):
    from r1lab import config as C
    from r1lab.pipeline import Pipeline

    cfg = C.from_dict(r1lab.GRPOConfig, {"reward_fn": "x.py:f", "reward_workers": 2, "report_to": "jsonl"}, "p.yaml")
    assert cfg.reward_fn == ["x.py:f"] and cfg.reward_workers == 2
    with pytest.raises(UserError, match="p.yaml.reward_fn: expected a string or a list of strings"):
        C.from_dict(r1lab.GRPOConfig, {"reward_fn": 3}, "p.yaml")
    Pipeline(tmp_path, {"r1-zero": {"reward_fn": ["examples/short_reasoning.py:short_and_right"],
                                    "rewards": "accuracy=1,short_and_right=1"}}).validate()


@pytest.mark.parametrize("section,settings,message", [
    ("r1-zero", {"reward_fn": ["nope/missing.py:f"], "rewards": "accuracy=1,f=1"},
     "r1-zero: --reward-fn nope/missing.py:f: no such file 'nope/missing.py'"),
    ("reasoning-rl", {"reward_fn": ["examples/short_reasoning.py:short_and_right"],
                      "rewards": "accuracy=1,short_and_right=1,typo=2"}, "reasoning-rl: --rewards: unknown reward 'typo'"),
    ("rl-all", {"rewards": "accuracy=1,helpfulness=1,safty=1"}, "rl-all: --rewards: unknown reward 'safty'"),
], ids=["missing-file", "typo", "rl-all-typo"])
def test_pipeline_validate_checks_rewards_before_any_work(tmp_path, monkeypatch, section, settings, message):
    from r1lab.pipeline import Pipeline

    monkeypatch.chdir(EXAMPLES.parent)
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        Pipeline(tmp_path, {section: settings, "_path": "p.yaml"}).validate()
    assert not list(tmp_path.iterdir())
