"""Run untrusted Python (model output) in a throw-away sandbox: `run_python(source) -> SandboxResult`.

    result = run_python("print(sum(range(10)))", timeout_s=5)
    result.stdout == "45\\n" and result.ok

Why a sandbox: the code task's reward runs what the model wrote, and a policy under RL pressure
writes anything (loops, fork bombs, deletes, connections) by accident or as a reward hack. Nothing
it writes may slow, damage or reach outside the training machine.

How (Linux only). The parent never evaluates the code. It starts a fresh interpreter (the
*launcher*, this file run as a script) that unshares new PID, network, mount, IPC and UTS namespaces
(plus a user namespace when not run as root), forks an *init* that is process 1 of the new PID
namespace and builds the program's file system, and init forks the *worker* that sets the limits,
drops to an unprivileged identity and execs `python -I -S` on the code. When init exits (after the
worker or when the launcher dies, via the parent-death signal) the kernel kills every process left
in the namespace, and the namespace's mounts disappear with it.

Guaranteed here (root with CAP_SYS_ADMIN, or a kernel with unprivileged user namespaces; checked
by tests/test_sandbox.py):
- reads: the program sees a root of its own, not the machine's. Init mounts a tmpfs, binds into it,
  read-only and each at its own path, only what `sandbox_root()` lists (the real interpreter, the
  folders of its standard library with any site-packages inside shadowed by an empty folder, the
  shared libraries these load, /dev/null, /dev/urandom), adds a fresh /proc and the scratch /tmp,
  then `pivot_root`s into it and detaches the machine's file system. No home, project checkout,
  training data, checkpoint, /etc or /sys exists for it, and no other process of the machine;
  the command line of its process 1 names the interpreter and `/dev/fd/N`, no project path;
- wall clock: the whole run is killed (SIGKILL to the process group, and through the PID namespace
  to every process the code started, even ones that left the group) after `timeout_s`;
- CPU time: RLIMIT_CPU (SIGXCPU at the limit, SIGKILL a second later);
- memory: RLIMIT_AS on every process (allocations fail past `memory_mb`);
- processes: RLIMIT_NPROC. As root the code runs as a fresh uid (1073741824 and up, a different one
  per concurrent run, never a real account), so the limit counts the sandbox's processes only;
  without root, a new user namespace has its own count;
- files: RLIMIT_FSIZE per file; the working directory is a tmpfs of `disk_mb` (and at most 4096
  inodes) mounted on /tmp, private to the run, gone when it ends; everything else it sees is
  read-only, so no write outside /tmp succeeds (/dev/null still works);
- network: a new network namespace with no interface up: every connect, loopback included, fails;
- no privileges: no capabilities, no_new_privs (setuid binaries do not elevate), no supplementary
  groups, a /proc that shows only the run's own processes (process 1, init, is not dumpable: its
  environment, memory and descriptors are closed to the code);
- I/O: stdin is a private in-memory copy of `stdin` (or /dev/null), stdout/stderr are each kept up to
  `max_output_bytes` (more kills the run), the environment is a fixed minimal one.

Not guaranteed: the wall-clock limit includes interpreter start-up (~0.05 s); memory kept in the
tmpfs counts toward the machine's memory, not RLIMIT_AS (hence the `disk_mb` cap); CPU-time and
memory limits are per process (at most `max_procs` of them); /proc still shows machine-wide
figures (CPU model, memory, uptime). The first run of a process asks the interpreter once what it
needs (~0.1 s). When namespaces or mounts cannot be made (a container without CAP_SYS_ADMIN and
without user namespaces), `run_python` raises `SandboxUnavailable` instead of running anything
with less isolation.
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
        "root": sandbox_root(), "parent_pid": os.getpid(), "wall_s": timeout_s,
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




def _launcher_env() -> dict:
    return dict(_ENV, **{k: os.environ[k] for k in ("LD_LIBRARY_PATH",) if k in os.environ})


# Run once by the real interpreter (trusted code, outside any sandbox): import every extension
# module of the standard library, so that the loader maps every shared library a program could
# need, then list them under the names the loader found them by (dl_iterate_phdr). _tkinter is left
# out: it needs a display, which no sandbox has, and would bring a score of X11 libraries.
_PROBE = """\
import ctypes, importlib.machinery, json, os, sys
folders = [p for p in sys.path if os.path.isdir(p)]
for folder in folders:
    for name in sorted(os.listdir(folder)):
        if name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)) and not name.startswith("_tkinter"):
            try:
                __import__(name.split(".")[0])
            except BaseException:
                pass
class Info(ctypes.Structure):
    _fields_ = [("addr", ctypes.c_void_p), ("name", ctypes.c_char_p)]
names = []
@ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(Info), ctypes.c_size_t, ctypes.c_void_p)
def visit(info, size, data):
    names.append(os.fsdecode(info.contents.name or b""))
    return 0
ctypes.CDLL(None).dl_iterate_phdr(visit, None)
print(json.dumps({"folders": folders, "libraries": [n for n in names if n.startswith("/")]}))
"""


@functools.lru_cache(maxsize=1)
def sandbox_root() -> dict:
    """The whole file system the sandboxed program sees, besides its own /proc and /tmp.

    The real interpreter (not a venv shim), the folders of its standard library (site-packages
    and dist-packages inside them shadowed by empty folders), the shared libraries it and the
    standard library's extension modules load, /dev/null and /dev/urandom: each at its own path,
    read-only, with the symlinks on the way repeated, so the interpreter finds them as it does
    here. Nothing else of this machine: no home, project, data, /etc or /sys. Found once per
    process by asking the interpreter (see _PROBE).

    Returns {"exe": path, "binds": [[path, mount flags], ...], "links": [[path, target], ...],
    "hide": [folders shadowed], "library_path": LD_LIBRARY_PATH for the program}.
    Raises SandboxUnavailable when the interpreter cannot be asked.
    """
    exe = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    try:
        out = subprocess.run([exe, "-I", "-S", "-B", "-c", _PROBE], capture_output=True, env=_launcher_env(),
                             cwd="/", timeout=120, check=True).stdout
        probe = json.loads(out.decode().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as e:
        raise SandboxUnavailable(f"cannot ask the interpreter what it needs: {e}") from None
    links: dict[str, str] = {}
    targets = {_follow(p, links) for p in [exe, *probe["folders"], *probe["libraries"]]}
    folders = [p for p in targets if os.path.isdir(p)]

    def shown_whole(path: str) -> bool:  # inside a folder bound whole, which shows it already
        return any(path.startswith(f + "/") for f in folders)

    targets = sorted(p for p in targets if not shown_whole(p))
    for path in targets:
        if path == WORKDIR or path.startswith((WORKDIR + "/", "/proc/", "/dev/")):
            raise SandboxUnavailable(f"the interpreter needs {path}, where the sandbox mounts its own folders")
    mounts = _mountpoints()
    read_only = MS_RDONLY | MS_NOSUID
    binds = [[p, read_only | MS_NODEV | _kept_flags(p, mounts)] for p in targets]
    binds += [[p, read_only | _kept_flags(p, mounts)] for p in ("/dev/null", "/dev/urandom")]
    hide = [os.path.join(f, name) for f in targets if os.path.isdir(f) for name in ("site-packages", "dist-packages")
            if os.path.isdir(os.path.join(f, name)) and not os.path.islink(os.path.join(f, name))]
    # where the loader found each library (not the extension modules: the import system finds those)
    library_path = [d for d in dict.fromkeys(os.path.dirname(p) for p in probe["libraries"]) if d not in probe["folders"]]
    return {"exe": exe, "binds": binds, "links": sorted([p, t] for p, t in links.items() if not shown_whole(p)),
            "hide": hide, "library_path": ":".join(library_path)}


def _follow(path: str, links: dict[str, str]) -> str:
    """`path` with every symlink on the way followed, like os.path.realpath; each symlink passed
    is recorded in `links` (path -> target) so the new root can repeat it."""
    todo, here, hops = path.split("/")[::-1], "/", 0
    while todo:
        part = todo.pop()
        if part in ("", "."):
            continue
        if part == "..":
            here = os.path.dirname(here)
            continue
        step = os.path.join(here, part)
        if not os.path.islink(step):
            here = step
            continue
        hops += 1
        if hops > 40:
            raise SandboxUnavailable(f"too many symlinks in {path}")
        links[step] = target = os.readlink(step)
        todo.extend(target.split("/")[::-1])
        if target.startswith("/"):
            here = "/"
    return here


def _supervise(config: dict, timeout_s: float, max_output: int) -> SandboxResult:
    """Start the launcher, feed it the config, collect capped output, enforce the wall clock."""
    status_r, status_w = os.pipe()
    config["status_fd"] = status_w
    # the launcher (later init, the program's process 1, whose command line the program can read)
    # is the bare interpreter on this file passed as an open descriptor: no path of the project
    # or its virtualenv appears in it
    script = os.open(os.path.abspath(__file__), os.O_RDONLY | os.O_CLOEXEC)
    argv = [config["root"]["exe"], "-I", "-S", "-B", f"/dev/fd/{script}", "--launch"]
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                pass_fds=(status_w, script), start_new_session=True, env=_launcher_env(), cwd="/")
    except OSError as e:
        os.close(status_r)
        raise SandboxUnavailable(f"cannot start the launcher: {e}") from None
    finally:
        os.close(status_w)
        os.close(script)
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
MS_STRICTATIME, MNT_DETACH = 1 << 24, 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
_MOUNT_FLAGS = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
                "noatime": MS_NOATIME, "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}
# glibc has no pivot_root wrapper; the generic syscall table (arm64, riscv, loongarch) numbers it 41
_PIVOT_ROOT = {"x86_64": 155, "i686": 217, "ppc64le": 203, "s390x": 217}.get(os.uname().machine, 41)


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
    _make_root(config, libc)
    stdin_fd = _stdin_fd(config["stdin"])
    main_py = os.path.join(WORKDIR, "main.py")
    with open(main_py, "w", encoding="utf-8") as f:
        f.write(config["source"])
    if config["uid"] is not None:
        os.chown(main_py, config["uid"], config["uid"])
    pid = os.fork()
    if pid == 0:
        try:
            _worker(config, stdin_fd)
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


def _make_root(config: dict, libc) -> None:
    """Build the program's file system (see sandbox_root) on a fresh tmpfs and pivot into it; the
    machine's own file system is then detached, out of reach of every path and of `..`."""
    root, new = config["root"], WORKDIR  # built on /tmp, where nothing of sandbox_root lives
    os.umask(0o022)  # the mount points must be searchable by the program's uid
    _call("make mounts private", libc.mount, b"none", b"/", None, MS_REC | MS_PRIVATE, None)
    _mount(libc, "tmpfs", new, MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=0755")
    # parents of links and mount points never go through a link (sandbox_root resolved them), so
    # makedirs stays inside the new root
    for path, target in root["links"]:
        os.makedirs(new + os.path.dirname(path), exist_ok=True)
        os.symlink(target, new + path)
    for path, flags in root["binds"]:
        point = new + path
        os.makedirs(os.path.dirname(point), exist_ok=True)
        if os.path.isdir(path):
            os.mkdir(point)
        else:
            os.close(os.open(point, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        # plain MS_BIND, not recursive: the read-only remount below applies to this one mount only,
        # so a submount under a bound folder would keep its own (writable) flags; none is needed
        _call(f"bind {path}", libc.mount, path.encode(), point.encode(), None, MS_BIND, None)
        _call(f"remount {path} read-only", libc.mount, None, point.encode(), None, MS_REMOUNT | MS_BIND | flags, None)
    for path in root["hide"]:
        _mount(libc, "tmpfs", new + path, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555")
    uid = config["uid"] if config["uid"] is not None else os.getuid()
    gid = config["uid"] if config["uid"] is not None else os.getgid()
    os.mkdir(new + WORKDIR)
    _mount(libc, "tmpfs", new + WORKDIR, MS_NOSUID | MS_NODEV,
           f"size={config['disk_mb']}m,nr_inodes=4096,mode=0700,uid={uid},gid={gid}")
    os.mkdir(new + "/proc")
    try:  # while the machine's /proc is still mounted here: a user namespace may only mount a new one then
        _call("mount /proc", libc.mount, b"proc", (new + "/proc").encode(), b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    except _SetupError:
        pass  # e.g. a container hiding parts of /proc: the program gets an empty /proc, never the machine's
    os.chdir(new)
    _call("pivot_root", libc.syscall, _PIVOT_ROOT, b".", b".")  # the old root now lies on top of "."
    _call("detach the machine's file system", libc.umount2, b".", MNT_DETACH)
    os.chdir("/")
    _call("remount / read-only", libc.mount, None, b"/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, None)


def _mount(libc, fstype: str, point: str, flags: int, options: str) -> None:
    _call(f"mount {fstype} on {point}", libc.mount, fstype.encode(), point.encode(), fstype.encode(), flags,
          options.encode())


def _kept_flags(path: str, mounts: list[tuple[str, int]]) -> int:
    """The flags of the mount `path` lives on that a bind of it must keep: in a user namespace the
    kernel refuses to clear them (locked), and clearing none of them is never less safe."""
    point = max((p for p, _ in mounts if path == p or path.startswith(p.rstrip("/") + "/")), key=len, default="/")
    return dict(mounts).get(point, 0)


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
            if not flags & (MS_NOATIME | MS_RELATIME):
                flags |= MS_STRICTATIME  # shown as no atime option at all
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


def _stdin_fd(text: str) -> int:
    """A private in-memory copy of stdin (no file on any disk, nothing shared with the host)."""
    if not text:
        return os.open("/dev/null", os.O_RDONLY)
    fd = os.memfd_create("stdin", 0)
    os.write(fd, text.encode("utf-8"))
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _worker(config: dict, stdin_fd: int) -> None:
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
    exe, library_path = config["root"]["exe"], config["root"]["library_path"]
    env = dict(_ENV, LD_LIBRARY_PATH=library_path) if library_path else _ENV
    os.execve(exe, [exe, "-I", "-S", "-B", "-X", "utf8", "main.py"], env)


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
