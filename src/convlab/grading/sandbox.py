"""Run one command for one submission in a sandbox and say how it ended.

``otter run`` has no sandbox (see the otter reference notes, section 4): the student's kernel runs as
the grader, with the network, without time or memory limits. :func:`run` wraps a command in the
protections this machine allows, each optional, each reported in :attr:`Outcome.protections`:

``process_group``
    The command starts a new session (its own process group) under a tiny init of ours
    (:mod:`convlab.grading.sandbox_init`, run by path with ``python -I -S``), which is the
    *subreaper* of everything the command starts: processes that leave the session and double-fork
    are re-parented to it, and it kills whatever is left when the command ends. On a timeout or a
    memory overrun, the command and all its descendants are killed with SIGKILL; after any end, the
    group and every descendant seen are killed too. The init holds the read end of a *lifeline* pipe
    whose write end only the grader holds: when the grader dies (a batch killed with SIGKILL, a Dask
    worker lost), the init kills the command and everything it started, removes the working
    directory (nobody else is left to) and exits.
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
``filesystem_read_confined``
    (``unshare --mount``; as non-root with ``--map-root-user``) The init builds a new root in a
    mount namespace and pivots into it (``sandbox_init.build_root``): a read-only tmpfs with the
    system folders (``/usr``, ``/bin``, ``/lib*``, ``/sbin``, ``/sys``) and a filtered ``/etc``
    (no ``shadow``; our own ``passwd``, ``group``, ``hosts``) bound read-only, the Python
    environment (:func:`python_paths`) and the caller's ``readable`` folders (the datasets)
    read-only at their real paths (less the caller's ``hidden`` paths in them: an empty
    read-only folder or file over each), every parent an empty traversable folder of ours, the working
    directory read-write, a fresh ``/proc`` (of the PID namespace) and a minimal ``/dev``. The old
    root is detached: the batch folder, other submissions and sandboxes, the output folder, the
    autograder, ``/root`` and ``/home`` do not exist inside.
``private_shm``
    Private, size-limited ``/dev/shm`` (``Limits.shm_bytes``) and ``/tmp`` (``tmp_bytes``)
    tmpfs, gone with the mount namespace; an IPC namespace of its own (``unshare --ipc``), so
    that System V shared memory and semaphores are its own too, and gone with it.
``unprivileged_user``
    A root grader runs the command as uid/gid ``UID_BASE + slot`` (one per concurrent sandbox,
    claimed by a lock file in :data:`UID_LOCKS`; groups cleared, no new privileges, umask 077);
    the working directory is handed to it. A non-root grader runs it as itself: root of its user
    namespace with every capability dropped. Never root without ``Limits.allow_root``.
``process_limit``
    ``RLIMIT_NPROC`` = ``Limits.max_processes`` (processes and threads) for that uid (or user
    namespace) alone; a tree that reaches it is stopped: ``Outcome.stopped_by == "processes"``.
``disk_quota``
    The working directory may grow by ``Limits.disk_bytes``: ``RLIMIT_FSIZE`` per file, its size
    measured every :data:`DISK_SAMPLE_SECONDS`; past it, stopped (``stopped_by == "disk"``).
``filesystem_write_confined``
    (Landlock, Linux >= 5.13, no privileges needed) A second layer: the command and everything it
    starts may create, write, truncate, rename or delete files only beneath the working directory,
    ``/dev/shm``, ``/tmp`` and ``/dev/null``-like devices (:data:`WRITABLE_FILES`).
``private_workdir``
    The working directory is a real directory, accessible by its owner only (see
    :func:`prepare_workdir`), and becomes ``HOME``; its ``tmp/`` folder is ``TMPDIR``. The
    environment holds only what the caller passes plus ``PATH``, ``HOME``, ``TMPDIR`` and ``LANG``.

:func:`probe_protections` says, once per process, what this machine allows (the read confinement
is probed with a real sandbox run). Where it cannot confine the command (no mount namespace, or a
root grader that cannot switch to an unprivileged uid), :func:`run` raises :class:`SandboxError`
(:func:`confinement_problem` says why) unless ``Limits.allow_root`` opts in to running it with
what is left; the other mechanisms are optional and reported.

A command stopped by a per-sandbox limit (``stopped_by``) is ``"crashed"``, with a last line
``sandbox: stopped: ...`` in its stderr.

The status of an :class:`Outcome`: ``"ok"`` (exit code 0), ``"timeout"`` (killed at the wall-clock
limit), ``"memory"`` (killed by the watchdog, killed by SIGKILL with a peak RSS near the limit,
i.e. by the kernel's OOM killer, a ``MemoryError`` under the ``RLIMIT_DATA`` backstop, or a peak
RSS of one process above the limit that the watchdog's sampling missed) or
``"crashed"`` (any other nonzero exit or signal). A command that cannot even be started (missing,
or not executable by the sandbox user) raises :class:`SandboxError`: that is the grader's problem.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Literal

try:
    import psutil
except ImportError:  # pragma: no cover - psutil comes with ipykernel
    psutil = None

Status = Literal["ok", "timeout", "memory", "crashed"]

#: the sandbox user of a root grader: one uid (and gid) per concurrent sandbox, UID_BASE + slot, held
#: by a lock file in UID_LOCKS; no passwd entry, no files outside the sandbox
UID_BASE = 2_000_000_000
UID_SLOTS = 4096
UID_LOCKS = (Path("/run/convlab-sandbox") if Path("/run").is_dir()
             else Path(tempfile.gettempdir(), "convlab-sandbox"))
SANDBOX_USER = f"uid {UID_BASE}+"
#: environment variables naming a folder the command may read (the offline datasets), added to
#: ``readable`` where the command's environment sets them
READABLE_ENV = ("CONVLAB_DATASETS",)
DISK_SAMPLE_SECONDS = 1.0  #: how often the working directory's size is measured
MAX_FILES = 200_000  #: files the working directory may hold (each one counted for the quota)
SAMPLE_SECONDS = 0.2
TAIL_CHARS = 4000
MEMORY_NEAR = 0.8  # a SIGKILL with a peak RSS above this share of the limit counts as "memory"
PROTECTIONS = ("process_group", "pid_namespace", "memory_watchdog", "rlimit_memory",
               "network_namespace", "unprivileged_user", "filesystem_write_confined", "private_workdir",
               "filesystem_read_confined", "process_limit", "disk_quota", "private_shm")
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
    confine_reads: bool = True  #: mount namespace: the command sees only what it needs
    #: explicit opt-in: where the machine cannot confine the command (no unprivileged user, no
    #: mount namespace), run it anyway, as the grader (root when the grader is root); else refuse
    allow_root: bool = False
    max_processes: int | None = 1024  #: processes and threads of the sandbox user (RLIMIT_NPROC)
    disk_bytes: int | None = 4 << 30  #: bytes the command may add to its working directory
    shm_bytes: int = 512 << 20  #: size of the private /dev/shm
    tmp_bytes: int = 256 << 20  #: size of the private /tmp

    def __post_init__(self) -> None:
        if not self.wall_seconds > 0:
            raise ValueError(f"wall_seconds must be positive, not {self.wall_seconds}")
        if self.memory_bytes is not None and self.memory_bytes <= 0:
            raise ValueError(f"memory_bytes must be positive or None, not {self.memory_bytes}")


class Deadline:
    """A wall-clock deadline that the caller may move while the command runs (from another
    thread): a pre-started process waits for its job under a generous limit, and gets its own
    limit from the moment the job is handed over (:meth:`from_now`), or is stopped (``from_now(0)``)."""

    def __init__(self) -> None:
        self.at: float | None = None  #: ``time.monotonic()`` value; None: the Limits' wall_seconds
        #: set once the command is started (its working directory handed over to the sandbox
        #: user): until then, the caller must not put files there (the hand-over would take them)
        self.launched = threading.Event()

    def from_now(self, seconds: float) -> None:
        self.at = time.monotonic() + max(0.0, seconds)


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
    #: which per-sandbox limit stopped the command, if one did: "processes" or "disk"
    stopped_by: str | None = None


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

INIT = Path(__file__).with_name("sandbox_init.py")  #: the init, run by path (stdlib only)


@dataclass(frozen=True)
class _Machine:
    """What :func:`_probe` found: the mechanisms and how to invoke them."""

    unshare: str | None
    map_root: bool
    net: bool
    pid_flags: tuple[str, ...] | None
    user: tuple[int, int] | None  #: root only: an unprivileged uid/gid can be switched to (UID_BASE)
    rlimit: bool
    watchdog: bool
    landlock: bool = False
    mount: bool = False  #: the init can build a confined root in a mount namespace


def _python() -> list[str]:
    return [sys.executable, "-I", "-S", "-c"]


def _works(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=_PROBE_TIMEOUT,
                              cwd="/").returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


# What the mount probe's command checks from inside (argv[1]: a file beside the working directory)
_MOUNT_PROBE = r"""
import os, sys
assert os.getcwd() == os.environ["HOME"]
open("written", "w").close()
for secret in (sys.argv[1], "/etc/shadow", "/root/.bashrc", "/home"):
    assert not os.path.exists(secret), secret
assert sorted(os.listdir("/dev/shm")) == []
assert os.path.exists(sys.executable)
"""


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
        uid = UID_BASE
        if _works([*_python(), f"import os; os.setgroups([]); os.setresgid({uid}, {uid}, {uid}); "
                                f"os.setresuid({uid}, {uid}, {uid})"]):
            user = (uid, uid)
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
            landlock = _works([sys.executable, "-I", "-S", str(INIT), "--probe-landlock",
                               str(inside), str(outside)])
    machine = _Machine(unshare=unshare, map_root=not root, net=bool(net), pid_flags=pid_flags,
                       user=user, rlimit=rlimit, watchdog=watchdog, landlock=landlock)
    if unshare and pid_flags is not None and (user is not None or not root):
        machine = replace(machine, mount=_probe_mount(machine))
    return machine


def _probe_mount(machine: _Machine) -> bool:
    """Does a command run confined here: unprivileged, seeing its working directory (writable) and
    the Python environment, not the folder beside it, /etc/shadow, /root, /home nor the host's
    /dev/shm? (A real sandbox run of a trivial command, with the mount namespace.)"""
    base = Path(tempfile.mkdtemp(prefix="convlab-probe-"))
    try:
        base.chmod(0o711)
        secret = base / "secret"
        secret.write_text("x")
        workdir = prepare_workdir(base)
        with contextlib.suppress(OSError):
            probe = replace(machine, mount=True)
            out = _run([sys.executable, "-I", "-S", "-c", _MOUNT_PROBE, str(secret)], workdir=workdir,
                       limits=Limits(wall_seconds=_PROBE_TIMEOUT, memory_bytes=None, no_network=False,
                                     confine_writes=False),
                       env={}, readable=(), machine=probe)
            return out.status == "ok" and (workdir / "written").exists()
        return False
    except SandboxError:
        return False
    finally:
        shutil.rmtree(base, ignore_errors=True)


def probe_protections() -> dict[str, bool]:
    """Which protections this machine allows (tried once per process with trivial commands)."""
    m = _probe()
    root = os.geteuid() == 0
    unprivileged = m.user is not None if root else True
    return {"process_group": os.name == "posix", "pid_namespace": m.pid_flags is not None,
            "memory_watchdog": m.watchdog, "rlimit_memory": m.rlimit,
            "network_namespace": m.net, "unprivileged_user": unprivileged and (m.mount or not root),
            "filesystem_write_confined": m.landlock, "private_workdir": True,
            "filesystem_read_confined": m.mount, "process_limit": m.rlimit and (m.mount or not root),
            "disk_quota": m.rlimit, "private_shm": m.mount}


def confinement_problem() -> str | None:
    """Why this machine cannot run a submission confined (unprivileged, reads confined), or None.

    Without the explicit opt-in (``Limits.allow_root``, ``convlab grade --allow-root``), a
    sandbox run on such a machine raises :class:`SandboxError` with this text."""
    m = _probe()
    missing = []
    if not m.mount:
        missing.append("a mount namespace for the read confinement (util-linux unshare --mount "
                       "--pid --fork; as non-root, unprivileged user namespaces)")
    if os.geteuid() == 0 and m.user is None:
        missing.append(f"a switch to an unprivileged uid (setresuid to {UID_BASE}+)")
    if not missing:
        return None
    return ("this machine cannot confine the notebooks: no " + "; no ".join(missing)
            + ". Refusing to grade; run on a machine that allows it (see docs/maintainers.md, "
            "'Sandbox'), or opt in explicitly to running unconfined (convlab grade --allow-root)")


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


# A grader killed while a notebook runs leaves nothing: the sandbox's init removes the working
# directory. Killed before the sandbox starts (unpacking) or after it ended (scoring), it leaves
# the directory behind; the next batch sweeps those. A working directory is claimed by a lock file
# beside it, ``.lock-<name>``, flock-ed by the grading process from creation to removal (the
# kernel drops the lock when that process dies, however it dies), so a directory whose lock is
# free belongs to nobody.
LOCK_PREFIX = ".lock-"
_locks: dict[str, int] = {}


def default_base() -> Path:
    """Where working directories are made: under the system temp folder, passable by others."""
    base = Path(tempfile.gettempdir()) / "convlab-sandboxes"
    base.mkdir(mode=0o711, exist_ok=True)
    return base


def claim_workdir(base: Path) -> Path:
    """A fresh private working directory under ``base`` (:func:`prepare_workdir`), claimed by this
    process until :func:`release_workdir` (or its death, after which a sweep removes it)."""
    workdir = prepare_workdir(base)
    _claim(workdir)
    return workdir


def _claim(workdir: Path) -> None:
    fd, claim = tempfile.mkstemp(prefix=".claim-", dir=workdir.parent)
    fcntl.flock(fd, fcntl.LOCK_EX)  # locked before it is visible under the lock's name
    os.replace(claim, workdir.parent / f"{LOCK_PREFIX}{workdir.name}")
    _locks[str(workdir)] = fd


def release_workdir(workdir: Path) -> None:
    """Delete a working directory made by :func:`claim_workdir`, and drop its claim."""
    _release(workdir)


def _release(workdir: Path) -> None:
    shutil.rmtree(workdir, ignore_errors=True)
    with contextlib.suppress(OSError):
        (workdir.parent / f"{LOCK_PREFIX}{workdir.name}").unlink()
    fd = _locks.pop(str(workdir), None)
    if fd is not None:
        os.close(fd)


def try_lock(lock: Path) -> int | None:
    """A descriptor holding ``lock``'s flock, or None where a living grader holds it (or it is
    gone)."""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # claimed by a living grader
        os.close(fd)
        return None
    return fd


def sweep_stale_workdirs(base: Path) -> list[Path]:
    """Remove the working directories under ``base`` that no living grader claims (left by a
    grader killed outside a sandbox run); return them."""
    swept = []
    for lock in [*Path(base).glob(f"{LOCK_PREFIX}*"), *Path(base).glob(".claim-*")]:
        fd = try_lock(lock)
        if fd is None:
            continue
        try:
            if lock.name.startswith(LOCK_PREFIX):
                workdir = lock.parent / lock.name[len(LOCK_PREFIX):]
                with contextlib.suppress(OSError):  # the sandbox's root mount point, empty here
                    (lock.parent / f".root-{workdir.name}").rmdir()
                if workdir.exists():
                    shutil.rmtree(workdir, ignore_errors=True)
                    swept.append(workdir)
            lock.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return swept


# --------------------------------------------------------------------------------------------------
def _searchable_by(path: Path, uid: int, gid: int) -> bool:
    st = path.stat()
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _hand_over(workdir: Path, uid: int, gid: int, *, reachable: bool = True) -> None:
    """Give the working directory tree to the sandbox user; with ``reachable``, fail if that user
    cannot reach it (without the mount namespace, where its parents are the host's)."""
    for parent in workdir.parents if reachable else ():
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


def python_paths() -> list[str]:
    """The folders a Python command of the grader's needs to read: the interpreter's prefixes (a
    virtualenv and the Python it was made from) and the folder this package is imported from."""
    import sysconfig

    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.realpath(sys.executable)),
             *(sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")),
             str(Path(__file__).resolve().parents[2])]
    return sorted({os.path.realpath(p) for p in paths if p})


def _runnable_by_others(executable: str) -> bool:
    """Whether a user other than the owner can run ``executable``: the file, after every link,
    executable by others, and every parent folder, of the link and of its target, searchable."""
    found = shutil.which(executable) or executable
    try:
        for path in (Path(os.path.abspath(found)), Path(found).resolve()):
            if not path.stat().st_mode & stat.S_IXOTH:
                return False
            if not all(parent.stat().st_mode & stat.S_IXOTH for parent in path.parents):
                return False
    except OSError:
        return False
    return True


def _readable(extra: tuple[str, ...] | list[str], workdir: Path) -> list[str]:
    paths = [*python_paths(), *(os.path.realpath(p) for p in extra)]
    for path in paths:
        if path == "/" or workdir.is_relative_to(path):
            raise SandboxError(f"{path} would show the sandbox its own parent folders (and other "
                               "sandboxes): keep the Python environment and the datasets elsewhere")
    return paths


def _claim_uid() -> tuple[int, int]:
    """A uid of the range that no other sandbox on this machine holds now, and the lock's fd."""
    UID_LOCKS.mkdir(mode=0o700, exist_ok=True)
    for slot in range(UID_SLOTS):
        fd = os.open(UID_LOCKS / str(slot), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        return UID_BASE + slot, fd
    raise SandboxError(f"all {UID_SLOTS} sandbox uids are in use")


def _disk_usage(workdir: Path, limit: int) -> int:
    """Bytes the working directory holds (allocated blocks), counting at most :data:`MAX_FILES`
    entries: past that, more than ``limit`` is returned."""
    total, count, todo = 0, 0, [str(workdir)]
    while todo:
        try:
            with os.scandir(todo.pop()) as entries:
                for entry in entries:
                    count += 1
                    if count > MAX_FILES:
                        return limit + 1
                    with contextlib.suppress(OSError):
                        st = entry.stat(follow_symlinks=False)
                        total += st.st_blocks * 512
                        if stat.S_ISDIR(st.st_mode):
                            todo.append(entry.path)
        except OSError:
            continue
    return total


def run(command: list[str], *, workdir: Path, limits: Limits, env: dict[str, str],
        readable: tuple[str, ...] | list[str] = (), hidden: tuple[str, ...] | list[str] = (),
        deadline: Deadline | None = None) -> Outcome:
    """Run ``command`` in ``workdir`` inside the sandbox and report how it ended.

    ``env`` is the whole environment of the command, plus ``PATH`` (``env``'s, else the grader's),
    ``HOME=workdir``, ``TMPDIR=workdir/tmp`` (created) and ``LANG`` (``env``'s, else ``C.UTF-8``).
    With the read confinement, the command sees of the host only the system folders, the grader's
    Python environment and this package (:func:`python_paths`) and ``readable`` (plus the folders
    that ``env`` names in :data:`READABLE_ENV`: the datasets), all read-only, and ``workdir``;
    of those read-only trees, it does not see the paths in ``hidden``: a folder is empty there, a
    file is an empty file (both read-only). Without the read confinement (only with the
    ``allow_root`` opt-in), nothing is hidden.
    When the user switch is in force, the files in ``workdir`` are handed to the sandbox user
    first. Nothing the command started survives this call, nor the death of the process that
    called it (which also removes ``workdir``).

    ``deadline``: once its ``at`` is set (by another thread), it replaces the wall-clock limit
    (status ``timeout`` past it).

    Raises :class:`SandboxError` where the command cannot be started, or cannot be confined and
    ``limits.allow_root`` does not opt in to running it unconfined.
    """
    readable = [*readable, *(env[k] for k in READABLE_ENV if env.get(k))]
    return _run(command, workdir=workdir, limits=limits, env=env, readable=readable, machine=_probe(),
                hidden=hidden, deadline=deadline)


def _hidden(hidden: tuple[str, ...] | list[str], readable: list[str]) -> list[tuple[str, bool]]:
    """``(real path, is a folder)`` of each path of ``hidden`` that exists beneath a readable
    tree (anything else is not seen anyway), outermost first."""
    found = []
    for path in sorted({os.path.realpath(p) for p in hidden}, key=lambda p: (p.count("/"), p)):
        if os.path.lexists(path) and any(path == r or path.startswith(r.rstrip("/") + "/") for r in readable):
            found.append((path, os.path.isdir(path)))
    return found


def _run(command: list[str], *, workdir: Path, limits: Limits, env: dict[str, str],
         readable: tuple[str, ...] | list[str], machine: _Machine,
         hidden: tuple[str, ...] | list[str] = (), deadline: Deadline | None = None) -> Outcome:
    if not command:
        raise ValueError("empty command")
    workdir = Path(workdir).resolve()
    if not workdir.is_dir():
        raise SandboxError(f"{workdir} is not a directory")
    root = os.geteuid() == 0
    confine = limits.confine_reads and machine.mount
    # without the mount namespace's traversable parents, the sandbox user runs the command only
    # where its files are reachable by others (not a Python under /root): else it stays root (opt-in)
    switch = (root and limits.allow_user_switch and machine.user is not None
              and (confine or _runnable_by_others(command[0])))
    if not limits.allow_root:
        if limits.confine_reads and not machine.mount:
            raise SandboxError(confinement_problem() or "no mount namespace here")
        if root and not switch:
            raise SandboxError("the command would run as root (no user switch); opt in explicitly "
                               "(Limits.allow_root, convlab grade --allow-root) to allow it")
    paths = _readable(readable, workdir) if confine else []
    covered = _hidden(hidden, paths) if confine else []
    (workdir / TMP).mkdir(mode=0o700, exist_ok=True)
    uid_lock = None
    user = None
    if switch:
        user = (UID_BASE, UID_BASE)
        if confine:  # one uid per concurrent sandbox (RLIMIT_NPROC, file ownership)
            uid, uid_lock = _claim_uid()
            user = (uid, uid)
    new_root = workdir.parent / f".root-{workdir.name}" if confine else None
    try:
        if user is not None:
            _hand_over(workdir, *user, reachable=not confine)
        if new_root is not None:
            new_root.mkdir(mode=0o700, exist_ok=True)
        return _launch(command, workdir=workdir, limits=limits, env=env, machine=machine, user=user,
                       new_root=new_root, readable=paths, hidden=covered, deadline=deadline)
    finally:
        if new_root is not None:
            with contextlib.suppress(OSError):
                new_root.rmdir()
        if uid_lock is not None:
            os.close(uid_lock)


def _launch(command: list[str], *, workdir: Path, limits: Limits, env: dict[str, str],
            machine: _Machine, user: tuple[int, int] | None, new_root: Path | None,
            readable: list[str], hidden: list[tuple[str, bool]] | None = None,
            deadline: Deadline | None = None) -> Outcome:
    root = os.geteuid() == 0
    confine = new_root is not None
    landlock = limits.confine_writes and machine.landlock
    use_net = limits.no_network and machine.net
    watchdog = limits.memory_bytes is not None and machine.watchdog
    rlimit = limits.memory_bytes is not None and machine.rlimit
    # RLIMIT_NPROC counts the processes of a user: a per-sandbox limit only for a uid of its own
    # (root grader) or a user namespace of its own (non-root grader, read confinement)
    nproc = limits.max_processes if machine.rlimit and confine else None
    quota = limits.disk_bytes if machine.rlimit else None
    protections = {
        "process_group": True, "pid_namespace": machine.pid_flags is not None,
        "memory_watchdog": watchdog, "rlimit_memory": rlimit, "network_namespace": use_net,
        "unprivileged_user": user is not None or not root, "filesystem_write_confined": landlock,
        "private_workdir": _is_private(workdir, user[0] if user else os.geteuid()),
        "filesystem_read_confined": confine, "process_limit": nproc is not None,
        "disk_quota": quota is not None, "private_shm": confine,
    }
    writable_dirs = [str(workdir), "/dev/shm", "/tmp"] if confine else [
        str(workdir), *(d for d in WRITABLE_DIRS if os.path.isdir(d))]
    status_r, status_w = os.pipe()
    lifeline_r, lifeline_w = os.pipe()  # the write end stays here, never written: see the init
    config = {"status_fd": status_w, "lifeline_fd": lifeline_r, "workdir": str(workdir),
              "uid": user[0] if user else None,
              "gid": user[1] if user else None, "loopback": use_net,
              "data_limit": (2 * limits.memory_bytes + (1 << 30)
                             if rlimit and limits.memory_bytes is not None else None),
              "landlock": landlock, "writable_dirs": writable_dirs,
              "writable_files": [f for f in WRITABLE_FILES if os.path.exists(f)
                                 and (not confine or f != "/dev/tty")],
              "root": str(new_root) if confine else None, "readable": readable,
              "hidden": hidden or [],
              "uid_inside": user[0] if user else 0, "gid_inside": user[1] if user else 0,
              "shm_bytes": limits.shm_bytes, "tmp_bytes": limits.tmp_bytes,
              "drop_caps": confine and user is None, "nproc": nproc, "file_limit": quota}
    argv = [sys.executable, "-I", "-S", str(INIT), json.dumps(config), *command]
    flags = [*(["--net"] if use_net else []), *(machine.pid_flags or ()),
             *(["--mount", "--ipc"] if confine else [])]
    if flags:
        assert machine.unshare is not None  # every flag was probed through unshare
        argv = [machine.unshare, *flags, *(["--map-root-user"] if machine.map_root else []), "--", *argv]
    child_env = {**env, "PATH": env.get("PATH") or os.environ.get("PATH", os.defpath),
                 "HOME": str(workdir), "TMPDIR": str(workdir / TMP), "LANG": env.get("LANG") or "C.UTF-8"}
    start_usage = _disk_usage(workdir, 1 << 62) if quota is not None else 0

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
    if deadline is not None:
        deadline.launched.set()
    start = time.monotonic()
    root_proc = None
    if psutil is not None:
        with contextlib.suppress(psutil.Error):
            root_proc = psutil.Process(proc.pid)
    seen: dict[int, psutil.Process] = {}
    out, err = bytearray(), bytearray()
    guard = _Guard(workdir=workdir, tasks=nproc, disk=start_usage + quota if quota is not None else None)
    try:
        reason, peak, ended = _supervise(proc, root_proc, limits, start, watchdog, seen, out, err, guard,
                                         deadline)
        if (reason is not None or guard.stopped_by is not None) and root_proc is not None:
            _stop_command(proc.pid, root_proc, seen, wrapped=bool(flags))
    except BaseException:
        _kill_everything(proc.pid, root_proc, seen)  # even when interrupted, nothing survives
        proc.wait()
        os.close(lifeline_w)
        _close_pipes(proc)
        os.close(status_r)
        raise
    _kill_everything(proc.pid, root_proc, seen)
    proc.wait()
    os.close(lifeline_w)  # after the sandbox ended, so that its init never sees it cut
    _drain(proc, out, err)
    returncode, child_rss, failure = _read_status(status_r, proc.returncode)
    if failure:
        raise SandboxError(f"{failure} (the sandbox user must be able to run the command)")
    if guard.stopped_by is None and guard.disk is not None and _disk_usage(workdir, guard.disk) >= guard.disk:
        guard.stopped_by = "disk"  # written between the last sample and the end
    if guard.stopped_by is not None:
        err += ("\nsandbox: stopped: " + {
            "processes": f"it ran {nproc} processes and threads, the limit",
            "disk": f"it wrote more than {quota} bytes to its working directory"}[guard.stopped_by]
            + "\n").encode()
    peak = max(peak, child_rss)
    status: Status
    if reason is not None:
        status = reason
    elif guard.stopped_by is not None:
        status = "crashed"
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
                   protections=protections, stopped_by=guard.stopped_by)


@dataclass
class _Guard:
    """The per-sandbox limits the supervisor checks by sampling: tasks (processes and threads:
    at the RLIMIT_NPROC limit, a fork bomb is stopped rather than left spinning) and disk."""

    workdir: Path
    tasks: int | None
    disk: int | None
    stopped_by: str | None = None
    next_disk: float = 0.0

    def over(self, tasks: int, now: float) -> bool:
        if self.tasks is not None and tasks >= self.tasks:
            self.stopped_by = "processes"
        elif self.disk is not None and now >= self.next_disk:
            self.next_disk = now + DISK_SAMPLE_SECONDS
            if _disk_usage(self.workdir, self.disk) >= self.disk:
                self.stopped_by = "disk"
        return self.stopped_by is not None


def _supervise(proc: subprocess.Popen[bytes], root: psutil.Process | None, limits: Limits, start: float,
               watchdog: bool, seen: dict[int, psutil.Process], out: bytearray,
               err: bytearray, guard: _Guard | None = None,
               moved: Deadline | None = None) -> tuple[Status | None, int, float]:
    """Wait for the command's end, the deadline (``moved.at`` once set) or a memory overrun,
    collecting its output and every process of the tree seen (in ``seen``); return why it was
    stopped, peak RSS, end time."""
    deadline = start + limits.wall_seconds
    stdout, stderr = _pipes(proc)
    buffers = {stdout.fileno(): out, stderr.fileno(): err}
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
                if moved is not None and moved.at is not None:
                    deadline = moved.at
                if now >= deadline:
                    reason = "timeout"
                    break
                if now >= next_sample:
                    next_sample = now + SAMPLE_SECONDS
                    tasks = 0
                    if root is not None:
                        total = 0
                        for p in [root, *_descendants(root)]:
                            seen.setdefault(p.pid, p)
                            with contextlib.suppress(psutil.Error), p.oneshot():
                                total += p.memory_info().rss
                                if guard is not None and guard.tasks is not None:
                                    tasks += p.num_threads()
                        peak = max(peak, total)
                        if watchdog and limits.memory_bytes is not None and total > limits.memory_bytes:
                            reason = "memory"
                            break
                    if guard is not None and guard.over(tasks, now):
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


def _drain(proc: subprocess.Popen[bytes], out: bytearray, err: bytearray, seconds: float = 2.0) -> None:
    """Collect the rest of the output (everything that could write it is dead), then close."""
    end = time.monotonic() + seconds
    stdout, stderr = _pipes(proc)
    pipes = {stdout.fileno(): out, stderr.fileno(): err}
    with selectors.DefaultSelector() as sel:
        for fd in pipes:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map() and (left := end - time.monotonic()) > 0:
            for key, _ in sel.select(left):
                _read_into(key.fd, pipes[key.fd], sel)
    _close_pipes(proc)


def _pipes(proc: subprocess.Popen[bytes]) -> tuple[IO[bytes], IO[bytes]]:
    """The command's stdout and stderr (both always ``PIPE`` here)."""
    assert proc.stdout is not None and proc.stderr is not None
    return proc.stdout, proc.stderr


def _close_pipes(proc: subprocess.Popen[bytes]) -> None:
    stdout, stderr = _pipes(proc)
    stdout.close()
    stderr.close()


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
