"""Run one command for one submission in a sandbox and say how it ended.

``otter run`` has no sandbox (see the otter reference notes, section 4): the student's kernel runs as
the grader, with the network, without time or memory limits. :func:`run` wraps a command in the
protections this machine allows, each optional, each reported in :attr:`Outcome.protections`:

``process_group``
    The command starts a new session (its own process group) under a tiny init of ours (a Python
    ``-I -S`` program), which is the *subreaper* of everything the command starts: processes that
    leave the session and double-fork are re-parented to it, and it kills whatever is left when the
    command ends. On a timeout or a memory overrun, the command and all its descendants are killed
    with SIGKILL; after any end, the group and every descendant seen are killed too. The init holds
    the read end of a *lifeline* pipe whose write end only the grader holds: when the grader dies
    (a batch killed with SIGKILL, a Dask worker lost), the init kills the command and everything it
    started, removes the working directory (nobody else is left to) and exits.
``pid_namespace``
    (``unshare --pid --fork --mount-proc``) The init is PID 1 of a new PID namespace: when it
    ends, the kernel kills everything left in the namespace. Inside it the submission sees (in
    ``/proc``) and can signal only its own processes, not other sandboxes' nor the grader's.
``memory_watchdog``
    The resident memory (RSS) of the whole process tree is summed every :data:`SAMPLE_SECONDS`
    (psutil); above ``memory_bytes`` the tree is killed and the status is ``"memory"``. RSS, not
    address space: TensorFlow reserves gigabytes of virtual memory, so ``RLIMIT_AS`` would break it.
``rlimit_memory``
    Per-process ``RLIMIT_DATA`` backstop at ``2 * memory_bytes + 1 GiB`` (a single huge allocation
    fails at once instead of growing between two samples), and ``RLIMIT_CORE`` 0.
``network_namespace``
    (``unshare --net``, with ``--map-root-user`` when not root) An empty network namespace with only
    the loopback interface (brought up, so that Jupyter's kernel and otter still talk over
    127.0.0.1 inside it): the host's network and its localhost services are unreachable.
``unprivileged_user``
    When the grader runs as root, the command runs as ``nobody`` (groups cleared, no new privileges,
    umask 077): it cannot write the grading environment, the autograder or other files of root.
    The working directory is handed to that user.
``filesystem_write_confined``
    (Landlock, Linux >= 5.13, no privileges needed) The command and everything it starts may
    create, write, truncate, rename or delete files only beneath the working directory, plus
    ``/dev/null``-like devices (:data:`WRITABLE_FILES`) and ``/dev/shm`` (the POSIX semaphores of
    ``multiprocessing``); reading and executing stay allowed everywhere. Applied in addition to
    the user switch, and the only write barrier where there is none (a grader whose Python lives
    under ``/root``, which ``nobody`` cannot run): then the notebook runs as root, yet cannot
    change the grader's code, tests, output folder or other sandboxes.
``private_workdir``
    The working directory is a real directory, accessible by its owner only (see
    :func:`prepare_workdir`), and becomes ``HOME``; its ``tmp/`` folder is ``TMPDIR``. The
    environment holds only what the caller passes plus ``PATH``, ``HOME``, ``TMPDIR`` and ``LANG``.

Where the machine refuses a mechanism (no ``unshare``, user namespaces disabled, not root), the
command still runs without it; :func:`probe_protections` says, once per process, what is available.

The status of an :class:`Outcome`: ``"ok"`` (exit code 0), ``"timeout"`` (killed at the wall-clock
limit), ``"memory"`` (killed by the watchdog, killed by SIGKILL with a peak RSS near the limit,
i.e. by the kernel's OOM killer, a ``MemoryError`` under the ``RLIMIT_DATA`` backstop, or a peak
RSS of one process above the limit that the watchdog's sampling missed) or
``"crashed"`` (any other nonzero exit or signal). A command that cannot even be started (missing,
or not executable by the sandbox user) raises :class:`SandboxError`: that is the grader's problem.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import pwd
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

try:
    import psutil
except ImportError:  # pragma: no cover - psutil comes with ipykernel
    psutil = None  # type: ignore[assignment]

Status = Literal["ok", "timeout", "memory", "crashed"]

SANDBOX_USER = "nobody"
SAMPLE_SECONDS = 0.2
TAIL_CHARS = 4000
MEMORY_NEAR = 0.8  # a SIGKILL with a peak RSS above this share of the limit counts as "memory"
PROTECTIONS = ("process_group", "pid_namespace", "memory_watchdog", "rlimit_memory",
               "network_namespace", "unprivileged_user", "filesystem_write_confined", "private_workdir")
#: files outside the working directory that the command may still write (when they exist)
WRITABLE_FILES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/tty")
#: folders outside the working directory that the command may still write (when they exist)
WRITABLE_DIRS = ("/dev/shm",)
TMP = "tmp"  #: the command's TMPDIR, inside the working directory

_TAIL_BYTES = 16 * TAIL_CHARS
_PROBE_TIMEOUT = 20


class SandboxError(RuntimeError):
    """The sandbox itself could not be set up (not the command failing)."""


@dataclass(frozen=True, kw_only=True)
class Limits:
    """What one command may use. ``memory_bytes=None``: no memory limit."""

    wall_seconds: float
    memory_bytes: int | None
    no_network: bool = True
    allow_user_switch: bool = True
    confine_writes: bool = True  #: Landlock: writes only beneath the working directory

    def __post_init__(self) -> None:
        if not self.wall_seconds > 0:
            raise ValueError(f"wall_seconds must be positive, not {self.wall_seconds}")
        if self.memory_bytes is not None and self.memory_bytes <= 0:
            raise ValueError(f"memory_bytes must be positive or None, not {self.memory_bytes}")


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """How one sandboxed command ended."""

    status: Status
    returncode: int
    seconds: float
    peak_rss_bytes: int
    stdout_tail: str
    stderr_tail: str
    protections: dict[str, bool] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# The init: runs first in the sandbox (PID 1 of the namespace when there is one), as the grader.
# It sets the rlimits, brings the loopback up, starts the command as the sandbox user and reports
# the command's exit status and peak RSS on a pipe. PID 1 ignores signals it has no handler for
# (even its own SIGKILL), so the command must not be PID 1 itself.
_LOOPBACK_UP = """
import fcntl, socket, struct
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    ifr = fcntl.ioctl(s, 0x8913, struct.pack("16sh22x", b"lo", 0))  # SIOCGIFFLAGS
    flags = struct.unpack("16sh22x", ifr)[1]
    fcntl.ioctl(s, 0x8914, struct.pack("16sh22x", b"lo", flags | 1))  # SIOCSIFFLAGS, IFF_UP
"""

# Landlock (see Documentation/userspace-api/landlock.rst): a ruleset that handles every kind of
# write (so each is denied unless a rule allows it) and none of reading or executing; one rule
# grants them all beneath each writable folder, one grants writing to each writable file.
_LANDLOCK = r"""
def confine_writes(folders, files):
    import ctypes, os, struct
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long

    def syscall(number, *args):
        result = libc.syscall(ctypes.c_long(number), *(ctypes.c_long(a) for a in args))
        if result < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, "landlock syscall %d: %s" % (number, os.strerror(errno)))
        return result

    abi = syscall(444, 0, 0, 1)  # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
    write_file, truncate = 1 << 1, 1 << 14
    # WRITE_FILE, REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, _DIR, _REG, _SOCK, _FIFO, _BLOCK, _SYM
    handled = sum(1 << bit for bit in (1, 4, 5, 6, 7, 8, 9, 10, 11, 12))
    if abi >= 2:
        handled |= 1 << 13  # REFER: links and renames across folders
    if abi >= 3:
        handled |= truncate
    attr = ctypes.create_string_buffer(struct.pack("=Q", handled))
    ruleset = syscall(444, ctypes.addressof(attr), 8, 0)
    try:
        for path, access in [*((p, handled) for p in folders),
                             *((p, handled & (write_file | truncate)) for p in files)]:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = ctypes.create_string_buffer(struct.pack("=Qi", access, fd))
                syscall(445, ruleset, 1, ctypes.addressof(rule), 0)  # LANDLOCK_RULE_PATH_BENEATH
            finally:
                os.close(fd)
        libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS, required to restrict oneself
        syscall(446, ruleset, 0)  # landlock_restrict_self
    finally:
        os.close(ruleset)
    return abi
"""

# Does Landlock confine this process? (run by the probe in a throw-away process)
_LANDLOCK_PROBE = _LANDLOCK + r"""
import os, sys
inside, outside = sys.argv[1:3]
confine_writes([inside], ["/dev/null"])
open(os.path.join(inside, "ok"), "w").close()
open("/dev/null", "w").close()
try:
    open(os.path.join(outside, "denied"), "w").close()
except PermissionError:
    sys.exit(0)
sys.exit(1)
"""

_INIT = r"""
import ctypes, json, os, resource, signal, sys, time
cfg = json.loads(sys.argv[1])
cmd = sys.argv[2:]
fd = cfg["status_fd"]
lifeline = cfg["lifeline_fd"]
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans of the command become our children
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
if cfg["data_limit"]:
    hard = resource.getrlimit(resource.RLIMIT_DATA)[1]
    lim = cfg["data_limit"] if hard == resource.RLIM_INFINITY else min(cfg["data_limit"], hard)
    resource.setrlimit(resource.RLIMIT_DATA, (lim, lim))
if cfg["loopback"]:
    try:
        exec(cfg["loopback"])
    except OSError as exc:
        os.write(2, ("sandbox: cannot bring up the loopback: %s\n" % exc).encode())
pid = os.fork()
if pid == 0:
    try:
        os.set_inheritable(fd, False)  # closed by a successful exec, kept to report a failed one
        os.close(lifeline)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        os.umask(0o077)
        if cfg["uid"] is not None:
            uid, gid = cfg["uid"], cfg["gid"]
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
                raise OSError("the user switch did not take")
        libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS: no setuid programs
        if cfg["landlock"]:
            try:
                exec(cfg["landlock"])
                confine_writes(cfg["writable_dirs"], cfg["writable_files"])
            except BaseException as exc:
                raise OSError("cannot confine writes with Landlock: %s" % exc) from None
        os.execvp(cmd[0], cmd)
    except BaseException as exc:
        try:
            os.write(fd, ("E cannot start %r as uid %d: %s\n" % (cmd[0], os.getuid(), exc)).encode())
        finally:
            os._exit(127)

def tree():
    # every descendant of this init, as /proc shows them (host pids: not in a PID namespace)
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    st = f.read()
            except OSError:
                continue
            parents.setdefault(int(st[st.rindex(")") + 2:].split()[1]), []).append(int(name))
    found, todo = [], [os.getpid()]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found

def leftovers():
    # PID 1 of a namespace: kill(-1) reaches everything in it but us, and /proc may be the host's
    # (a PID namespace without its own /proc), where "children of PID 1" are the host's daemons
    return [-1] if os.getpid() == 1 else tree()

def orphaned():
    # The lifeline reads end of file when the grader is gone: kill everything, clean up, exit.
    try:
        while os.read(lifeline, 1):
            pass
    except OSError:
        pass
    end = time.monotonic() + 5
    while time.monotonic() < end:
        left = leftovers()
        if not left:
            break
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                if p == -1:
                    left = []
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            if os.getpid() == 1:
                break
        time.sleep(0.01)
    import shutil
    shutil.rmtree(cfg["workdir"], ignore_errors=True)
    os._exit(137)

import threading
watcher = threading.Thread(target=orphaned, daemon=True)
watcher.start()

code, maxrss = 1, 0
while True:
    try:
        p, st, ru = os.wait4(-1, 0)
    except ChildProcessError:
        break
    if p == pid:
        code, maxrss = os.waitstatus_to_exitcode(st), ru.ru_maxrss
        break

# The command is gone: kill what it left behind (all of it ends up here, as we are its subreaper).
end = time.monotonic() + 5
while time.monotonic() < end:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        break
    for p in leftovers():
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.01)
try:
    os.write(fd, ("%d %d\n" % (code, maxrss)).encode())
except OSError:  # nobody reads: the grader is gone, the watcher cleans up and exits
    watcher.join()
os._exit(code if code >= 0 else 128 - code)
"""


@dataclass(frozen=True)
class _Machine:
    """What :func:`_probe` found: the mechanisms and how to invoke them."""

    unshare: str | None
    map_root: bool
    net: bool
    pid_flags: tuple[str, ...] | None
    user: tuple[int, int] | None
    rlimit: bool
    watchdog: bool
    landlock: bool = False


def _python() -> list[str]:
    return [sys.executable, "-I", "-S", "-c"]


def _works(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=_PROBE_TIMEOUT,
                              cwd="/").returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@functools.cache
def _probe() -> _Machine:
    root = os.geteuid() == 0
    unshare = shutil.which("unshare")
    map_root = ["--map-root-user"] if not root else []
    net = pid_flags = None
    if unshare and sys.platform.startswith("linux"):
        net = _works([unshare, "--net", *map_root, *_python(), _LOOPBACK_UP])
        for flags in (("--pid", "--fork", "--kill-child", "--mount-proc"),
                      ("--pid", "--fork", "--kill-child")):
            if _works([unshare, *flags, *map_root, *_python(),
                       "import os, sys; sys.exit(os.getpid() != 1)"]):
                pid_flags = flags
                break
    user = None
    if root:
        try:
            pw = pwd.getpwnam(SANDBOX_USER)
        except KeyError:
            pw = None
        if pw is not None and pw.pw_uid != 0 and _works([*_python(), (
                f"import os; os.setgroups([]); os.setresgid({pw.pw_gid}, {pw.pw_gid}, {pw.pw_gid}); "
                f"os.setresuid({pw.pw_uid}, {pw.pw_uid}, {pw.pw_uid})")]):
            user = (pw.pw_uid, pw.pw_gid)
    rlimit = _works([*_python(), "import resource; resource.setrlimit(resource.RLIMIT_CORE, (0, 0))"])
    watchdog = False
    if psutil is not None:
        with contextlib.suppress(psutil.Error):
            watchdog = psutil.Process().memory_info().rss > 0
    landlock = False
    if sys.platform.startswith("linux"):
        with tempfile.TemporaryDirectory(prefix="convlab-landlock-") as tmp:
            inside, outside = Path(tmp, "inside"), Path(tmp, "outside")
            inside.mkdir()
            outside.mkdir()
            landlock = _works([*_python(), _LANDLOCK_PROBE, str(inside), str(outside)])
    return _Machine(unshare=unshare, map_root=not root, net=bool(net), pid_flags=pid_flags,
                    user=user, rlimit=rlimit, watchdog=watchdog, landlock=landlock)


def probe_protections() -> dict[str, bool]:
    """Which protections this machine allows (tried once per process with trivial commands)."""
    m = _probe()
    return {"process_group": os.name == "posix", "pid_namespace": m.pid_flags is not None,
            "memory_watchdog": m.watchdog, "rlimit_memory": m.rlimit,
            "network_namespace": m.net, "unprivileged_user": m.user is not None,
            "filesystem_write_confined": m.landlock, "private_workdir": True}


def prepare_workdir(base: Path) -> Path:
    """A fresh, empty directory under ``base`` that only its owner can access (mode 0o700).

    ``base`` is created (mode 0o711: others may pass through it but not list it) if missing. When
    :func:`run` switches to the sandbox user, it hands the directory to that user, still 0o700, so
    for that user to reach it, ``base`` and its parents must be searchable by others (``/tmp/...``
    is, ``/root/...`` is not).
    """
    base = Path(base)
    if not base.is_dir():
        base.mkdir(parents=True, exist_ok=True)
        base.chmod(0o711)
    return Path(tempfile.mkdtemp(prefix="sandbox-", dir=base))


# --------------------------------------------------------------------------------------------------
def _searchable_by(path: Path, uid: int, gid: int) -> bool:
    st = path.stat()
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _hand_over(workdir: Path, uid: int, gid: int) -> None:
    """Give the working directory tree to the sandbox user; fail if that user cannot reach it."""
    for parent in workdir.parents:
        if not _searchable_by(parent, uid, gid):
            raise SandboxError(
                f"{workdir} is not reachable by the sandbox user {SANDBOX_USER}: {parent} has mode "
                f"{stat.filemode(parent.stat().st_mode)}; prepare sandboxes under a base that others "
                "can search, such as /tmp/...")
    for dirpath, dirnames, filenames in os.walk(workdir):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                raise SandboxError(f"{path} is a hard link; copy files into the sandbox instead")
            os.chown(path, uid, gid, follow_symlinks=False)
    os.chown(workdir, uid, gid)
    workdir.chmod(0o700)


def _is_private(workdir: Path, owner: int) -> bool:
    st = workdir.lstat()
    return stat.S_ISDIR(st.st_mode) and st.st_uid == owner and not st.st_mode & 0o077


def _descendants(root: psutil.Process) -> list[psutil.Process]:
    try:
        return root.children(recursive=True)
    except psutil.Error:
        return []


def _kill_everything(pgid: int, root: psutil.Process | None,
                     seen: dict[int, psutil.Process]) -> None:
    """SIGKILL the process group and every descendant, current or seen before (they may have left
    the group); psutil checks each one is still the process it saw, not a reused pid."""
    procs = [*(_descendants(root) if root is not None else []), *seen.values()]
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def _stop_command(pid: int, root: psutil.Process, seen: dict[int, psutil.Process], *,
                  wrapped: bool) -> None:
    """Kill the command and its descendants but not the init (nor ``unshare`` around it), so that
    the init reports, kills what escaped to it as their subreaper and exits; wait a little for it."""
    wrappers = {pid}
    if wrapped:  # unshare --fork has exactly one child: the init
        with contextlib.suppress(psutil.Error):
            wrappers |= {c.pid for c in root.children()}
    for proc in [*_descendants(root), *seen.values()]:
        if proc.pid not in wrappers:
            with contextlib.suppress(psutil.Error):
                proc.kill()
    end = time.monotonic() + 2
    while not _exited(pid) and time.monotonic() < end:
        time.sleep(0.02)


def _exited(pid: int) -> bool:
    """Whether ``pid`` has exited, without reaping it (its pid stays reserved for the group kill)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _tail(data: bytearray) -> str:
    return data.decode("utf-8", errors="replace")[-TAIL_CHARS:]


def run(command: list[str], *, workdir: Path, limits: Limits, env: dict[str, str]) -> Outcome:
    """Run ``command`` in ``workdir`` inside the sandbox and report how it ended.

    ``env`` is the whole environment of the command, plus ``PATH`` (``env``'s, else the grader's),
    ``HOME=workdir``, ``TMPDIR=workdir/tmp`` (created) and ``LANG`` (``env``'s, else ``C.UTF-8``).
    When the user switch is in force, the files in ``workdir`` are handed to the sandbox user
    first. Nothing the command started survives this call, nor the death of the process that
    called it (which also removes ``workdir``).
    """
    if not command:
        raise ValueError("empty command")
    workdir = Path(workdir).resolve()
    if not workdir.is_dir():
        raise SandboxError(f"{workdir} is not a directory")
    machine = _probe()
    (workdir / TMP).mkdir(mode=0o700, exist_ok=True)
    user = machine.user if limits.allow_user_switch else None
    if user is not None:
        _hand_over(workdir, *user)
    landlock = limits.confine_writes and machine.landlock
    use_net = limits.no_network and machine.net
    watchdog = limits.memory_bytes is not None and machine.watchdog
    rlimit = limits.memory_bytes is not None and machine.rlimit
    protections = {
        "process_group": True, "pid_namespace": machine.pid_flags is not None,
        "memory_watchdog": watchdog, "rlimit_memory": rlimit, "network_namespace": use_net,
        "unprivileged_user": user is not None, "filesystem_write_confined": landlock,
        "private_workdir": _is_private(workdir, user[0] if user else os.geteuid()),
    }

    status_r, status_w = os.pipe()
    lifeline_r, lifeline_w = os.pipe()  # the write end stays here, never written: see the init
    config = {"status_fd": status_w, "lifeline_fd": lifeline_r, "workdir": str(workdir),
              "uid": user[0] if user else None,
              "gid": user[1] if user else None, "loopback": _LOOPBACK_UP if use_net else None,
              "data_limit": 2 * limits.memory_bytes + (1 << 30) if rlimit else None,
              "landlock": _LANDLOCK if landlock else None, "writable_dirs": [
                  str(workdir), *(d for d in WRITABLE_DIRS if os.path.isdir(d))],
              "writable_files": [f for f in WRITABLE_FILES if os.path.exists(f)]}
    argv = [*_python(), _INIT, json.dumps(config), *command]
    flags = [*(["--net"] if use_net else []), *(machine.pid_flags or ())]
    if flags:
        argv = [machine.unshare, *flags, *(["--map-root-user"] if machine.map_root else []), "--", *argv]
    child_env = {**env, "PATH": env.get("PATH") or os.environ.get("PATH", os.defpath),
                 "HOME": str(workdir), "TMPDIR": str(workdir / TMP), "LANG": env.get("LANG") or "C.UTF-8"}

    try:
        proc = subprocess.Popen(argv, cwd=workdir, env=child_env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True, pass_fds=(status_w, lifeline_r))
    except OSError as exc:
        os.close(status_r)
        os.close(lifeline_w)
        raise SandboxError(f"cannot start the sandbox: {exc}") from exc
    finally:
        os.close(status_w)
        os.close(lifeline_r)
    start = time.monotonic()
    root = None
    if psutil is not None:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(proc.pid)
    seen: dict[int, psutil.Process] = {}
    out, err = bytearray(), bytearray()
    try:
        reason, peak, ended = _supervise(proc, root, limits, start, watchdog, seen, out, err)
        if reason is not None and root is not None:
            _stop_command(proc.pid, root, seen, wrapped=bool(flags))
    except BaseException:
        _kill_everything(proc.pid, root, seen)  # even when interrupted, nothing survives
        proc.wait()
        os.close(lifeline_w)
        proc.stdout.close()
        proc.stderr.close()
        os.close(status_r)
        raise
    _kill_everything(proc.pid, root, seen)
    proc.wait()
    os.close(lifeline_w)  # after the sandbox ended, so that its init never sees it cut
    _drain(proc, out, err)
    returncode, child_rss, failure = _read_status(status_r, proc.returncode)
    if failure:
        raise SandboxError(f"{failure} (the sandbox user must be able to run the command)")
    peak = max(peak, child_rss)
    status: Status
    if reason is not None:
        status = reason
    elif limits.memory_bytes is not None and peak > limits.memory_bytes:
        status = "memory"  # one process went past the limit between two samples (and survived it)
    elif returncode == 0:
        status = "ok"
    elif limits.memory_bytes is not None and (
            (returncode == -signal.SIGKILL and peak >= MEMORY_NEAR * limits.memory_bytes)
            or (rlimit and ("MemoryError" in _tail(err)[-400:] or "bad_alloc" in _tail(err)[-400:]))):
        status = "memory"
    else:
        status = "crashed"
    return Outcome(status=status, returncode=returncode, seconds=round(ended - start, 3),
                   peak_rss_bytes=peak, stdout_tail=_tail(out), stderr_tail=_tail(err),
                   protections=protections)


def _supervise(proc: subprocess.Popen, root: psutil.Process | None, limits: Limits, start: float,
               watchdog: bool, seen: dict[int, psutil.Process], out: bytearray,
               err: bytearray) -> tuple[Status | None, int, float]:
    """Wait for the command's end, the deadline or a memory overrun, collecting its output and
    every process of the tree seen (in ``seen``); return why it was stopped, peak RSS, end time."""
    deadline = start + limits.wall_seconds
    buffers = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    peak = 0
    reason: Status | None = None
    pidfd = None
    with selectors.DefaultSelector() as sel:
        for fd in buffers:
            sel.register(fd, selectors.EVENT_READ)
        with contextlib.suppress(AttributeError, OSError):
            pidfd = os.pidfd_open(proc.pid)
            sel.register(pidfd, selectors.EVENT_READ)
        try:
            next_sample = start
            while not _exited(proc.pid):
                now = time.monotonic()
                if now >= deadline:
                    reason = "timeout"
                    break
                if now >= next_sample:
                    next_sample = now + SAMPLE_SECONDS
                    if root is not None:
                        total = 0
                        for p in [root, *_descendants(root)]:
                            seen.setdefault(p.pid, p)
                            with contextlib.suppress(psutil.Error):
                                total += p.memory_info().rss
                        peak = max(peak, total)
                        if watchdog and total > limits.memory_bytes:
                            reason = "memory"
                            break
                wait = max(0.0, min(next_sample, deadline) - now)
                if not sel.get_map():
                    time.sleep(wait)
                    continue
                for key, _ in sel.select(wait):
                    if key.fd in buffers:
                        _read_into(key.fd, buffers[key.fd], sel)
        finally:
            if pidfd is not None:
                os.close(pidfd)
    return reason, peak, time.monotonic()


def _read_into(fd: int, buffer: bytearray, sel: selectors.BaseSelector | None = None) -> bool:
    """Read what is available from ``fd`` into the bounded ``buffer``; False at end of file."""
    chunk = os.read(fd, 65536)
    if not chunk:
        if sel is not None:
            sel.unregister(fd)
        return False
    buffer += chunk
    if len(buffer) > _TAIL_BYTES:
        del buffer[:-_TAIL_BYTES]
    return True


def _drain(proc: subprocess.Popen, out: bytearray, err: bytearray, seconds: float = 2.0) -> None:
    """Collect the rest of the output (everything that could write it is dead), then close."""
    end = time.monotonic() + seconds
    pipes = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    with selectors.DefaultSelector() as sel:
        for fd in pipes:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map() and (left := end - time.monotonic()) > 0:
            for key, _ in sel.select(left):
                _read_into(key.fd, pipes[key.fd], sel)
    proc.stdout.close()
    proc.stderr.close()


def _read_status(status_r: int, outer_code: int) -> tuple[int, int, str | None]:
    """The command's exit code and peak RSS as the init reported them, and why it could not start.

    The init exits with the code it reports (128 + signal for a signal), so a report that the
    command could have forged (without the user switch it may reach the pipe) only counts when the
    sandbox's own exit code agrees with it.
    """
    os.set_blocking(status_r, False)
    data = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(status_r, 4096):
            data += chunk
    os.close(status_r)
    lines = data.decode(errors="replace").splitlines()
    failure = next((line[2:] for line in lines if line.startswith("E ")), None)
    try:
        code, maxrss_kb = (int(x) for x in lines[-1].split())
    except (IndexError, ValueError):
        return outer_code, 0, failure
    if outer_code != (code if code >= 0 else 128 - code):
        return outer_code, 0, failure
    return code, maxrss_kb * 1024, failure
