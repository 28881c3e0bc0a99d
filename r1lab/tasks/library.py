"""The task library: named tasks beyond the embedded world, each a prompt source plus a verifier.

    task = load_task("gsm8k")                          # the shipped examples (r1lab/assets/tasks/)
    task = load_task("math", data="train.parquet")     # your data: JSONL, Parquet or a datasets folder

| task      | rows it reads                                               | verifier (rewards/tasks.py) |
|-----------|-------------------------------------------------------------|-----------------------------|
| gsm8k     | prompt/question, answer "... #### 42"                       | last number == 42           |
| math      | prompt/problem, answer (or a solution with \\boxed{})        | math-verify, in a worker    |
| countdown | numbers/nums, target (prompt optional)                      | exact arithmetic, ast-only  |
| code      | prompt, entry_point, tests [{"args", "expected"}], answer   | runs in r1lab/sandbox.py    |

Rows are normalized to the dict every reward takes: {"prompt", "answer", "verifier", ...} with the
task's own fields kept. Each shipped file is a few dozen examples written for r1lab; with no
--eval-data the last fifth of the examples is held out for evaluation and never trained on.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from ..errors import UserError
from ..rewards import tasks as task_verifiers  # registers the verifiers named below
from ..rewards.parse import parse_number
from . import PromptSet, Task
from .files import load_examples

KNOWN = ["toy", "jsonl", "gsm8k", "math", "countdown", "code"]


def load(name: str, data=None, eval_data=None, eval_problems: int = 200) -> Task:
    """A library task from its shipped examples or from `data` (and `eval_data`)."""
    if name not in NORMALIZERS:
        raise UserError(f"unknown task {name!r}; known tasks: {', '.join(KNOWN)}")
    _check_requirements(name)
    normalize = NORMALIZERS[name]
    train = _normalized(read_rows(data, split="train") if data else shipped_rows(name), normalize,
                        data or f"shipped {name} examples")
    if eval_data:
        held = _normalized(read_rows(eval_data, split="test"), normalize, eval_data)[:eval_problems]
    else:
        n_held = min(eval_problems, len(train) // 5)
        held, train = train[len(train) - n_held:] if n_held else [], train[:len(train) - n_held]
    return Task(name, PromptSet(train), held)


def shipped_rows(name: str) -> list[dict]:
    """The examples that ship with r1lab for a task (r1lab/assets/tasks/<name>.jsonl)."""
    path = resources.files("r1lab").joinpath("assets", "tasks", f"{name}.jsonl")
    return load_examples(Path(str(path)), required=())


def read_rows(path: str, split: str = "train") -> list[dict]:
    """Rows of a JSONL file, a Parquet file or a `datasets.save_to_disk` folder.

    For a folder holding several splits, `split` picks one ("train" for --data, "test" for
    --eval-data); a folder with a single split uses it.
    """
    p = Path(path)
    if p.is_dir():
        return _read_datasets_folder(p, split)
    if p.suffix == ".parquet" or _starts_with(p, b"PAR1"):
        return _read_parquet(p)
    return load_examples(p, required=())


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(magic)) == magic
    except OSError:
        return False


def _read_parquet(path: Path) -> list[dict]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow), "
                        "or convert the file to JSON Lines") from None
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        return pq.read_table(path).to_pylist()
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise UserError(f"{path}: not a readable Parquet file ({e})") from None


def _read_datasets_folder(path: Path, split: str) -> list[dict]:
    try:
        import datasets
    except ImportError:
        raise UserError(f"{path}: is a folder; reading a saved dataset needs the `datasets` package "
                        "(pip install datasets), or give a .jsonl/.parquet file") from None
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:  # noqa: BLE001
        raise UserError(f"{path}: not a folder written by datasets' save_to_disk ({e})") from None
    if isinstance(ds, datasets.DatasetDict):
        if split in ds:
            ds = ds[split]
        elif len(ds) == 1:
            ds = next(iter(ds.values()))
        else:
            raise UserError(f"{path}: has splits {sorted(ds)}, expected a {split!r} split "
                            "(or save the split you want on its own)")
    return [dict(row) for row in ds]


def _normalized(rows: list[dict], normalize, source) -> list[dict]:
    """Every row normalized, errors naming the file and line (JSONL) or row (Parquet, folders)."""
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise UserError(f"{source}: row {i}: expected an object, got {type(row).__name__}")
        where = f"{source}:{row['_line']}" if "_line" in row else f"{source}: row {i}"
        out.append(normalize(row, where))
    if not out:
        raise UserError(f"{source}: no examples")
    return out


def _text(row: dict, where: str, *names: str) -> str:
    """The first of `names` present in the row, as a non-empty string."""
    for name in names:
        if name in row and row[name] is not None:
            value = row[name]
            if not isinstance(value, (str, int, float)) or isinstance(value, bool) or not str(value).strip():
                raise UserError(f"{where}: field {name!r} must be a non-empty string")
            return str(value)
    raise UserError(f"{where}: missing field {' or '.join(repr(n) for n in names)}")


def normalize_gsm8k(row: dict, where: str) -> dict:
    """{"question"|"prompt", "answer": "... #### 42"} -> answer "42", the worked answer as "solution"."""
    prompt, answer = _text(row, where, "prompt", "question"), _text(row, where, "answer")
    reference = task_verifiers.gsm8k_reference(answer)
    if reference is None:
        raise UserError(f"{where}: field 'answer' must end with '#### <number>' (or be a number), "
                        f"got {answer[-60:]!r}")
    number = str(reference.numerator) if reference.denominator == 1 else str(float(reference))
    extra = {"solution": answer} if "####" in answer else {}
    return dict(row, prompt=prompt, answer=number, verifier="gsm8k", **extra)


def normalize_math(row: dict, where: str) -> dict:
    """{"problem"|"prompt", "answer"} or {"problem", "solution" with \\boxed{...}}."""
    prompt = _text(row, where, "prompt", "problem")
    if row.get("answer") not in (None, ""):
        answer = _text(row, where, "answer")
        answer = task_verifiers.last_boxed(answer) or answer
    else:
        solution = _text(row, where, "solution")
        answer = task_verifiers.last_boxed(solution)
        if answer is None:
            raise UserError(f"{where}: no 'answer' field and no \\boxed{{...}} in 'solution'")
    return dict(row, prompt=prompt, answer=answer, verifier="math")


def countdown_prompt(numbers: list[int], target: int) -> str:
    """The question of a countdown example (used when a row brings no prompt of its own)."""
    return (f"Using the numbers {list(numbers)}, write an arithmetic expression that equals {target}. "
            "You may use +, -, *, / and parentheses, and each number at most once. "
            "Give only the expression as the answer, for example (1 + 2) * 3")


def normalize_countdown(row: dict, where: str) -> dict:
    """{"numbers"|"nums": [ints], "target": int, "prompt"?}."""
    numbers = row.get("numbers", row.get("nums"))
    if (not isinstance(numbers, (list, tuple)) or not numbers or len(numbers) > 12
            or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 10**6 for n in numbers)):
        raise UserError(f"{where}: field 'numbers' (or 'nums') must be a list of 1 to 12 integers in [0, 10^6)")
    target = parse_number(_text(row, where, "target", "answer"))
    if target is None or target.denominator != 1:
        raise UserError(f"{where}: field 'target' must be an integer")
    target = int(target)
    prompt = row.get("prompt") or countdown_prompt(numbers, target)
    return dict(row, prompt=prompt, answer=str(target), numbers=list(numbers), target=target, verifier="countdown")


def normalize_code(row: dict, where: str) -> dict:
    """{"prompt", "entry_point", "tests": [{"args": [...], "expected": ...}], "answer"?}."""
    prompt, entry = _text(row, where, "prompt"), _text(row, where, "entry_point")
    if not entry.isidentifier():
        raise UserError(f"{where}: field 'entry_point' must be a Python function name, got {entry!r}")
    tests = row.get("tests")
    if isinstance(tests, str):
        try:
            tests = json.loads(tests)
        except ValueError:
            raise UserError(f"{where}: field 'tests' is a string but not JSON") from None
    if (not isinstance(tests, list) or not tests
            or not all(isinstance(t, dict) and isinstance(t.get("args"), list) and "expected" in t for t in tests)):
        raise UserError(f"{where}: field 'tests' must be a non-empty list of "
                        "{\"args\": [...], \"expected\": ...} objects")
    answer = row.get("answer") or ""  # a reference solution, optional
    return dict(row, prompt=prompt, entry_point=entry, tests=tests, answer=str(answer), verifier="code")


NORMALIZERS = {"gsm8k": normalize_gsm8k, "math": normalize_math, "countdown": normalize_countdown,
               "code": normalize_code}


def _check_requirements(name: str) -> None:
    """Fail before training when a task's verifier cannot work here (never score everything 0)."""
    if name == "math" and not task_verifiers.math_verify_installed():
        raise UserError("task 'math' checks answers with math-verify: pip install math-verify")
    if name == "code":
        from ..sandbox import check_available

        problem = check_available()
        if problem:
            raise UserError(f"task 'code' runs answers in a sandbox, which does not work here: {problem}")
