"""The sandbox stops or blocks hostile programs, scores them 0, and leaves nothing behind.

Every hostile program here is bounded by itself too (a spawn loop stops at 300, sleeps end), so
even a broken sandbox could not take the machine down.
"""

import os
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from r1lab.rewards.tasks import code_passes
from r1lab.sandbox import UID_BASE, SandboxResult, check_available, run_python

REASON = check_available()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"sandbox unavailable here: {REASON}")

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
    import json

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
