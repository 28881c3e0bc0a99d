"""Run untrusted Python (model output) in a throw-away sandbox: `run_python(source) -> SandboxResult`.

    result = run_python("print(sum(range(10)))", timeout_s=5)
    result.stdout == "45\\n" and result.ok

Why a sandbox: the code task's reward runs what the model wrote, and a policy under RL pressure
writes anything (loops, fork bombs, deletes, connections) by accident or as a reward hack. Nothing
it writes may slow, damage or reach outside the training machine.

How (Linux only). The parent never evaluates the code. It starts a fresh interpreter (the
*launcher*, this file run as a script) that unshares new PID, network, mount, IPC and UTS namespaces
(plus a user namespace when not run as root), forks an *init* that is process 1 of the new PID
namespace and prepares the mounts, and init forks the *worker* that sets the limits, drops to an
unprivileged identity and execs `python -I -S` on the code. When init exits (after the worker or
when the launcher dies, via the parent-death signal) the kernel kills every process left in the
namespace, and the namespace's private tmpfs disappears with it.

Guaranteed here (root with CAP_SYS_ADMIN, or a kernel with unprivileged user namespaces; checked
by tests/test_sandbox.py):
- wall clock: the whole run is killed (SIGKILL to the process group, and through the PID namespace
  to every process the code started, even ones that left the group) after `timeout_s`;
- CPU time: RLIMIT_CPU (SIGXCPU at the limit, SIGKILL a second later);
- memory: RLIMIT_AS on every process (allocations fail past `memory_mb`);
- processes: RLIMIT_NPROC. As root the code runs as a fresh uid (1073741824 and up, a different one
  per concurrent run, never a real account), so the limit counts the sandbox's processes only;
  without root, a new user namespace has its own count;
- files: RLIMIT_FSIZE per file; the working directory is a tmpfs of `disk_mb` (and at most 4096
  inodes) mounted on /tmp, private to the run, gone when it ends; every other mount is remounted
  read-only in the run's mount namespace, so no write outside /tmp succeeds (/dev/null and other
  device nodes still work);
- network: a new network namespace with no interface up: every connect, loopback included, fails;
- no privileges: no capabilities, no_new_privs (setuid binaries do not elevate), no supplementary
  groups, a fresh /proc that shows only the run's own processes;
- I/O: stdin is a private in-memory copy of `stdin` (or /dev/null), stdout/stderr are each kept up to
  `max_output_bytes` (more kills the run), the environment is a fixed minimal one.

Not guaranteed: reads. The code can read whatever a stranger to this machine's files may read
(world-readable files, /sys, the interpreter's own install). It cannot write or connect anywhere,
but keep secrets out of world-readable files. Also: the wall-clock limit includes interpreter
start-up (~0.1 s); memory kept in the tmpfs counts toward the machine's memory, not RLIMIT_AS (hence
the `disk_mb` cap); CPU-time and memory limits are per process (at most `max_procs` of them). When
namespaces cannot be created (a container without CAP_SYS_ADMIN and without user namespaces),
`run_python` raises `SandboxUnavailable` instead of running anything unsandboxed.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

MAX_SOURCE_CHARS = 256_000  # longer programs are refused before anything starts
MAX_STDIN_CHARS = 1_000_000
UID_BASE = 1 << 30  # sandbox uids: UID_BASE + (parent pid % 2**22) * 256 + run counter % 256
WORKDIR = "/tmp"
_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": WORKDIR, "TMPDIR": WORKDIR, "LANG": "C.UTF-8"}
_counter = itertools.count()
_counter_lock = threading.Lock()


class SandboxUnavailable(RuntimeError):
    """This machine cannot provide the isolation promised above (nothing was run)."""


@dataclass(frozen=True)
class SandboxResult:
    returncode: int | None  # exit status of the code; -N when killed by signal N; None if unknown
    stdout: str
    stderr: str
    timed_out: bool  # the wall-clock limit was hit
    killed_reason: str | None  # "timeout", "output", "cpu", "memory", "killed (...)", "signal N", or None

    @property
    def ok(self) -> bool:
        """The code ran to completion and exited 0 within every limit."""
        return self.returncode == 0 and not self.timed_out and self.killed_reason is None


def run_python(source: str, stdin: str = "", timeout_s: float = 5.0, memory_mb: int = 256,
               max_procs: int = 16, max_file_mb: int = 4, disk_mb: int = 16,
               max_output_bytes: int = 64_000, cpu_s: float | None = None) -> SandboxResult:
    """Run `source` as a Python 3 program in a fresh sandbox and return what it did.

    The program runs as `python -I -S main.py` in /tmp (its private tmpfs), with only the standard
    library. Limits: `timeout_s` wall clock for the whole run; `cpu_s` CPU seconds per process
    (default: timeout_s rounded up); `memory_mb` address space per process; `max_procs` processes
    and threads in all; `max_file_mb` per file; `disk_mb` for all files; `max_output_bytes` per
    stream. Raises SandboxUnavailable if the isolation cannot be set up, ValueError on bad limits.
    """
    if not isinstance(source, str) or len(source) > MAX_SOURCE_CHARS:
        raise ValueError(f"source must be a str of at most {MAX_SOURCE_CHARS} characters")
    if len(stdin) > MAX_STDIN_CHARS:
        raise ValueError(f"stdin must be at most {MAX_STDIN_CHARS} characters")
    if not (timeout_s > 0 and memory_mb >= 32 and max_procs >= 1 and max_file_mb >= 1 and disk_mb >= 1):
        raise ValueError("limits must be positive (memory_mb >= 32: the interpreter itself needs it)")
    config = {
        "source": source, "stdin": stdin,
        "uid": _sandbox_uid() if os.geteuid() == 0 else None,  # None: run in a user namespace
        "cpu_s": max(1, math.ceil(timeout_s if cpu_s is None else cpu_s)), "memory_mb": int(memory_mb),
        "max_procs": int(max_procs), "max_file_mb": int(max_file_mb), "disk_mb": int(disk_mb),
        "python": _python_paths(), "parent_pid": os.getpid(), "wall_s": timeout_s,
    }
    return _supervise(config, timeout_s, max_output_bytes)


@functools.lru_cache(maxsize=1)
def check_available() -> str | None:
    """None when the sandbox works on this machine, else why not (one line). Runs a trivial
    program once per process."""
    try:
        result = run_python("print('ok')", timeout_s=10)
    except SandboxUnavailable as e:
        return str(e)
    if result.stdout.strip() != "ok":
        return f"the sandbox ran but a trivial program failed: {result.stderr.strip()[-300:]!r}"
    return None


# ---------------------------------------------------------------- parent side


def _sandbox_uid() -> int:
    """A uid nobody else uses, distinct for concurrent runs (live pids are distinct), so
    RLIMIT_NPROC counts only this run's processes and the code can signal nothing outside it."""
    with _counter_lock:
        n = next(_counter) % 256
    return UID_BASE + (os.getpid() % (1 << 22)) * 256 + n


def _python_paths() -> dict:
    """The real interpreter (not a venv shim) and its install prefix, to run the code with."""
    exe = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    return {"exe": exe, "prefix": os.path.realpath(sys.base_prefix)}


def _supervise(config: dict, timeout_s: float, max_output: int) -> SandboxResult:
    """Start the launcher, feed it the config, collect capped output, enforce the wall clock."""
    status_r, status_w = os.pipe()
    config["status_fd"] = status_w
    argv = [sys.executable, "-I", "-S", "-B", os.path.abspath(__file__), "--launch"]
    env = dict(_ENV, **{k: os.environ[k] for k in ("LD_LIBRARY_PATH",) if k in os.environ})
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                pass_fds=(status_w,), start_new_session=True, env=env, cwd="/")
    except OSError as e:
        os.close(status_r)
        raise SandboxUnavailable(f"cannot start the launcher: {e}") from None
    finally:
        os.close(status_w)
    try:
        reason, timed_out, (stdout, stderr, status) = _pump(proc, status_r, json.dumps(config).encode(),
                                                            timeout_s, max_output)
    finally:
        _kill(proc)
        proc.wait()
        for f in (proc.stdin, proc.stdout, proc.stderr):
            f.close()
        os.close(status_r)
    status = status.decode("utf-8", "replace")
    if status.startswith("error "):
        raise SandboxUnavailable(status[len("error "):].strip())
    if not status and reason is None:  # the launcher itself failed: never blame the program for it
        raise SandboxUnavailable(f"the launcher exited without a status: {stderr[-300:]!r}")
    return _result(status, (stdout, stderr), reason, timed_out, max_output)


def _pump(proc: subprocess.Popen, status_r: int, payload: bytes, timeout_s: float, max_output: int):
    """Write the payload to the launcher, read stdout/stderr/status until they close.
    Returns (kill reason, timed out?, (stdout, stderr, status) bytes, each stream capped)."""
    stdin_fd, out_fd, err_fd = proc.stdin.fileno(), proc.stdout.fileno(), proc.stderr.fileno()
    bufs = {out_fd: bytearray(), err_fd: bytearray(), status_r: bytearray()}
    sel = selectors.DefaultSelector()
    for fd in bufs:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    os.set_blocking(stdin_fd, False)
    sel.register(stdin_fd, selectors.EVENT_WRITE)
    deadline, give_up = time.monotonic() + timeout_s, None
    reason, timed_out, written, open_fds = None, False, 0, set(bufs) | {stdin_fd}
    while open_fds:
        now = time.monotonic()
        if give_up is None and now >= deadline:
            reason, timed_out = "timeout", True
            _kill(proc)
            give_up = now + 5.0  # the kill ends every holder of the pipes: they close at once
        if give_up is not None and now >= give_up:
            break
        for key, _ in sel.select(timeout=min((give_up or deadline) - now, 0.5)):
            fd = key.fd
            try:
                if fd == stdin_fd:
                    written += os.write(fd, payload[written:written + 65536])
                    chunk = b"" if written >= len(payload) else None
                else:
                    chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            except BrokenPipeError:  # the launcher is gone; its status says why
                chunk = b""
            if chunk == b"":
                sel.unregister(fd)
                open_fds.discard(fd)
                if fd == stdin_fd:
                    proc.stdin.close()
                continue
            if chunk is None:
                continue
            buf = bufs[fd]
            buf += chunk[:max(max_output + 1 - len(buf), 0)] if fd != status_r else chunk[:4096]
            if fd != status_r and len(buf) > max_output and give_up is None:
                reason = "output"
                _kill(proc)
                give_up = time.monotonic() + 5.0
    sel.close()
    return reason, timed_out, (bytes(bufs[out_fd]), bytes(bufs[err_fd]), bytes(bufs[status_r]))


def _result(status: str, streams: tuple[bytes, bytes], reason, timed_out: bool, max_output: int) -> SandboxResult:
    """Decode the worker's wait status (sent by init) and the captured stdout and stderr."""
    stdout, stderr = (s[:max_output].decode("utf-8", "replace") for s in streams)
    returncode = os.waitstatus_to_exitcode(int(status.split()[1])) if status.startswith("exit ") else None
    if reason is None and returncode is not None and returncode < 0:
        sig = -returncode
        reason = {signal.SIGXCPU: "cpu", signal.SIGKILL: "killed (cpu hard limit)"}.get(sig, f"signal {sig}")
    if reason is None and returncode not in (0, None) and stderr.rstrip().endswith("MemoryError"):
        reason = "memory"
    return SandboxResult(returncode, stdout, stderr, timed_out, reason)


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL the launcher's process group: the launcher's death kills init (parent-death signal),
    and init's death kills everything in the PID namespace."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------- launcher side (runs as a script)

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_PRIVATE, MS_RELATIME = 1024, 2048, 4096, 16384, 1 << 18, 1 << 21
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
_MOUNT_FLAGS = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
                "noatime": MS_NOATIME, "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}
PYTHON_MOUNT = WORKDIR + "/.python"


class _SetupError(Exception):
    pass


def _libc():
    import ctypes

    return ctypes, ctypes.CDLL(None, use_errno=True)


def _call(what: str, fn, *args) -> None:
    ctypes, _ = _libc()
    if fn(*args) != 0:
        err = ctypes.get_errno()
        raise _SetupError(f"{what}: {os.strerror(err)}")


def _launch() -> None:
    """Launcher: read the config, create the namespaces, fork init, wait, report setup errors."""
    _, libc = _libc()
    # die with the parent's supervising thread (it waits for us throughout the run), and in any
    # case soon after the wall-clock limit: the launcher's death takes the whole sandbox down
    _call("prctl(PDEATHSIG)", libc.prctl, PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    config = json.loads(sys.stdin.buffer.read())
    if os.getppid() != config["parent_pid"]:
        os._exit(1)
    signal.alarm(math.ceil(config["wall_s"]) + 10)
    status_fd = config["status_fd"]
    try:
        flags = CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS
        if config["uid"] is None:
            outer_uid, outer_gid = os.getuid(), os.getgid()
            _call("unshare (user namespace)", libc.unshare, flags | CLONE_NEWUSER)
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"{outer_uid} {outer_uid} 1")
            _write("/proc/self/gid_map", f"{outer_gid} {outer_gid} 1")
        else:
            _call("unshare", libc.unshare, flags)
    except (_SetupError, OSError) as e:
        _report(status_fd, f"error cannot create namespaces ({e}); needs root or unprivileged user namespaces")
        os._exit(1)
    alive_r, alive_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(alive_w)
        try:
            _init(config, alive_r)
        except BaseException as e:  # noqa: BLE001 - report anything, never fall through to run code
            _report(status_fd, f"error sandbox setup failed: {e}")
        os._exit(1)
    os.close(alive_r)
    os.waitpid(pid, 0)
    os._exit(0)


def _init(config: dict, alive_r: int) -> None:
    """Process 1 of the new PID namespace: mounts, then run the worker and report its status."""
    _, libc = _libc()
    # process 1 receives only signals it handles: drop Python's SIGINT handler, so the code (the
    # same uid in a user namespace) cannot interrupt init and fake a setup failure
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _call("prctl(PDEATHSIG)", libc.prctl, PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if _closed(alive_r):
        os._exit(1)  # the launcher died before the death signal was armed
    _call("prctl(DUMPABLE)", libc.prctl, PR_SET_DUMPABLE, 0, 0, 0, 0)
    python = _mount_everything(config, libc)
    stdin_fd = _stdin_fd(config["stdin"])
    main_py = os.path.join(WORKDIR, "main.py")
    with open(main_py, "w", encoding="utf-8") as f:
        f.write(config["source"])
    if config["uid"] is not None:
        os.chown(main_py, config["uid"], config["uid"])
    pid = os.fork()
    if pid == 0:
        try:
            _worker(config, python, stdin_fd)
        except BaseException as e:  # noqa: BLE001 - e.g. the interpreter cannot be executed
            os.write(2, f"sandbox: cannot start the program: {e}\n".encode())
        os._exit(126)
    status = None
    while status is None:  # as process 1, reap every orphan until the worker is done
        done, st = os.wait()
        if done == pid:
            status = st
    _report(config["status_fd"], f"exit {status}")
    os._exit(0)  # the kernel now kills whatever the code left running


def _closed(fd: int) -> bool:
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    return bool(sel.select(timeout=0))


def _mount_everything(config: dict, libc) -> dict:
    """Read-only everything, a private tmpfs on /tmp, a fresh /proc; returns how to run Python."""
    _call("make mounts private", libc.mount, b"none", b"/", None, MS_REC | MS_PRIVATE, None)
    mounts = _mountpoints()
    for point, flags in mounts:
        _call(f"remount {point} read-only", libc.mount, None, point.encode(), None,
              MS_REMOUNT | MS_BIND | MS_RDONLY | flags, None)
    uid = config["uid"] if config["uid"] is not None else os.getuid()
    gid = config["uid"] if config["uid"] is not None else os.getgid()
    opts = f"size={config['disk_mb']}m,nr_inodes=4096,mode=0700,uid={uid},gid={gid}"
    _call("mount tmpfs", libc.mount, b"tmpfs", WORKDIR.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, opts.encode())
    try:
        _call("mount /proc", libc.mount, b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    except _SetupError:
        pass  # e.g. a container hiding parts of /proc: the host's /proc stays, read-only
    # the interpreter's own library path, if it needs one (passed through by the parent)
    python = dict(config["python"], env={k: os.environ[k] for k in ("LD_LIBRARY_PATH",) if k in os.environ})
    if config["uid"] is not None and not _world_reachable(python["exe"]):
        # the interpreter lives where a stranger cannot reach it (e.g. /root/.pyenv): show its
        # install, read-only, inside the sandbox instead
        os.mkdir(PYTHON_MOUNT, 0o755)
        _call("bind python", libc.mount, python["prefix"].encode(), PYTHON_MOUNT.encode(), None, MS_BIND | MS_REC, None)
        _call("remount python read-only", libc.mount, None, PYTHON_MOUNT.encode(), None,
              MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, None)
        rel = os.path.relpath(python["exe"], python["prefix"])
        python = {"exe": os.path.join(PYTHON_MOUNT, rel), "env": {"LD_LIBRARY_PATH": PYTHON_MOUNT + "/lib"}}
    return python


def _mountpoints() -> list[tuple[str, int]]:
    """(mount point, flags to keep) of every visible mount, from /proc/self/mountinfo.
    Shadowed mounts (a later mount on the same point) are skipped: they cannot be reached."""
    seen: dict[str, int] = {}
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split()
            point = _unescape(fields[4])
            flags = 0
            for opt in fields[5].split(","):
                flags |= _MOUNT_FLAGS.get(opt, 0)
            seen.pop(point, None)
            seen[point] = flags
    return list(seen.items())


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040 ...)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _world_reachable(path: str) -> bool:
    """Can a uid with no relation to the file's owner execute it (every directory searchable)?"""
    import stat

    parts = path.split("/")
    for i in range(2, len(parts)):
        if not os.stat("/".join(parts[:i]) or "/").st_mode & stat.S_IXOTH:
            return False
    mode = os.stat(path).st_mode
    return bool(mode & stat.S_IXOTH and mode & stat.S_IROTH)


def _stdin_fd(text: str) -> int:
    """A private in-memory copy of stdin (no file on any disk, nothing shared with the host)."""
    if not text:
        return os.open("/dev/null", os.O_RDONLY)
    fd = os.memfd_create("stdin", 0)
    os.write(fd, text.encode("utf-8"))
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _worker(config: dict, python: dict, stdin_fd: int) -> None:
    """Limits, identity, then exec the interpreter on main.py. Never returns."""
    import resource

    _, libc = _libc()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.dup2(stdin_fd, 0)
    os.closerange(3, 65536)  # the launcher was started with only fds 0-2 and the status pipe
    os.chdir(WORKDIR)
    mb = 1024 * 1024
    limits = [(resource.RLIMIT_CPU, config["cpu_s"], config["cpu_s"] + 1),
              (resource.RLIMIT_AS, config["memory_mb"] * mb, config["memory_mb"] * mb),
              (resource.RLIMIT_NPROC, config["max_procs"], config["max_procs"]),
              (resource.RLIMIT_FSIZE, config["max_file_mb"] * mb, config["max_file_mb"] * mb),
              (resource.RLIMIT_NOFILE, 64, 64), (resource.RLIMIT_CORE, 0, 0),
              (resource.RLIMIT_MEMLOCK, 0, 0), (resource.RLIMIT_MSGQUEUE, 0, 0)]
    for kind, soft, hard in limits:
        resource.setrlimit(kind, (soft, hard))
    if config["uid"] is not None:
        os.setgroups([])
        os.setresgid(config["uid"], config["uid"], config["uid"])
        os.setresuid(config["uid"], config["uid"], config["uid"])
    _call("prctl(NO_NEW_PRIVS)", libc.prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    env = dict(_ENV, **python["env"])
    os.execve(python["exe"], [python["exe"], "-I", "-S", "-B", "-X", "utf8", "main.py"], env)


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _report(fd: int, message: str) -> None:
    try:
        os.write(fd, message.encode("utf-8", "replace")[:4000])
    except OSError:
        pass


if __name__ == "__main__" and sys.argv[1:] == ["--launch"]:
    _launch()
