"""Jobs with dependencies on worker processes (r1lab/lanes.py), the way the pipeline runs its stages."""

import json
import os
import time
from pathlib import Path

import pytest
import torch

from r1lab.errors import UserError
from r1lab.lanes import Prefixed, ready, run_graph


def test_ready_takes_the_first_listed_job_whose_dependencies_are_done():
    order = ["chain-1", "side", "chain-2", "eval-1"]
    deps = {"chain-2": ["chain-1"], "eval-1": ["chain-1", "side"]}
    assert ready(order, deps, done=set(), started=set()) == "chain-1"
    assert ready(order, deps, done=set(), started={"chain-1"}) == "side"
    assert ready(order, deps, done=set(), started={"chain-1", "side"}) is None  # the rest waits on chain-1
    assert ready(order, deps, done={"chain-1"}, started={"chain-1", "side"}) == "chain-2"  # before eval-1
    assert ready(order, deps, done={"chain-1", "side"}, started={"chain-1", "side", "chain-2"}) == "eval-1"


def _recorder(folder: str):
    """run(name): writes when it started and ended; jobs named fail-* raise, slow-* take 60 s."""
    def run(name: str):
        start = time.time()
        Path(folder, f"{name}.pid").write_text(str(os.getpid()))
        print(f"hello from {name}")
        if name.startswith("fail"):
            for _ in range(300):  # fail once the slow job is under way in the other worker
                if any(Path(folder).glob("slow-*.pid")):
                    break
                time.sleep(0.1)
            raise UserError("bad value in field x")
        time.sleep(60 if name.startswith("slow") else 1.5)
        Path(folder, f"{name}.json").write_text(json.dumps({"start": start, "end": time.time(),
                                                            "threads": torch.get_num_threads()}))
        return {"pid": os.getpid()}
    return run


def _times(folder, names):
    return {n: json.loads((folder / f"{n}.json").read_text()) for n in names}


def test_jobs_run_side_by_side_after_their_dependencies(tmp_path, capfd):
    order = ["a", "b", "c", "d"]
    deps = {"c": ["a"], "d": ["b", "c"]}
    results = run_graph(order, deps, _recorder, (str(tmp_path),), lanes=2, threads=4)
    assert set(results) == set(order)
    t = _times(tmp_path, order)
    for name, before in deps.items():
        for d in before:
            assert t[d]["end"] <= t[name]["start"], (d, name)
    assert t["b"]["start"] < t["a"]["end"] and t["a"]["start"] < t["b"]["end"]  # a and b at once
    assert {n: t[n]["threads"] for n in order} == dict.fromkeys(order, 2)  # each on its share
    assert len({r["pid"] for r in results.values()}) == 2  # two workers, each reused
    out = capfd.readouterr().out
    assert "[a] hello from a" in out and "[d] hello from d" in out  # lines carry their job


def test_a_job_listed_to_run_alone_waits_for_the_others_and_holds_every_thread(tmp_path):
    started = []
    run_graph(["a", "c", "e"], {}, _recorder, (str(tmp_path),), lanes=2, threads=4, alone={"c"},
              on_start=lambda name, n: started.append((name, n)))
    # c is ready at once but waits for a; e, listed after c, does not jump ahead of it
    assert started == [("a", 2), ("c", 4), ("e", 2)]
    t = _times(tmp_path, ["a", "c", "e"])
    assert t["a"]["end"] <= t["c"]["start"] and t["c"]["end"] <= t["e"]["start"]
    assert (t["a"]["threads"], t["c"]["threads"], t["e"]["threads"]) == (2, 4, 2)  # what the job itself saw


def test_a_failing_job_stops_the_run_and_kills_the_busy_worker(tmp_path):
    with pytest.raises(UserError, match="fail-1: bad value in field x"):
        run_graph(["slow-1", "fail-1", "after"], {"after": ["fail-1"]}, _recorder, (str(tmp_path),), lanes=2,
                  threads=2)
    pid = int((tmp_path / "slow-1.pid").read_text())
    with pytest.raises(ProcessLookupError):  # killed, not left running its 60 s job
        os.kill(pid, 0)
    assert not (tmp_path / "after.pid").exists() and not (tmp_path / "slow-1.json").exists()


def test_prefixed_writes_whole_lines_only():
    class Sink:
        def __init__(self):
            self.text = ""

        def write(self, s):
            self.text += s

        def flush(self):
            pass

    sink = Sink()
    out = Prefixed(sink, lambda: "[r1] ")
    out.write("step 1 ")
    assert sink.text == ""  # an unfinished line waits for its end
    out.write("loss=0.1\nstep 2\n")
    assert sink.text == "[r1] step 1 loss=0.1\n[r1] step 2\n"
    assert not out.isatty()  # progress bars stay off in workers


def test_pipeline_runs_two_stages_at_a_time_only_on_a_cpu_machine_outside_torchrun(monkeypatch):
    from r1lab.pipeline import auto_jobs

    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert auto_jobs() == 2
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert auto_jobs() == 1  # one thread: nothing to share
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    monkeypatch.setenv("RANK", "0")
    assert auto_jobs() == 1  # under torchrun every process runs each stage with the others
    monkeypatch.delenv("RANK")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert auto_jobs() == 1  # a GPU: stages would share its memory
