"""Verifiers of the task library (tasks/library.py): "gsm8k", "math", "countdown" and "code".

Importing this module registers them in `verifiers.VERIFIERS`. Like every parser here they take
untrusted model output: inputs are capped before any work, scanners are linear, nothing is
evaluated with `eval`, and the two checks that can be slow by nature run in another process with a
deadline (math: math-verify in a worker; code: the sandbox of r1lab/sandbox.py).

>>> countdown_value("(7 - 3) * 5", [3, 5, 7])
Fraction(20, 1)
>>> last_boxed(r"so \\boxed{\\frac{1}{2}}.")
'\\\\frac{1}{2}'
"""

from __future__ import annotations

import ast
import atexit
import json
import logging
import math
import os
import re
import selectors
import subprocess
import sys
import threading
import time
from collections import Counter
from fractions import Fraction

from .parse import MAX_CHARS, last_number, parse_number
from .verifiers import register

log = logging.getLogger("r1lab")

MAX_EXPRESSION_CHARS = 200  # a countdown answer longer than this is wrong (and not parsed)
MAX_EXPRESSION_NODES = 64
MAX_BOXED_CHARS = 1_000  # a math answer longer than this is not checked (scores 0)
MAX_BRACE_DEPTH = 50  # nor one nested deeper (real answers nest a few levels)
MATH_TIMEOUT_S = 3.0  # wall-clock budget of one math-verify comparison, start-up excluded


# ---------------------------------------------------------------- gsm8k


def gsm8k_reference(answer: str) -> Fraction | None:
    """The reference number of a GSM8K-style answer ("... #### 1,024" -> 1024), or of a bare one."""
    text = str(answer)[-MAX_CHARS:]
    if "####" in text:
        text = text[text.rfind("####") + 4:]
    return parse_number(text.strip().replace("$", ""))


@register("gsm8k")
def gsm8k_equal(answer: str, example: dict) -> bool:
    """The last number of the answer equals the reference ("$1,024." == "#### 1024")."""
    got, want = last_number(answer), gsm8k_reference(example["answer"])
    return got is not None and want is not None and got == want


# ---------------------------------------------------------------- countdown


def countdown_value(expression: str, numbers: list[int]) -> Fraction | None:
    """Exact value of an arithmetic expression over `numbers` (each used at most once), else None.

    Only integer literals, binary + - * /, and parentheses are allowed; anything else (powers,
    names, calls, unary minus, floats) is rejected before evaluation, so no answer can be slow.
    """
    if not isinstance(expression, str) or len(expression) > MAX_EXPRESSION_CHARS:
        return None
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_EXPRESSION_NODES:
        return None
    literals = []
    for node in nodes:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            literals.append(node.value)
        elif not isinstance(node, (ast.Expression, ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div)):
            return None
    if Counter(literals) - Counter(numbers):  # a number not given, or used too often
        return None
    try:
        return _evaluate(tree.body)
    except ZeroDivisionError:
        return None


def _evaluate(node: ast.expr) -> Fraction:
    """Exact rational value of a checked tree (only int constants and + - * / remain)."""
    if isinstance(node, ast.Constant):
        return Fraction(node.value)
    left, right = _evaluate(node.left), _evaluate(node.right)
    op = type(node.op)
    if op is ast.Add:
        return left + right
    if op is ast.Sub:
        return left - right
    if op is ast.Mult:
        return left * right
    return left / right  # ast.Div; Fraction raises ZeroDivisionError on 0


@register("countdown")
def countdown_equal(answer: str, example: dict) -> bool:
    """The answer is an expression over the example's "numbers" equal to its "target".
    A trailing "= <target>" is allowed ("(7 - 3) * 5 = 20"), a trailing wrong value is not."""
    if not isinstance(answer, str) or len(answer) > MAX_EXPRESSION_CHARS:
        return False
    expression, equals, stated = answer.partition("=")
    target = parse_number(str(example.get("target", example["answer"])))
    if target is None or (equals and parse_number(stated) != target):
        return False
    value = countdown_value(expression, [int(n) for n in example["numbers"]])
    return value is not None and value == target


# ---------------------------------------------------------------- math


_BOXED_TOKENS = re.compile(r"\\boxed\s*\{|\{|\}")


def last_boxed(text: str) -> str | None:
    """Content of the last complete \\boxed{...} (the one that closes last), else None.

    One linear pass over the braces with a stack, so unbalanced or deeply nested input costs no
    more than balanced input.
    """
    if not isinstance(text, str) or len(text) > MAX_CHARS:
        return None
    stack: list[int] = []  # start of the content for a \boxed{, -1 for a plain {
    last = None
    for m in _BOXED_TOKENS.finditer(text):
        token = m.group(0)
        if token == "}":
            if stack:
                start = stack.pop()
                if start >= 0:
                    last = (start, m.start())
        else:
            stack.append(m.end() if token != "{" else -1)
    return text[last[0]:last[1]] if last else None


def brace_depth(text: str) -> int:
    """Deepest {} nesting of a text (unbalanced closing braces ignored)."""
    depth = deepest = 0
    for m in re.finditer(r"[{}]", text):
        depth = depth + 1 if m.group(0) == "{" else max(depth - 1, 0)
        deepest = max(deepest, depth)
    return deepest


def normalize_latex(text: str) -> str:
    """Cheap canonical form for the exact-string check: no spaces, no sizing commands, no "$"."""
    text = text.strip().strip("$").rstrip(".")
    for old, new in (("\\left", ""), ("\\right", ""), ("\\!", ""), ("\\,", ""), ("\\;", ""),
                     ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("^{\\circ}", ""), ("^\\circ", "")):
        text = text.replace(old, new)
    return "".join(text.split())


@register("math")
def math_equal(answer: str, example: dict) -> bool:
    """The answer's last \\boxed{} (or the whole answer when it has no box) equals the reference.

    Equal normalized strings are accepted at once; otherwise math-verify decides in a worker
    process with a deadline (MATH_TIMEOUT_S). Without math-verify installed only the normalized
    strings are compared (a warning says so once).
    """
    if not isinstance(answer, str) or len(answer) > MAX_CHARS:
        return False
    got = last_boxed(answer)
    if got is None:
        if "\\boxed" in answer:
            return False  # a box was opened and never closed
        got = answer
    reference = str(example["answer"])
    want = last_boxed(reference) or reference
    if not got.strip() or len(got) > MAX_BOXED_CHARS or brace_depth(got) > MAX_BRACE_DEPTH:
        return False
    if normalize_latex(got) == normalize_latex(want):
        return True
    return _MATH.check(want, got)


# The worker leaves when its stdin closes (the parent is gone). A comparison stuck in C code cannot
# see that, so each one also gets its own CPU-time budget: RLIMIT_CPU is moved to "used + 10 s"
# before it starts, and SIGXCPU ends a runaway even if nobody is left to kill it.
_MATH_WORKER = r"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
sys.setrecursionlimit(5000)
try:
    from math_verify import parse, verify
except ImportError:
    print("unavailable", flush=True)
    raise SystemExit(0)
replies, sys.stdout = sys.stdout, sys.stderr  # stray prints of the library cannot break the protocol
print("ready", file=replies, flush=True)
for line in sys.stdin:
    used = resource.getrusage(resource.RUSAGE_SELF)
    budget = int(used.ru_utime + used.ru_stime) + 10
    resource.setrlimit(resource.RLIMIT_CPU, (budget, resource.RLIM_INFINITY))
    request = json.loads(line)
    try:
        gold = parse("\\boxed{" + request["gold"] + "}", parsing_timeout=1)
        pred = parse("\\boxed{" + request["pred"] + "}", parsing_timeout=1)
        ok = bool(gold) and bool(pred) and bool(verify(gold, pred, timeout_seconds=1))
    except BaseException:
        ok = False
    print("1" if ok else "0", file=replies, flush=True)
"""


class _MathWorker:
    """One long-lived `python -c _MATH_WORKER` process; killed and restarted when a comparison
    overruns its deadline, so a pathological answer costs at most MATH_TIMEOUT_S plus a restart."""

    def __init__(self):
        self.proc = None
        self.available = None  # None: not started yet; False: math-verify is not installed
        self.lock = threading.Lock()
        atexit.register(self.close)

    def check(self, gold: str, pred: str) -> bool:
        with self.lock:
            if self.proc is not None and self.proc.poll() is not None:
                self.close()  # died since the last check (e.g. its CPU budget): start afresh
            if self.available is False or (self.proc is None and not self._start()):
                return False
            request = json.dumps({"gold": gold, "pred": pred}) + "\n"
            try:
                self.proc.stdin.write(request.encode())
                self.proc.stdin.flush()
                reply = self._readline(MATH_TIMEOUT_S)
            except OSError:
                reply = None
            if reply is None:  # overran (or died): kill it, the next check starts a fresh one
                self.close()
                return False
            return reply == "1"

    def _start(self) -> bool:
        self.proc = subprocess.Popen([sys.executable, "-c", _MATH_WORKER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        first = self._readline(120.0)  # importing sympy can take a while on a busy machine
        if first == "ready":
            self.available = True
            return True
        self.close()
        if first == "unavailable":
            self.available = False
            log.warning("math-verify is not installed: the math verifier compares normalized strings "
                        "only (pip install math-verify)")
        return False

    def _readline(self, timeout_s: float) -> str | None:
        """One reply line, or None past the deadline."""
        fd = self.proc.stdout.fileno()
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        deadline, data = time.monotonic() + timeout_s, b""
        try:
            while not data.endswith(b"\n"):
                wait = deadline - time.monotonic()
                if wait <= 0 or not sel.select(timeout=wait):
                    return None
                chunk = os.read(fd, 256)
                if not chunk:
                    return None
                data += chunk
        finally:
            sel.close()
        return data.decode().strip()

    def close(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, 9)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
            for f in (self.proc.stdin, self.proc.stdout):
                try:
                    f.close()
                except OSError:
                    pass
            self.proc = None


_MATH = _MathWorker()


def math_verify_installed() -> bool:
    """Is math-verify importable here (without importing it: it pulls in sympy)?"""
    import importlib.util

    return importlib.util.find_spec("math_verify") is not None


# ---------------------------------------------------------------- code


def extract_code(answer: str) -> str:
    """The last complete ``` fenced block (without its language tag), else the whole answer."""
    if not isinstance(answer, str):
        return ""
    fences = [m.start() for m in re.finditer("```", answer[:MAX_CHARS])]
    if len(fences) < 2:
        return answer
    pairs = len(fences) // 2
    start, end = fences[2 * pairs - 2] + 3, fences[2 * pairs - 1]
    block = answer[start:end]
    first, _, rest = block.partition("\n")
    return rest if first.strip().isidentifier() or not first.strip() else block


# The harness keeps the solution out of its own process: it forks, the child runs the solution
# with stdout/stderr on /dev/null and sends its results through a pipe, and only the harness writes
# to the real stdout. The harness is not dumpable, so the child (same uid) can neither read its
# memory nor reach its file descriptors through /proc or ptrace: whatever the solution prints,
# exits with or patches, the only way to pass is to return the expected values.
_CODE_HARNESS = """\
import ctypes, json, os, sys
ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 0
tests_args = json.loads(sys.stdin.read())
read_end, write_end = os.pipe()
if os.fork() == 0:
    os.close(read_end)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    try:
        space = {{"__name__": "solution"}}
        exec(compile({code!r}, "solution.py", "exec"), space)
        f = space[{entry!r}]
        out = []
        for args in tests_args:
            try:
                out.append({{"ok": f(*args)}})
            except Exception as e:
                out.append({{"error": type(e).__name__}})
        data = json.dumps(out, default=repr).encode()
    except BaseException:
        data = b"null"
    os.write(write_end, data)
    os._exit(0)
os.close(write_end)
chunks, size = [], 0
while size <= {limit}:
    chunk = os.read(read_end, 65536)
    if not chunk:
        break
    chunks.append(chunk)
    size += len(chunk)
sys.stdout.buffer.write(b"".join(chunks)[:{limit} + 1])
"""
MAX_RESULT_BYTES = 60_000  # results JSON longer than this fail (the sandbox caps output at 64 kB)


@register("code")
def code_passes(answer: str, example: dict) -> bool:
    """The answer's code, run in the sandbox, returns the expected value for every test.

    example["tests"]: [{"args": [...], "expected": ...}, ...] (JSON values, or that list as a JSON
    string); example["entry_point"]: the function's name. Only the arguments go into the sandbox;
    the results come back as JSON and are compared here with `same_value`, so code that exits
    early, prints fake output or returns objects that claim to equal anything cannot pass (see the
    harness above). Raises SandboxUnavailable where the sandbox cannot run (scored as an error).
    """
    from ..sandbox import run_python

    code = extract_code(answer)
    tests = example["tests"]
    tests = json.loads(tests) if isinstance(tests, str) else tests
    if not code.strip() or not tests or len(code) > MAX_CHARS:
        return False
    harness = _CODE_HARNESS.format(code=code, entry=str(example["entry_point"]), limit=MAX_RESULT_BYTES)
    result = run_python(harness, stdin=json.dumps([t["args"] for t in tests]),
                        timeout_s=float(example.get("timeout_s", 5.0)))
    if not result.ok or len(result.stdout) > MAX_RESULT_BYTES:
        return False
    try:
        got = json.loads(result.stdout)
    except (ValueError, RecursionError):
        return False
    return (isinstance(got, list) and len(got) == len(tests)
            and all(isinstance(g, dict) and "ok" in g and same_value(g["ok"], t["expected"])
                    for g, t in zip(got, tests)))


def same_value(got, want) -> bool:
    """Strict equality of JSON values: numbers by value (2 == 2.0, floats to 1e-6 relative), every
    other type exactly (1 != True != "1", [1] != 1, None only equals None)."""
    if isinstance(want, bool) or isinstance(got, bool):
        return type(got) is type(want) and got == want
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        if isinstance(want, int) and isinstance(got, int):
            return got == want
        return math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(same_value(g, w) for g, w in zip(got, want))
    if isinstance(want, dict) and isinstance(got, dict):
        return got.keys() == want.keys() and all(same_value(got[k], want[k]) for k in want)
    return type(got) is type(want) and got == want
