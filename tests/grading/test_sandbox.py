"""The sandbox that runs one submission's command: limits, isolation, status and clean-up.

Tiny Python programs play the submission. Most tests run twice: with every protection this machine
allows (``full``) and with the namespaces and the user switch refused (``degraded``), as on a
machine that does not allow them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import psutil
import pytest

from convlab.grading import sandbox as sb

MB = 1 << 20




@pytest.fixture(params=["full", "degraded"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with the machine's protections, then as if namespaces, setuid and Landlock
    were refused."""
    if request.param == "degraded":  # only with the explicit opt-in to running unconfined
        machine = dataclasses.replace(sb._probe(), net=False, pid_flags=None, user=None, map_root=False,
                                      landlock=False, mount=False)
        monkeypatch.setattr(sb, "_probe", lambda: machine)
        monkeypatch.setattr(sb, "Limits", functools.partial(sb.Limits, allow_root=True))
    return request.param


_PYTHON: list[str] = []


@pytest.fixture
def python(base: Path) -> str:
    """An interpreter the sandbox user can run (this venv's may live under /root, mode 0o700)."""
    if not _PYTHON:
        for candidate in dict.fromkeys([sys.executable, "/usr/bin/python3", shutil.which("python3")]):
            if candidate and os.access(candidate, os.X_OK):
                try:
                    run([candidate, "-c", "pass"], base)
                except sb.SandboxError:
                    continue
                _PYTHON.append(candidate)
                break
        else:
            pytest.skip("no Python interpreter that the sandbox user may run")
    return _PYTHON[0]


def run(command: list[str], base: Path, **limits: object) -> sb.Outcome:
    env = limits.pop("env", {})
    settings = {"wall_seconds": 20.0, "memory_bytes": 1024 * MB, **limits}
    return sb.run(command, workdir=sb.prepare_workdir(base), limits=sb.Limits(**settings), env=env)


def py(python: str, code: str, *args: str) -> list[str]:
    return [python, "-c", textwrap.dedent(code), *args]


def survivors(token: str, wait: float = 3.0) -> list[psutil.Process]:
    """Live (non-zombie) processes whose command line carries ``token``, after at most ``wait`` s."""
    end = time.monotonic() + wait
    while True:
        found = []
        for proc in psutil.process_iter(["cmdline", "status"]):
            if token in (proc.info["cmdline"] or []) and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc)
        if not found or time.monotonic() > end:
            return found
        time.sleep(0.05)


# Three helpers the "submission" starts: one stays in its process group, one leaves the session,
# one is a double-forked daemon whose parent is gone. Each writes a file once it runs.
SPAWN = textwrap.dedent("""
    import subprocess, sys, time
    token = sys.argv[1]
    stay = "import pathlib, time; pathlib.Path('stay').touch(); time.sleep(60)"
    leave = "import os, pathlib, time; os.setsid(); pathlib.Path('leave').touch(); time.sleep(60)"
    daemon = ("import os, subprocess, sys; os.setsid(); subprocess.Popen([sys.executable, '-c', "
              "'import pathlib, time; pathlib.Path(\\"daemon\\").touch(); time.sleep(60)', sys.argv[1]])")
    subprocess.Popen([sys.executable, "-c", stay, token])
    subprocess.Popen([sys.executable, "-c", leave, token])
    subprocess.Popen([sys.executable, "-c", daemon, token]).wait()
    import os
    while not all(os.path.exists(n) for n in ("stay", "leave", "daemon")):
        time.sleep(0.01)
    print("spawned", flush=True)
""")


def test_probe_reports_every_protection() -> None:
    """Does the probe answer for each protection, the same way every time (it is cached)?"""
    found = sb.probe_protections()
    assert set(found) == set(sb.PROTECTIONS)
    assert all(isinstance(v, bool) for v in found.values())
    assert found["process_group"] and found["private_workdir"]
    assert sb.probe_protections() == found


def test_prepare_workdir_is_fresh_and_private(base: Path) -> None:
    """Is each working directory new, empty, owner-only, under a base others cannot list?"""
    one, two = sb.prepare_workdir(base / "sub"), sb.prepare_workdir(base / "sub")
    assert one != two and one.parent == two.parent == base / "sub"
    assert list(one.iterdir()) == []
    assert one.stat().st_mode & 0o777 == 0o700
    assert (base / "sub").stat().st_mode & 0o777 == 0o711


def test_normal_exit_is_ok_with_output(python: str, base: Path, mode: str) -> None:
    """Does a command that exits 0 get "ok", with its stdout and stderr captured?"""
    out = run(py(python, "import sys; print('hello'); print('warn', file=sys.stderr)"), base)
    assert (out.status, out.returncode) == ("ok", 0), out
    assert out.stdout_tail == "hello\n" and out.stderr_tail == "warn\n"
    assert out.seconds < 10 and out.peak_rss_bytes > 0


def test_output_tail_is_bounded(python: str, base: Path) -> None:
    """Is a flood of output kept only as its last few thousand characters?"""
    out = run(py(python, "print('x' * 3_000_000); print('END')"), base)
    assert out.status == "ok"
    assert len(out.stdout_tail) <= sb.TAIL_CHARS and out.stdout_tail.endswith("x\nEND\n")


@pytest.mark.parametrize(("code", "returncode"), [
    ("import os; os._exit(3)", 3),
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", -9),
    ("raise ValueError('boom')", 1),
])
def test_failures_are_crashed(python: str, base: Path, mode: str, code: str, returncode: int) -> None:
    """Is a nonzero exit, or a death by signal that no limit explains, reported as "crashed"?"""
    out = run(py(python, code), base)
    assert (out.status, out.returncode) == ("crashed", returncode), out
    if returncode == 1:
        assert "ValueError: boom" in out.stderr_tail


def test_timeout_kills_the_whole_tree(python: str, base: Path, mode: str) -> None:
    """Does an endless command get "timeout" near the limit, taking every process it started along
    (one in its group, one that left the session, a double-forked daemon)?"""
    token = uuid.uuid4().hex
    if mode == "degraded" and not sb.probe_protections()["process_group"]:
        pytest.skip("no process groups")
    start = time.monotonic()
    out = run(py(python, SPAWN + "\nwhile True: pass\n", token), base, wall_seconds=2.0)
    elapsed = time.monotonic() - start
    assert out.status == "timeout", out
    assert "spawned" in out.stdout_tail, out
    assert 2.0 <= out.seconds and elapsed < 2.0 + 2.5
    assert survivors(token) == []


def test_nothing_outlives_a_normal_exit(python: str, base: Path, mode: str) -> None:
    """Are the background processes of a command that exits normally killed, too?"""
    token = uuid.uuid4().hex
    out = run(py(python, SPAWN, token), base)
    assert out.status == "ok" and "spawned" in out.stdout_tail, out
    assert survivors(token) == []


GRADER = textwrap.dedent("""
    import dataclasses, sys
    from pathlib import Path
    from convlab.grading import sandbox as sb
    python, code, token, workdir, mode = sys.argv[1:]
    if mode == "degraded":
        machine = dataclasses.replace(sb._probe(), net=False, pid_flags=None, user=None, map_root=False,
                                      mount=False)
        sb._probe = lambda: machine
    sb.run([python, "-c", code, token], workdir=Path(workdir), env={},
           limits=sb.Limits(wall_seconds=120, memory_bytes=None, allow_root=mode == "degraded"))
""")


def test_nothing_outlives_a_dead_grader(python: str, base: Path, mode: str) -> None:
    """When the grader running a sandbox is killed (SIGKILL, its own process group only), are the
    command and everything it started (in its group, out of its session, a daemon) killed, and
    its working directory removed, at once rather than when the command ends?"""
    token = uuid.uuid4().hex
    workdir = sb.prepare_workdir(base)
    grader = subprocess.Popen([sys.executable, "-c", GRADER, python, SPAWN + "\ntime.sleep(120)\n", token,
                               str(workdir), mode], start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not all((workdir / name).exists() for name in ("stay", "leave", "daemon")):
            assert grader.poll() is None and time.monotonic() < deadline, "the sandbox never started"
            time.sleep(0.05)
        assert len(survivors(token, wait=0)) >= 4  # the command and its three helpers
    finally:
        os.killpg(grader.pid, signal.SIGKILL)
        grader.wait()
    assert survivors(token, wait=5) == []
    deadline = time.monotonic() + 5
    while workdir.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not workdir.exists()


def test_memory_overrun_is_memory(python: str, base: Path, mode: str) -> None:
    """Is a command growing to ~500 MB under a 200 MB limit stopped with "memory", quickly?"""
    token = uuid.uuid4().hex
    code = """
        import sys, time
        chunks = []
        for _ in range(10):
            chunks.append(b"x" * 50_000_000)
            time.sleep(0.05)
        print("allocated", flush=True)
        time.sleep(60)
    """
    out = run(py(python, code, token), base, memory_bytes=200 * MB)
    assert out.status == "memory", out
    assert out.protections["memory_watchdog"]
    assert "allocated" not in out.stdout_tail
    assert out.peak_rss_bytes > 200 * MB and out.seconds < 10
    assert survivors(token) == []


def test_huge_single_allocation_is_memory(python: str, base: Path) -> None:
    """Does one allocation far beyond the limit fail at once (RLIMIT_DATA backstop) as "memory"?"""
    if not sb.probe_protections()["rlimit_memory"]:
        pytest.skip("this machine refuses rlimits")
    out = run(py(python, "x = bytearray(8 << 30)"), base, memory_bytes=200 * MB)
    assert out.status == "memory", out
    assert out.protections["rlimit_memory"] and out.seconds < 5


def test_environment_is_minimal(python: str, base: Path, mode: str,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Does the command see only the variables passed, PATH, LANG, HOME (its working directory) and
    TMPDIR (inside it), and none of the grader's?"""
    monkeypatch.setenv("CONVLAB_SANDBOX_SECRET", "do-not-leak")
    out = run(py(python, "import json, os; print(json.dumps({**os.environ, 'cwd': os.getcwd()}))"),
              base, env={"GIVEN": "yes"})
    seen = json.loads(out.stdout_tail)
    cwd = seen.pop("cwd")
    assert "CONVLAB_SANDBOX_SECRET" not in seen
    assert set(seen) == {"GIVEN", "PATH", "HOME", "LANG", "TMPDIR"}
    assert seen["GIVEN"] == "yes" and seen["HOME"] == cwd and Path(cwd).parent == base
    assert seen["TMPDIR"] == str(Path(cwd) / sb.TMP)


def test_protections_reported(python: str, base: Path, mode: str) -> None:
    """Does the outcome say which protections were in force, given the machine and the limits?"""
    machine = sb.probe_protections()
    out = run(py(python, "pass"), base, memory_bytes=None, no_network=False)
    assert set(out.protections) == set(sb.PROTECTIONS)
    assert not out.protections["network_namespace"] and not out.protections["memory_watchdog"]
    assert out.protections["private_workdir"]
    out = run(py(python, "pass"), base)
    assert out.protections["network_namespace"] == machine["network_namespace"]
    assert out.protections["unprivileged_user"] == machine["unprivileged_user"]
    assert out.protections["pid_namespace"] == machine["pid_namespace"]
    assert out.protections["filesystem_write_confined"] == machine["filesystem_write_confined"]
    if mode == "degraded":
        assert not any(out.protections[k] for k in ("network_namespace", "pid_namespace",
                                                    "unprivileged_user", "filesystem_write_confined"))
    out = run(py(python, "pass"), base, confine_writes=False, allow_user_switch=False, allow_root=True)
    assert not out.protections["filesystem_write_confined"]
    assert out.protections["unprivileged_user"] == (os.geteuid() != 0)


CONNECT = """
    import socket, sys
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3).close()
        print("connected")
    except OSError as exc:
        print("blocked", type(exc).__name__)
    own = socket.create_server(("127.0.0.1", 0))
    socket.create_connection(own.getsockname(), timeout=3).close()
    print("own loopback ok")
"""


def test_network_namespace_cuts_off_the_host(python: str, base: Path) -> None:
    """Can the command not reach a service listening on the grader's localhost (while its own
    loopback, which Jupyter needs, still works)? And without no_network, can it?"""
    if not sb.probe_protections()["network_namespace"]:
        pytest.skip("this machine refuses network namespaces (unshare --net)")
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = str(server.getsockname()[1])
        out = run(py(python, CONNECT, port), base)
        assert out.protections["network_namespace"]
        assert "blocked" in out.stdout_tail and "own loopback ok" in out.stdout_tail, out
        out = run(py(python, CONNECT, port), base, no_network=False)
        assert "connected" in out.stdout_tail, out


WRITE = """
    import os, pathlib, sys
    print("uid", os.getuid())
    try:
        pathlib.Path(sys.argv[1], "planted").write_text("x")
        print("wrote outside")
    except OSError:  # PermissionError; FileNotFoundError where reads are confined too
        print("denied outside")
    pathlib.Path("mine").write_text("x")
    print("wrote home")
"""


def test_unprivileged_user_cannot_write_outside(python: str, base: Path) -> None:
    """Running as root, does the command run as another user that cannot write a root-owned
    0o755 directory, while it can write its own working directory?"""
    if not sb.probe_protections()["unprivileged_user"]:
        pytest.skip("no user switch here (not root, or the machine refuses setuid)")
    protected = base / "protected"
    protected.mkdir(mode=0o755)
    out = run(py(python, WRITE, str(protected)), base)
    assert out.protections["unprivileged_user"]
    assert "uid 0" not in out.stdout_tail
    assert "denied outside" in out.stdout_tail and "wrote home" in out.stdout_tail, out
    assert not (protected / "planted").exists()


def test_unreachable_workdir_is_refused(python: str, base: Path) -> None:
    """With the user switch, is a working directory that the sandbox user cannot reach an error
    that says so (instead of a confusing crash)?"""
    if not sb.probe_protections()["unprivileged_user"]:
        pytest.skip("no user switch here (not root, or the machine refuses setuid)")
    if not sb._runnable_by_others(python):  # unconfined, the switch needs a Python others can reach
        pytest.skip("this Python lives where the sandbox user cannot reach it (e.g. under /root)")
    hidden = base / "hidden"
    hidden.mkdir(mode=0o700)
    with pytest.raises(sb.SandboxError, match="not reachable"):
        sb.run(py(python, "pass"), workdir=sb.prepare_workdir(hidden),
               limits=sb.Limits(wall_seconds=5, memory_bytes=None, confine_reads=False), env={})


def test_missing_program_is_a_sandbox_error(base: Path) -> None:
    """Is a command that cannot be started a SandboxError (the grader's problem), not a crash?"""
    with pytest.raises(sb.SandboxError, match="cannot start"):
        run(["/nonexistent/program"], base)


ESCAPE = """
    import multiprocessing, os, pathlib, sys, tempfile
    victim = pathlib.Path(sys.argv[1])
    attempts = {
        "create": lambda: (victim / "planted").write_text("x"),
        "append": lambda: open(victim / "grader.py", "a").write("# planted"),
        "truncate": lambda: open(victim / "grader.py", "w").close(),
        "delete": lambda: (victim / "grader.py").unlink(),
        "mkdir": lambda: (victim / "sub").mkdir(),
        "rename_in": lambda: os.rename("mine", victim / "mine"),
        "symlink": lambda: os.symlink("/etc/passwd", victim / "link"),
        "slash_tmp": lambda: tempfile.mkstemp(dir="/tmp"),
    }
    pathlib.Path("mine").write_text("x")
    for name, attempt in attempts.items():
        try:
            attempt()
            print(name, "done")
        except OSError:
            print(name, "denied")
    pathlib.Path("sub/deeper").mkdir(parents=True)
    pathlib.Path("sub/deeper/file").write_text("x")
    os.rename("sub/deeper/file", "moved")
    tempfile.mkstemp()
    open("/dev/null", "w").write("x")
    multiprocessing.Lock()
    print("own files ok", os.getuid())
"""


def test_landlock_confines_writes_to_the_workdir(base: Path) -> None:
    """With Landlock and *without* the user switch (the command runs as the grader's user, as
    where the grader's Python lives under /root), can the command still not create, append,
    truncate, delete, rename into or link in a folder of the grader's, nor write /tmp, while it
    writes, renames and makes temporary files in its working directory, and writes /dev/null?"""
    if not sb.probe_protections()["filesystem_write_confined"]:
        pytest.skip("no Landlock here (Linux < 5.13 or not enabled)")
    victim = base / "grader"
    victim.mkdir(mode=0o777)
    (victim / "grader.py").write_text("SCORE = 'trusted'\n")
    (victim / "grader.py").chmod(0o666)
    before = sorted(p.name for p in Path("/tmp").iterdir())
    out = run([sys.executable, "-c", textwrap.dedent(ESCAPE), str(victim)], base, allow_user_switch=False,
              allow_root=True, confine_reads=False)
    assert out.status == "ok", out
    assert out.protections["filesystem_write_confined"] and not out.protections["unprivileged_user"]
    lines = dict(line.split(" ", 1) for line in out.stdout_tail.splitlines())
    assert {k: v for k, v in lines.items() if k != "own"} == {
        k: "denied" for k in ("create", "append", "truncate", "delete", "mkdir", "rename_in", "symlink",
                              "slash_tmp")}, out.stdout_tail
    assert lines["own"] == f"files ok {os.geteuid()}"
    assert sorted(p.name for p in victim.iterdir()) == ["grader.py"]
    assert (victim / "grader.py").read_text() == "SCORE = 'trusted'\n"
    # what mkstemp(dir="/tmp") would make (other users of this machine make other folders there)
    made = [p.name for p in Path("/tmp").iterdir() if p.name not in before and p.name.startswith("tmp")]
    assert made == []


def test_without_landlock_the_command_still_runs(base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the kernel has no Landlock (probe refused), does the command run unconfined, and is
    that reported?"""
    machine = dataclasses.replace(sb._probe(), landlock=False)
    monkeypatch.setattr(sb, "_probe", lambda: machine)
    victim = base / "grader"
    victim.mkdir()
    out = run([sys.executable, "-c", f"open({str(victim / 'planted')!r}, 'w').close()"], base,
              allow_user_switch=False, allow_root=True, confine_reads=False)
    assert out.status == "ok", out
    assert not out.protections["filesystem_write_confined"]
    assert (victim / "planted").exists()
