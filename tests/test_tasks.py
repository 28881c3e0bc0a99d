"""The task library: shipped examples load and verify, user files load with clear errors, and every
verifier/extractor stays correct, fast and exception-free on right, wrong and hostile answers."""

import json
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from r1lab.errors import UserError
from r1lab.rewards import tasks as T
from r1lab.rewards.rules import accuracy_reward
from r1lab.rewards.verifiers import VERIFIERS, verify
from r1lab.sandbox import check_available
from r1lab.tasks import load_task
from r1lab.tasks.library import countdown_prompt, shipped_rows

TASKS = ["gsm8k", "math", "countdown", "code"]
NEEDS = {"math": T.math_verify_installed(), "code": check_available() is None}
HUGE = "9" * 10_000
NESTED = "{" * 10_000 + "1" + "}" * 10_000
HOSTILE = ["9**9**9", HUGE, "1e999999", NESTED, r"\boxed{" + NESTED + "}", "(" * 10_000 + "1" + ")" * 10_000,
           "x" * 100_000, "\x00\uffff" * 1000, "#### " + HUGE, "```" * 5000, r"\boxed{" * 5000]


def needs(name):
    return pytest.mark.skipif(not NEEDS.get(name, True), reason=f"{name}: requirement missing here")


def quick(fn, *args, limit=1.0):
    """fn(*args), asserting it answered within `limit` seconds."""
    start = time.monotonic()
    out = fn(*args)
    assert time.monotonic() - start < limit, f"{fn.__name__} took too long"
    return out


# ---------------------------------------------------------------- shipped examples and loading


@pytest.mark.parametrize("name", TASKS)
def test_shipped_examples_load(name):
    if not NEEDS.get(name, True):
        with pytest.raises(UserError):
            load_task(name)
        return
    task = load_task(name)
    examples = task.train.examples + task.eval_examples
    assert len(examples) >= 24 and task.eval_examples and task.name == name
    assert not {e["prompt"] for e in task.train.examples} & {e["prompt"] for e in task.eval_examples}
    for e in examples:
        assert e["prompt"].strip() and isinstance(e["answer"], str) and e["verifier"] == name
        assert e["verifier"] in VERIFIERS
    assert len(load_task(name, eval_problems=2).eval_examples) == 2


def reference_answer(example):
    """What a perfect model would put inside <answer></answer> for a shipped example."""
    return {"gsm8k": lambda e: f"The answer is ${e['answer']}.",
            "math": lambda e: f"so the result is \\boxed{{{e['answer']}}}",
            "countdown": lambda e: e["solution"],
            "code": lambda e: f"```python\n{e['answer']}```"}[example["verifier"]](example)


@pytest.mark.parametrize("name", ["gsm8k", "countdown", pytest.param("math", marks=needs("math")),
                                  pytest.param("code", marks=needs("code"))])
def test_shipped_references_verify(name):
    examples = [T_normalize(name, row) for row in shipped_rows(name)]
    with ThreadPoolExecutor(2) as pool:  # the code sandbox runs are independent
        right = list(pool.map(lambda e: verify(reference_answer(e), e), examples))
        wrong = list(pool.map(lambda e: verify("42424242", e), examples))
    assert all(right) and not any(wrong)
    completion = f"<think> easy </think> <answer> {reference_answer(examples[0])} </answer>"
    assert accuracy_reward([completion], [examples[0]]) == [1.0]


def T_normalize(name, row):
    from r1lab.tasks.library import NORMALIZERS

    return NORMALIZERS[name](row, "test")


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


NATIVE_ROWS = {
    "gsm8k": [{"question": f"What is {i} plus {i}?", "answer": f"{i} + {i} = {2 * i}\n#### {2 * i:,}"}
              for i in range(500, 520)],
    "math": [{"problem": f"Compute ${i} \\cdot 2$.", "solution": f"It is $\\boxed{{{2 * i}}}$."} for i in range(20)],
    "countdown": [{"nums": [i, 2, 3], "target": i * 2 + 3} for i in range(4, 24)],
    "code": [{"prompt": f"Write f(x) returning x + {i}", "entry_point": "f",
              "tests": json.dumps([{"args": [1], "expected": 1 + i}])} for i in range(20)],
}


@pytest.mark.parametrize("name", TASKS)
def test_load_task_reads_user_jsonl(name, tmp_path):
    if not NEEDS.get(name, True):
        pytest.skip(f"{name}: requirement missing here")
    data = write_jsonl(tmp_path / "train.jsonl", NATIVE_ROWS[name])
    task = load_task(name, data=data)
    assert len(task.train.examples) == 16 and len(task.eval_examples) == 4
    first = task.train.examples[0]
    assert first["verifier"] == name and first["prompt"].strip()
    expected = {"gsm8k": "1000", "math": "0", "countdown": "11", "code": ""}[name]
    assert first["answer"] == expected
    if name == "countdown":
        assert first["prompt"] == countdown_prompt([4, 2, 3], 11) and verify("4 * 2 + 3", first)
    held = load_task(name, data=data, eval_data=write_jsonl(tmp_path / "eval.jsonl", NATIVE_ROWS[name][:3]))
    assert len(held.train.examples) == 20 and len(held.eval_examples) == 3


@pytest.mark.parametrize("name,row,message", [
    ("gsm8k", {"question": "q?", "answer": "no marker here"}, "####"),
    ("gsm8k", {"answer": "#### 3"}, "'prompt' or 'question'"),
    ("math", {"problem": "p", "solution": "no box"}, "boxed"),
    ("countdown", {"nums": [1, "2"], "target": 3}, "'numbers'"),
    ("countdown", {"nums": [1, 2], "target": "1.5"}, "'target'"),
    ("code", {"prompt": "p", "entry_point": "f", "tests": [{"args": 1, "expected": 2}]}, "'tests'"),
    ("code", {"prompt": "p", "entry_point": "not a name", "tests": []}, "entry_point"),
])
def test_bad_rows_name_file_and_line(name, row, message, tmp_path):
    if not NEEDS.get(name, True):
        pytest.skip(f"{name}: requirement missing here")
    data = write_jsonl(tmp_path / "d.jsonl", NATIVE_ROWS[name][:2] + [row])
    with pytest.raises(UserError, match=message) as info:
        load_task(name, data=data)
    assert f"{data}:3" in str(info.value)


def test_unknown_task_and_missing_file(tmp_path):
    with pytest.raises(UserError, match="known tasks"):
        load_task("nope")
    with pytest.raises(UserError, match="no such file"):
        load_task("gsm8k", data=str(tmp_path / "missing.jsonl"))


def test_parquet_and_datasets_folders(tmp_path):
    try:
        import pyarrow
        import pyarrow.parquet as pq
    except ImportError:
        with pytest.raises(UserError, match="pyarrow"):
            load_task("countdown", data=str(tmp_path / "x.parquet"))
    else:
        rows = NATIVE_ROWS["countdown"]
        pq.write_table(pyarrow.Table.from_pylist(rows), tmp_path / "cd.parquet")
        task = load_task("countdown", data=str(tmp_path / "cd.parquet"))
        assert len(task.train.examples) == 16 and task.train.examples[0]["numbers"] == [4, 2, 3]
        (tmp_path / "bad.parquet").write_text("not parquet")
        with pytest.raises(UserError, match="Parquet"):
            load_task("countdown", data=str(tmp_path / "bad.parquet"))
    folder = tmp_path / "saved"
    folder.mkdir()
    try:
        import datasets  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match="datasets"):
            load_task("countdown", data=str(folder))


# ---------------------------------------------------------------- verifiers: right, wrong, hostile


GSM = {"answer": "The total is 1,024.\n#### 1,024", "verifier": "gsm8k"}
CD = {"answer": "20", "numbers": [3, 5, 7, 7], "target": 20, "verifier": "countdown"}
MATH = {"answer": r"\frac{1}{2}", "verifier": "math"}


def test_gsm8k_verifier():
    assert T.gsm8k_reference(GSM["answer"]) == 1024 and T.gsm8k_reference("#### -3.5") == Fraction(-7, 2)
    for right in ("1024", "$1,024", "so she pays 1024 dollars.", "1024.00"):
        assert quick(T.gsm8k_equal, right, GSM) is True
    for wrong in ("1023", "1024 or 1025", "", "one thousand twenty-four"):
        assert quick(T.gsm8k_equal, wrong, GSM) is False
    for hostile in HOSTILE:
        assert quick(T.gsm8k_equal, hostile, GSM) is False
    assert quick(T.gsm8k_equal, "1024", {"answer": "#### " + HUGE}) is False


def test_countdown_verifier():
    for right in ("(7 - 3) * 5", "(7-3)*5 = 20", "(3 + 7) * (7 - 5)", "(7 / 7 + 3) * 5", " ( 7-3 ) *5 "):
        assert quick(T.countdown_equal, right, CD) is True
    assert quick(T.countdown_equal, "20", {"answer": "20", "numbers": [20, 1]}) is True  # "at most once"
    for wrong in ("7 * 3", "(7 - 3) * 5 * 1", "3 * 3 + 11", "20", "7 + 7 + 7 - 1", "5 * 4", "(7 - 3) * 5 + 0",
                  "7 * 7 - 5 * 3 - 7 - 7", "5 * 7 / 7 * 3 + 5", "(7 - 3) * 5 = 21", ""):
        assert quick(T.countdown_equal, wrong, CD) is False
    for hostile in HOSTILE + ["-(3 - 7) * 5", "2.0 * 10", "__import__('os').system('true')", "abs(-20)",
                              "7 // 3", "[20][0]", "5 * 4 if True else 0", "(lambda: 20)()", "7 ** 2",
                              "0x14", "7 - 7 / (5 - 5)", "3 + 5 + 7 + 7 - 2"]:
        assert quick(T.countdown_equal, hostile, CD) is False
    assert T.countdown_value("3 / 7", [3, 7]) == Fraction(3, 7)


@needs("math")
def test_math_verifier():
    for right in (r"\boxed{\frac12}", r"$\boxed{0.5}$", "1/2", r"\boxed{\dfrac{1}{2}}", r"x = \boxed{\frac{2}{4}}"):
        assert quick(T.math_equal, right, MATH, limit=T.MATH_TIMEOUT_S + 60) is True  # first call starts the worker
    for wrong in (r"\boxed{2}", r"\boxed{\frac{1}{3}}", "", r"\boxed{}", r"\boxed{1/2"):
        assert quick(T.math_equal, wrong, MATH, limit=T.MATH_TIMEOUT_S + 1) is False
    assert quick(T.math_equal, r"\boxed{(1, 2)}", {"answer": "(1,2)"}, limit=5) is True
    assert quick(T.math_equal, r"\boxed{3\sqrt{2}}", {"answer": r"\sqrt{18}"}, limit=5) is True


@needs("math")
@pytest.mark.parametrize("hostile", HOSTILE + [r"\boxed{9^{9^{9}}}", r"\boxed{10^{10^{10}}}",
                                               r"\boxed{" + HUGE[:900] + "}",
                                               r"\boxed{" + "\\frac{1}{" * 40 + "2" + "}" * 40 + "}"])
def test_math_verifier_hostile_answers_are_bounded(hostile):
    # the worker's deadline plus, after a kill, the next start-up bound a pathological comparison
    assert quick(T.math_equal, hostile, {"answer": "9"}, limit=T.MATH_TIMEOUT_S + 30) is False
    assert quick(T.math_equal, r"\boxed{9}", {"answer": "9"}, limit=1.0) is True  # cheap path still works


@needs("math")
def test_math_worker_overrun_is_killed_and_replaced(monkeypatch):
    assert T.math_equal(r"\boxed{0.5}", MATH) is True
    old = T._MATH.proc
    monkeypatch.setattr(T, "MATH_TIMEOUT_S", 0.2)  # shorter than math-verify's own 1 s alarm
    assert quick(T.math_equal, r"\boxed{9^{9^{9}}}", MATH, limit=2.0) is False
    assert T._MATH.proc is None and old.poll() is not None  # the worker was killed
    monkeypatch.undo()
    assert quick(T.math_equal, r"\boxed{0.5}", MATH, limit=60.0) is True  # a fresh one took over


def test_extractors():
    assert T.last_boxed(r"\boxed{1} then \boxed{\frac{2}{3}}") == r"\frac{2}{3}"
    assert T.last_boxed(r"\boxed{\boxed{1}}") == r"\boxed{1}"
    assert T.last_boxed(r"\boxed {x} and \boxed{unclosed") == "x"
    assert T.last_boxed("no box") is None and T.last_boxed(r"\boxed{" + NESTED) is None
    assert T.brace_depth(NESTED) == 10_000 and T.brace_depth("}}{") == 1
    assert T.extract_code("```python\ndef f():\n    pass\n```") == "def f():\n    pass\n"
    assert T.extract_code("```\nx = 1\n``` then ```py\ny = 2\n```") == "y = 2\n"
    assert T.extract_code("def f(): pass") == "def f(): pass"
    for hostile in HOSTILE:
        for fn in (T.last_boxed, T.extract_code, T.brace_depth, T.normalize_latex, T.gsm8k_reference):
            quick(fn, hostile, limit=0.5)


def test_same_value_is_strict():
    assert T.same_value([1, 2.0, {"a": "x"}], [1, 2, {"a": "x"}])
    assert T.same_value(0.1 + 0.2, 0.3) and T.same_value(None, None)
    for got, want in ((1, True), (True, 1), ("1", 1), ([1], 1), ({"a": 1}, {"a": 1, "b": 2}), (None, 0),
                      ([1, 2], [1, 2, 3]), (1.5, 1)):
        assert not T.same_value(got, want)


# ---------------------------------------------------------------- fuzz: never raise, stay bounded, return bools

FRAGMENTS = ["\\boxed{", "{", "}", "\\frac", "####", "```", "```python\n", "9**9**9", "(", ")", "=", "+", "-",
             "*", "/", "9", "0", "1,000", ".", " ", "\n", "$", "^", "\\", "e999", "lambda", "<answer>"]
FUZZ = st.one_of(st.text(max_size=300),
                 st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=200).map("".join))
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(FUZZ, FUZZ)
def test_fuzz_gsm8k_and_extractors(answer, reference):
    assert quick(T.gsm8k_equal, answer, {"answer": reference}, limit=0.5) in (True, False)
    for fn in (T.last_boxed, T.extract_code, T.brace_depth, T.gsm8k_reference, T.normalize_latex):
        quick(fn, answer, limit=0.5)
    boxed = T.last_boxed(answer)
    assert boxed is None or boxed in answer


@FAST
@given(FUZZ, st.lists(st.integers(0, 100), max_size=6), st.integers(-1000, 1000))
def test_fuzz_countdown(answer, numbers, target):
    example = {"answer": str(target), "numbers": numbers, "target": target}
    assert quick(T.countdown_equal, answer, example, limit=0.5) in (True, False)
    value = T.countdown_value(answer, numbers)
    assert value is None or isinstance(value, Fraction)


@needs("math")
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FUZZ)
def test_fuzz_math(answer):
    assert quick(T.math_equal, answer, MATH, limit=T.MATH_TIMEOUT_S + 30) in (True, False)


@needs("code")
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FUZZ)
def test_fuzz_code(answer):
    example = {"answer": "", "entry_point": "f", "tests": [{"args": [1], "expected": 2}], "timeout_s": 2.0}
    assert quick(T.code_passes, answer, example, limit=6.0) in (True, False)
