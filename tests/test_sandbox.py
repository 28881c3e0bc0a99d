"""The sandbox stops or blocks hostile programs, scores them 0, shows them nothing of the machine
but Python, and leaves nothing behind.

Every hostile program here is bounded by itself too (a spawn loop stops at 300, sleeps end), so
even a broken sandbox could not take the machine down.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from r1lab.rewards.tasks import code_passes
from r1lab.sandbox import UID_BASE, SandboxResult, check_available, run_python, sandbox_root

REPO = Path(__file__).resolve().parents[1]

# What the sandbox needs from the kernel, tried without r1lab's launcher: new namespaces (with a
# user namespace unless root), a private tmpfs, a bind mount. Only a kernel or container that
# refuses these may skip the tests; a sandbox that fails where this works is a bug and fails them.
KERNEL_PROBE = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
def need(what, rc):
    if rc != 0:
        sys.exit(f"{what}: {os.strerror(ctypes.get_errno())}")
flags = 0x00020000 | 0x04000000 | 0x08000000 | 0x20000000 | 0x40000000  # mount, uts, ipc, pid, net
if os.geteuid() == 0:
    need("unshare", libc.unshare(flags))
else:
    uid, gid = os.getuid(), os.getgid()
    need("unshare with a user namespace", libc.unshare(flags | 0x10000000))
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
need("make mounts private", libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None))  # MS_REC | MS_PRIVATE
need("mount a tmpfs", libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, None))
os.mkdir("/tmp/dev")
need("bind mount", libc.mount(b"/dev", b"/tmp/dev", None, 0x1000, None))  # MS_BIND
"""


def kernel_refusal() -> str | None:
    """Why this kernel or container refuses what the sandbox needs (None: it allows it)."""
    if not sys.platform.startswith("linux"):
        return "not Linux"
    probe = subprocess.run([sys.executable, "-I", "-S", "-c", KERNEL_PROBE], capture_output=True, text=True,
                           timeout=60)
    return None if probe.returncode == 0 else (probe.stderr.strip().splitlines() or ["?"])[-1]


REFUSAL = kernel_refusal()
pytestmark = pytest.mark.skipif(REFUSAL is not None, reason=f"the kernel refuses namespaces or mounts: {REFUSAL}")

ADD = {"prompt": "write add(a, b)", "answer": "", "entry_point": "add", "verifier": "code",
       "tests": [{"args": [1, 2], "expected": 3}, {"args": [-4, 4], "expected": 0}]}
GOOD = "def add(a, b):\n    return a + b\n"


def sandbox_pids() -> list[int]:
    """Processes still running as a sandbox uid (root mode: every sandbox process has one)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                uid = os.stat(f"/proc/{entry}").st_uid
            except FileNotFoundError:
                continue
            if UID_BASE <= uid < 2 * UID_BASE:
                found.append(int(entry))
    return found


def host_files_of_sandbox_uids() -> list[str]:
    """Files a sandbox uid owns in the host's shared temp directories (there must be none)."""
    out = []
    for folder in ("/tmp", "/var/tmp", "/dev/shm"):
        for entry in os.scandir(folder) if os.path.isdir(folder) else []:
            try:
                if UID_BASE <= entry.stat(follow_symlinks=False).st_uid < 2 * UID_BASE:
                    out.append(entry.path)
            except FileNotFoundError:
                pass
    return out


@pytest.fixture(autouse=True)
def machine_left_clean():
    """After every test: no sandbox process left, no file of a sandbox uid in shared temp dirs."""
    yield
    deadline = time.monotonic() + 2.0
    while sandbox_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox_pids() == []
    assert host_files_of_sandbox_uids() == []


def test_sandbox_works_where_the_kernel_allows_it():
    assert check_available() is None  # a launcher bug fails here (and everywhere below), never skips


def test_correct_program_runs_and_scores_one():
    r = run_python("import sys\nprint(sum(range(10)))\nprint('err', file=sys.stderr)")
    assert isinstance(r, SandboxResult)
    assert r.ok and r.stdout == "45\n" and r.stderr == "err\n" and r.killed_reason is None
    assert code_passes(f"```python\n{GOOD}```", ADD) is True
    assert code_passes("def add(a, b):\n    return a - b\n", ADD) is False


def test_exit_status_and_stdin():
    r = run_python("import sys\ndata = sys.stdin.read()\nprint(data.upper())\nsys.exit(3)", stdin="héllo")
    assert r.returncode == 3 and r.stdout == "HÉLLO\n" and not r.ok
    assert run_python("import sys; print(repr(sys.stdin.read()))").stdout == "''\n"  # closed: EOF at once


def test_environment_is_minimal_and_unprivileged():
    r = run_python("import os, json\nprint(json.dumps([dict(os.environ), os.getuid(), os.getcwd(), "
                   "sorted(int(p) for p in os.listdir('/proc') if p.isdigit())]))")
    env, uid, cwd, pids = json.loads(r.stdout)
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "LD_LIBRARY_PATH", "LC_CTYPE"}
    assert uid != 0 and cwd == "/tmp" and pids == [1, 2]  # its own PID namespace: init and itself


def test_infinite_loop_is_stopped():
    start = time.monotonic()
    r = run_python("while True:\n    pass", timeout_s=1.0)
    assert r.timed_out and r.killed_reason == "timeout" and not r.ok
    assert time.monotonic() - start < 4
    assert code_passes("def add(a, b):\n    while True:\n        pass\n", dict(ADD, timeout_s=1.0)) is False


def test_cpu_limit_kills_before_the_wall_clock():
    start = time.monotonic()
    r = run_python("while True:\n    pass", timeout_s=20.0, cpu_s=1)
    assert r.killed_reason == "cpu" and not r.timed_out and r.returncode < 0
    assert time.monotonic() - start < 5


def test_sleeping_descendants_in_a_new_session_are_killed():
    # the child leaves the process group and sleeps (at most 60 s even if nothing killed it)
    src = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
           "        time.sleep(60)\n    os._exit(0)\nprint('parent done')")
    r = run_python(src, timeout_s=5)
    assert r.ok and r.stdout == "parent done\n"
    # machine_left_clean checks that the sleeper is gone


def test_spawn_loop_is_capped():
    src = ("import os, time\nn = 0\nfor i in range(300):\n    try:\n        pid = os.fork()\n"
           "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(20)\n        os._exit(0)\n"
           "    n += 1\nprint(n)")
    r = run_python(src, timeout_s=5, max_procs=16)
    assert r.ok and int(r.stdout) < 16
    bomb = "import os\ndef add(a, b):\n    while True:\n        os.fork()\n"
    bounded = "import os\ndef add(a, b):\n    for _ in range(300):\n        os.fork()\n    return a + b\n"
    assert code_passes(bomb, dict(ADD, timeout_s=2.0)) is False
    assert code_passes(bounded, dict(ADD, timeout_s=2.0)) is False


def test_memory_hog_fails():
    r = run_python("x = bytearray(2 * 1024 ** 3)\nprint(len(x))", memory_mb=256)
    assert r.returncode == 1 and r.killed_reason == "memory" and r.stdout == ""
    assert code_passes("def add(a, b):\n    return len(bytearray(2 * 1024 ** 3)) + a + b\n", ADD) is False


def test_writes_outside_the_sandbox_fail(tmp_path):
    token = uuid.uuid4().hex
    targets = [str(Path(__file__).resolve().parent / f"escape-{token}"), f"/var/tmp/escape-{token}",
               f"/dev/shm/escape-{token}", str(tmp_path / f"escape-{token}"), f"/root/escape-{token}"]
    src = ("import sys\nfailed = 0\nfor path in sys.argv[1:] or %r:\n    try:\n        open(path, 'w').write('x')\n"
           "    except OSError:\n        failed += 1\nopen('inside.txt', 'w').write('ok')\nprint(failed)") % (targets,)
    r = run_python(src)
    assert r.ok and int(r.stdout) == len(targets)
    assert not any(os.path.exists(t) for t in targets)
    hostile = "def add(a, b):\n    open(%r, 'w').write('x')\n    return a + b\n" % targets[0]
    assert code_passes(hostile, ADD) is False and not os.path.exists(targets[0])


def test_file_size_limit():
    r = run_python("open('big', 'wb').write(b'x' * (8 * 1024 * 1024))", max_file_mb=1)
    assert r.returncode != 0 and "File too large" in r.stderr


def test_each_run_gets_a_fresh_working_directory():
    assert run_python("open('note', 'w').write('x')").ok
    assert run_python("import os; print(sorted(f for f in os.listdir('.') if not f.startswith('.')))").stdout \
        == "['main.py']\n"


def test_loopback_connection_is_blocked():
    # a real listener on the host's loopback: a shared network namespace would reach it
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    port = server.getsockname()[1]
    try:
        src = ("import socket\ns = socket.socket()\ns.settimeout(2)\ntry:\n    s.connect(('127.0.0.1', %d))\n"
               "    print('connected')\nexcept OSError as e:\n    print('blocked', e.errno)") % port
        r = run_python(src)
        assert r.ok and r.stdout.startswith("blocked")
        hostile = ("import socket\ndef add(a, b):\n    socket.create_connection(('127.0.0.1', %d), timeout=2)\n"
                   "    return a + b\n") % port
        assert code_passes(hostile, ADD) is False
        with pytest.raises(BlockingIOError):
            server.accept()  # nothing ever connected
    finally:
        server.close()


def test_output_is_capped():
    r = run_python("import sys\nfor _ in range(10 ** 6):\n    sys.stdout.write('x' * 1000)", max_output_bytes=10_000)
    assert r.killed_reason == "output" and len(r.stdout) <= 10_000 and not r.ok


def test_code_reward_resists_spoofing():
    always_equal = ("def add(a, b):\n    class Same:\n        def __eq__(self, other):\n            return True\n"
                    "    return Same()\n")
    early_exit = "import os\nos._exit(0)\ndef add(a, b):\n    return 0\n"
    fake_output = ("import sys\nsys.stdout.write('\\n__r1lab_results__ [{\"ok\": 3}, {\"ok\": 0}]\\n')\n"
                   "sys.exit(0)\ndef add(a, b):\n    return 0\n")
    wrong_type = "def add(a, b):\n    return str(a + b)\n"
    steal_stdout = ("import os\ntry:\n    with open('/proc/%d/fd/1' % os.getppid(), 'w') as f:\n"
                    "        f.write('[{\"ok\": 3}, {\"ok\": 0}]')\nexcept OSError:\n    pass\n"
                    "def add(a, b):\n    return 0\n")
    for answer in (always_equal, early_exit, wrong_type, steal_stdout, "", "not python at all (", "x" * 30_000):
        assert code_passes(answer, ADD) is False
    # printing the right results while returning wrong ones does not help either
    assert code_passes(fake_output, ADD) is False


def test_concurrent_runs_are_separate():
    src = ("import os, time\nopen('mine', 'w').write(str(os.getpid()))\ntime.sleep(0.3)\n"
           "print(os.getuid(), os.listdir('.'))")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: run_python(src), range(4)))
    assert all(r.ok for r in results)
    uids = {r.stdout.split()[0] for r in results}
    assert len(uids) == (4 if os.geteuid() == 0 else 1)  # as root, one fresh uid per run


@pytest.mark.skipif(os.geteuid() != 0, reason="finds the sandbox's processes by their fresh uids (root mode)")
def test_sandbox_dies_with_its_supervisor():
    repo = Path(__file__).resolve().parents[1]
    code = ("from r1lab.sandbox import run_python\n"
            "run_python('import os, time\\nif os.fork() == 0:\\n    os.setsid()\\ntime.sleep(60)', timeout_s=60)")
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=repo)
    try:
        deadline = time.monotonic() + 20
        while len(sandbox_pids()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(sandbox_pids()) == 2
        launchers = [int(p) for p in os.listdir("/proc") if p.isdigit() and _ppid(int(p)) == parent.pid]
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 5
    while any(os.path.exists(f"/proc/{p}") for p in launchers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert launchers and not any(os.path.exists(f"/proc/{p}") for p in launchers)
    # machine_left_clean checks that the sleeping program and its setsid() child are gone


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def test_hostile_source_is_refused_before_running():
    with pytest.raises(ValueError):
        run_python("x" * 300_000)
    with pytest.raises(ValueError):
        run_python("pass", memory_mb=1)


# ---------------------------------------------------------------- what the program can read


def shown_under(folder: str) -> set[str]:
    """Names a listing of `folder` must show in the sandbox: the next step towards each path of
    sandbox_root() (the interpreter, its standard library and libraries, /dev/null, /dev/urandom)."""
    prefix = folder.rstrip("/") + "/"
    paths = [p for p, _ in sandbox_root()["binds"]] + [p for p, _ in sandbox_root()["links"]]
    return {p[len(prefix):].split("/")[0] for p in paths if p.startswith(prefix)}


def open_errors(paths: list[str]) -> list[str]:
    """What a sandboxed program got when it tried to read each path: the exception's name or 'read'."""
    src = ("import json, sys\nout = []\nfor path in %r:\n    try:\n        open(path, 'rb').read(64)\n"
           "        out.append('read')\n    except OSError as e:\n        out.append(type(e).__name__)\n"
           "print(json.dumps(out))") % (paths,)
    r = run_python(src)
    assert r.ok, r
    return json.loads(r.stdout)


@pytest.fixture
def public_folder():
    """A folder anyone on this machine may read, as a user's --data folder often is."""
    folder = tempfile.mkdtemp(prefix="r1lab-sandbox-test-", dir="/var/tmp")
    os.chmod(folder, 0o755)
    yield Path(folder)
    shutil.rmtree(folder)


def test_every_bind_is_python_a_library_or_a_device():
    # checked against the interpreter's own description of itself, not against sandbox_root's logic
    import sysconfig

    exe = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    base = os.path.realpath(sys.base_prefix) + "/"
    stdlib = {os.path.realpath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib")}
    private = [os.path.realpath(p) for p in (REPO, sys.prefix)]  # the checkout and the venv

    def kind(path: str) -> str | None:
        if path == exe:
            return "interpreter"
        if path in ("/dev/null", "/dev/urandom"):
            return "device"
        if os.path.isdir(path):
            inside = path in stdlib or any(path.startswith(d + "/") for d in stdlib)
            return "stdlib" if path.startswith(base) and inside else None
        with open(path, "rb") as f:
            elf = f.read(4) == b"\x7fELF"
        return "library" if elf and ".so" in os.path.basename(path) else None

    binds = [path for path, _ in sandbox_root()["binds"]]
    assert {p: kind(p) for p in binds if kind(p) is None} == {}
    assert {"interpreter", "device", "stdlib", "library"} <= {kind(p) for p in binds}
    holding = [(p, x) for p in binds for x in private if x == p or x.startswith(p + "/") or p.startswith(x + "/")]
    assert holding == []


def test_the_root_shows_only_python():
    home = os.path.expanduser("~")
    src = ("import json, os\nout = {}\nfor folder in %r:\n    try:\n        out[folder] = sorted(os.listdir(folder))\n"
           "    except OSError as e:\n        out[folder] = type(e).__name__\nprint(json.dumps(out))"
           ) % (["/", home, "/home", "/etc"],)
    r = run_python(src)
    seen = json.loads(r.stdout)
    assert seen["/"] == sorted(shown_under("/") | {"dev", "proc", "tmp"})
    assert not {"etc", "sys", "boot"} & set(seen["/"])
    # nothing of the home folders, or only the way to an interpreter installed there (pyenv)
    for folder in (home, "/home", "/etc"):
        assert seen[folder] == (sorted(shown_under(folder)) or "FileNotFoundError"), folder


def test_nothing_beyond_python_anywhere():
    # a full walk of what the program sees, outside its own /proc and /tmp and the standard library
    src = ("import json, os, sys\nstdlib = tuple(p + '/' for p in sys.path)\nseen = []\n"
           "for folder, dirs, files in os.walk('/'):\n"
           "    dirs[:] = [d for d in dirs if os.path.join(folder, d) not in ('/proc', '/tmp')]\n"
           "    for name in dirs + files:\n        path = os.path.join(folder, name)\n"
           "        if not path.startswith(stdlib):\n            seen.append(path)\nprint(json.dumps(seen))")
    r = run_python(src, timeout_s=10)
    root = sandbox_root()
    shown = [p for p, _ in root["binds"]] + [p for p, _ in root["links"]] + root["hide"]
    allowed = set(shown) | {os.path.dirname(p) for p in shown} | {"/proc", "/tmp"}
    for path in shown:
        while path != "/":
            allowed.add(path := os.path.dirname(path))
    seen = json.loads(r.stdout)
    assert seen and [p for p in seen if p not in allowed] == []


def test_installed_packages_are_hidden():
    # the interpreter's own site-packages (pip, pytest, maybe r1lab itself) shows as an empty folder
    src = ("import json, os, sys\nout = {}\nfor folder in sys.path:\n    for name in ('site-packages', 'dist-packages'):\n"
           "        path = os.path.join(folder, name)\n        if os.path.isdir(path):\n"
           "            out[path] = os.listdir(path)\nprint(json.dumps(out))")
    seen = json.loads(run_python(src).stdout)
    assert seen == {p: [] for p in sandbox_root()["hide"]}


def test_training_data_is_out_of_reach(public_folder):
    shipped = REPO / "r1lab" / "assets" / "tasks" / "code.jsonl"  # the data of `r1lab zero --task code`
    data = public_folder / "train.jsonl"  # a user's --data
    shutil.copy(shipped, data)
    os.chmod(data, 0o644)
    checkpoints = public_folder / "runs" / "zero" / "step-10"
    checkpoints.mkdir(parents=True)
    (checkpoints / "config.json").write_text("{}")
    for path in (public_folder, public_folder / "runs", public_folder / "runs" / "zero", checkpoints):
        os.chmod(path, 0o755)
    assert open_errors([str(shipped), str(data), str(checkpoints / "config.json")]) == ["FileNotFoundError"] * 3


def test_r1lab_source_is_out_of_reach():
    sources = [REPO / "r1lab" / "sandbox.py", REPO / "r1lab" / "rewards" / "tasks.py", REPO / "tests" / "test_sandbox.py"]
    assert open_errors([str(p) for p in sources]) == ["FileNotFoundError"] * 3
    # nor does the command line of its process 1 (the launcher) name the project or its venv
    r = run_python("print(open('/proc/1/cmdline').read().replace('\\0', ' '))")
    assert r.ok and "--launch" in r.stdout
    assert str(REPO) not in r.stdout and sys.prefix not in r.stdout and "sandbox.py" not in r.stdout


def test_other_processes_are_closed():
    # process 1 (init) is not dumpable; this test's own process is outside the sandbox's PID namespace
    assert open_errors(["/proc/1/environ", f"/proc/{os.getpid()}/environ"]) == ["PermissionError", "FileNotFoundError"]


LOOKUP = '''\
import json, os

def search(top):
    """[path, expected] from every JSON or JSONL record with tests for `secret` under `top`."""
    found = []
    for folder, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if os.path.join(folder, d) != "/proc"]
        for name in files:
            if name.endswith((".json", ".jsonl")):
                path = os.path.join(folder, name)
                try:
                    with open(path, encoding="utf-8") as f:
                        for line in f:
                            if '"secret"' in line:
                                found.append([path, json.loads(line)["tests"][0]["expected"]])
                except (OSError, ValueError, KeyError, IndexError, TypeError):
                    pass
    return found

def secret():
    found = search("/")
    return found[0][1] if found else None
'''


def test_expected_outputs_cannot_be_looked_up(public_folder):
    token = uuid.uuid4().hex  # the answer: no way to compute it, only to find it
    example = {"prompt": "write secret()", "answer": "", "entry_point": "secret", "verifier": "code",
               "tests": [{"args": [], "expected": token}]}
    data = public_folder / "train.jsonl"
    data.write_text(json.dumps(example) + "\n")
    os.chmod(data, 0o644)
    # on the machine the lookup works: it finds the record and its expected output
    host = subprocess.run([sys.executable, "-c", LOOKUP + f"print(__import__('json').dumps(search({str(public_folder)!r})))"],
                          capture_output=True, text=True, timeout=30)
    assert json.loads(host.stdout) == [[str(data), token]]
    # in the sandbox it finds nothing anywhere, and the reward is 0
    r = run_python(LOOKUP + "print(json.dumps(search('/')))", timeout_s=10)
    assert r.ok and json.loads(r.stdout) == []
    assert code_passes(f"```python\n{LOOKUP}```", example) is False
    assert code_passes(f"```python\ndef secret():\n    return {token!r}\n```", example) is True


def test_a_normal_solution_uses_the_stdlib_and_its_scratch_folder():
    solution = ("import collections, decimal, fractions, hashlib, heapq, itertools, json, math, re, sqlite3\n"
                "def add(a, b):\n    with open('scratch.json', 'w') as f:\n        json.dump([a, b], f)\n"
                "    with open('scratch.json') as f:\n        x, y = json.load(f)\n"
                "    db = sqlite3.connect(':memory:')\n    total = db.execute('select ? + ?', (x, y)).fetchone()[0]\n"
                "    assert hashlib.sha256(b'x').hexdigest() and re.match('a', 'a')\n"
                "    return int(decimal.Decimal(total)) + int(fractions.Fraction(0))\n")
    assert code_passes(solution, ADD) is True
