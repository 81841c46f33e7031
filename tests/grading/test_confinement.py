"""Exploit scenarios against the sandbox's confinement: who the command runs as, what it can read,
and the per-sandbox limits (processes, disk, /dev/shm, /tmp), each with its "no host effect" check.

Tiny Python programs play the hostile notebook; the last scenarios run real notebooks through
:func:`convlab.grading.execute.execute` (a classmate's submission in the batch folder, a cell that
ignores SIGINT).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import textwrap
import time
import uuid
import zipfile
from pathlib import Path

import nbformat
import psutil
import pytest

from convlab.grading import execute
from convlab.grading import sandbox as sb

MB = 1 << 20

pytestmark = pytest.mark.skipif(not sb.probe_protections()["filesystem_read_confined"],
                                reason="this machine cannot confine reads (no mount namespace)")




def run(code: str, base: Path, *args: str, readable: tuple[str, ...] = (), env: dict[str, str] | None = None,
        **limits: object) -> sb.Outcome:
    settings = {"wall_seconds": 30.0, "memory_bytes": None, **limits}
    return sb.run([sys.executable, "-c", textwrap.dedent(code), *args], workdir=sb.prepare_workdir(base),
                  limits=sb.Limits(**settings), env=env or {}, readable=readable)


def test_every_protection_in_force_here() -> None:
    """Where util-linux's unshare works (the CI machine: root, venv in the checkout), is nothing
    missing, so that grading needs no opt-in?"""
    assert sb.confinement_problem() is None
    found = sb.probe_protections()
    assert all(found[k] for k in ("unprivileged_user", "filesystem_read_confined", "process_limit",
                                  "disk_quota", "private_shm", "pid_namespace")), found


def test_unprivileged_with_the_graders_own_venv(base: Path) -> None:
    """Does this very virtualenv (whose Python may live under /root, mode 0o700) run in the
    sandbox as a non-root user, with its libraries importable and the package importable?"""
    code = "import os, numpy, nbclient, convlab.grading; print(os.getuid(), os.getgid(), os.getgroups())"
    out = sb.run([sys.executable, "-c", code], workdir=sb.prepare_workdir(base),
                 limits=sb.Limits(wall_seconds=60, memory_bytes=None),
                 env={"PYTHONPATH": str(Path(sb.__file__).resolve().parents[2])})
    assert out.status == "ok", out
    uid, gid, groups = out.stdout_tail.split(maxsplit=2)
    assert int(uid) != 0 and int(gid) != 0 and groups.strip() == "[]"
    assert out.protections["unprivileged_user"] and out.protections["filesystem_read_confined"]
    if os.geteuid() == 0:
        assert sb.UID_BASE <= int(uid) < sb.UID_BASE + sb.UID_SLOTS


READ = """
    import json, os, sys
    found = {}
    for path in sys.argv[1:]:
        try:
            found[path] = (sorted(os.listdir(path)) if os.path.isdir(path)
                           else open(path, "rb").read(64).decode(errors="replace"))
        except OSError as exc:
            found[path] = type(exc).__name__
    print(json.dumps({"found": found, "env": dict(os.environ)}))
"""


def test_reads_of_others_are_confined(base: Path) -> None:
    """Can the command read none of: another sandbox's working directory, the batch folder with a
    classmate's submission, the output folder, the autograder's hidden tests, /etc/shadow, /root,
    the processes of the host; while it reads its datasets folder and writes its own directory?
    And is no such path in its environment?"""
    other = sb.prepare_workdir(base)
    (other / "export.npz").write_text("classmate's work")
    batch, output, tests, data, extra = (base / name for name in ("batch", "output", "autograder",
                                                                  "datasets", "extra"))
    for folder in (batch, output, tests, data, extra):
        folder.mkdir(mode=0o755)
    (batch / "classmate.zip").write_text("classmate's zip")
    (output / "gradebook.csv").write_text("student_id,total")
    (tests / "q1.py").write_text("hidden test")
    (data / "mnist.gz").write_text("data")
    (extra / "more.txt").write_text("more")
    for path in (batch / "classmate.zip", output / "gradebook.csv", tests / "q1.py", data / "mnist.gz",
                 extra / "more.txt"):
        path.chmod(0o644)
    targets = [str(p) for p in (other, other / "export.npz", batch, batch / "classmate.zip", output,
                                tests / "q1.py", Path("/etc/shadow"), Path("/root/.bashrc"), Path("/home"))]
    out = run(READ, base, *targets, str(data / "mnist.gz"), str(extra / "more.txt"), "/proc/1/environ",
              readable=(str(extra),), env={"CONVLAB_DATASETS": str(data)})
    assert out.status == "ok", out
    seen = json.loads(out.stdout_tail)
    for path in targets:
        assert seen["found"][path] in ("FileNotFoundError", "PermissionError"), (path, seen["found"][path])
    assert seen["found"][str(data / "mnist.gz")] == "data"  # the datasets, named by the environment
    assert seen["found"][str(extra / "more.txt")] == "more"
    assert seen["found"]["/proc/1/environ"] == "PermissionError"  # the init's, as root
    assert not any(str(base) in value and "sandbox-" not in value and value != str(data)
                   for value in seen["env"].values())
    # the host sees the files unchanged
    assert (batch / "classmate.zip").read_text() == "classmate's zip"


WRITE = """
    found = {}
    for path in sys.argv[1:4]:
        try:
            open(path + "/x" if os.path.isdir(path) else path, "w").close()
            found[path] = "written"
        except OSError as exc:
            found[path] = type(exc).__name__
    print(json.dumps({"found": found}))
"""


def test_hidden_paths_are_empty_inside(base: Path) -> None:
    """Of a readable tree, does the command see a hidden folder empty (its files absent) and a
    hidden file empty, neither writable, while their siblings read as usual; does a hidden path
    outside every readable tree change nothing; and does the host keep every file?"""
    tree = base / "package"
    (tree / "secret").mkdir(parents=True)
    (tree / "secret" / "answer.py").write_text("ANSWER = 42")
    (tree / "thresholds.json").write_text('{"q": 0.9}')
    (tree / "public.py").write_text("public")
    (tree / "sub").mkdir()
    (tree / "sub" / "kept.py").write_text("kept")
    (tree / "sub" / "hidden.py").write_text("hidden")
    for path in tree.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    tree.chmod(0o755)
    hidden = [str(tree / "secret"), str(tree / "thresholds.json"), str(tree / "sub" / "hidden.py"),
              str(base / "elsewhere"), str(tree / "missing")]
    targets = [str(tree / "secret"), str(tree / "secret" / "answer.py"), str(tree / "thresholds.json"),
               str(tree / "public.py"), str(tree / "sub"), str(tree / "sub" / "kept.py"),
               str(tree / "sub" / "hidden.py")]
    out = sb.run([sys.executable, "-c", textwrap.dedent(READ + WRITE), *targets],
                 workdir=sb.prepare_workdir(base), limits=sb.Limits(wall_seconds=30, memory_bytes=None),
                 env={}, readable=(str(tree),), hidden=hidden)
    assert out.status == "ok", out
    found, written = (json.loads(line)["found"] for line in out.stdout_tail.splitlines())
    assert found[str(tree / "secret")] == []
    assert found[str(tree / "secret" / "answer.py")] == "FileNotFoundError"
    assert found[str(tree / "thresholds.json")] == ""
    assert found[str(tree / "sub" / "hidden.py")] == ""
    assert found[str(tree / "public.py")] == "public"
    assert found[str(tree / "sub")] == ["hidden.py", "kept.py"]
    assert found[str(tree / "sub" / "kept.py")] == "kept"
    for path in targets[:3]:
        assert written[path] in ("OSError", "PermissionError"), (path, written[path])
    assert (tree / "secret" / "answer.py").read_text() == "ANSWER = 42"
    assert (tree / "thresholds.json").read_text() == '{"q": 0.9}'


def test_other_sandboxes_get_other_uids(base: Path) -> None:
    """Do two concurrent sandboxes of a root grader run as two different uids (so that
    RLIMIT_NPROC and file ownership separate the students)?"""
    if os.geteuid() != 0:
        pytest.skip("one uid per sandbox needs a root grader")
    import threading

    outs: list[sb.Outcome] = []
    threads = [threading.Thread(target=lambda: outs.append(run(
        "import os, time; print(os.getuid()); time.sleep(1.5)", base))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({o.stdout_tail for o in outs}) == 2, outs


def test_refuses_without_the_opt_in(base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a machine that cannot confine (no mount namespace), is a run refused with a clear error
    rather than silently unconfined; and with the explicit opt-in does it run, reported as such?"""
    real = sb._probe()
    machine = dataclasses.replace(real, mount=False)
    monkeypatch.setattr(sb, "_probe", lambda: machine)
    assert "--allow-root" in (sb.confinement_problem() or "")
    with pytest.raises(sb.SandboxError, match="cannot confine"):
        run("pass", base)
    out = run("pass", base, allow_root=True)
    assert out.status == "ok" and not out.protections["filesystem_read_confined"]
    if os.geteuid() == 0:
        rootful = dataclasses.replace(real, user=None)
        monkeypatch.setattr(sb, "_probe", lambda: rootful)
        with pytest.raises(sb.SandboxError, match="as root"):
            run("pass", base)
        # opted in: root, but of the mount namespace only, and without any capability
        out = run("print(open('/proc/self/status').read())", base, allow_root=True)
        assert out.status == "ok" and not out.protections["unprivileged_user"], out
        assert out.protections["filesystem_read_confined"]
        for line in ("CapEff:\t0000000000000000", "CapBnd:\t0000000000000000"):
            assert line in out.stdout_tail, out.stdout_tail


FORK_BOMB = """
    import os, time
    n, failed = 0, 0
    start = time.monotonic()
    while time.monotonic() - start < 5 and n < 3000:
        try:
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
            n += 1
        except OSError:
            failed += 1
    print("forked", n, "failed", failed, flush=True)
    time.sleep(60)
"""


def test_fork_bomb_is_stopped_and_reported(base: Path) -> None:
    """Is a command forking 3000 processes in 5 s held at the process limit, stopped, reported
    (``stopped_by="processes"``), and does none of its processes survive?"""
    token = uuid.uuid4().hex
    start = time.monotonic()
    out = run(FORK_BOMB, base, token, max_processes=200)
    assert time.monotonic() - start < 20
    assert out.status == "crashed" and out.stopped_by == "processes", out
    assert "process" in out.stderr_tail and out.protections["process_limit"]
    time.sleep(0.5)
    assert not [p for p in psutil.process_iter(["cmdline"]) if token in (p.info["cmdline"] or [])]


def test_disk_bomb_is_stopped_and_reported(base: Path) -> None:
    """Is a command writing far more than its disk quota to its working directory, in many files
    (the sampled quota) or in one (RLIMIT_FSIZE), stopped and reported (``stopped_by="disk"``)
    long before it is done?"""
    many = """
        import os, time
        for i in range(250):
            with open("part%d" % i, "wb") as f:
                f.write(b"x" * (8 << 20))
            time.sleep(0.01)
        print("wrote it all")
    """
    one = """
        with open("big", "wb") as f:
            for _ in range(2000):
                f.write(b"x" * (1 << 20))
                f.flush()
        print("wrote it all")
    """
    for code in (many, one):
        out = run(code, base, disk_bytes=100 * MB)
        assert out.status == "crashed" and out.stopped_by == "disk", out
        assert "wrote it all" not in out.stdout_tail and out.protections["disk_quota"]
        assert "sandbox: stopped: it wrote more than" in out.stderr_tail


def _shmem_kb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("Shmem:"):
            return int(line.split()[1])
    return 0


def test_shm_and_tmp_are_private_bounded_and_removed(base: Path) -> None:
    """Does the command get its own /dev/shm and /tmp, each refusing to grow past its size, with
    nothing left on the host (files or shared memory) after the run?"""
    code = """
        import os
        home = os.getcwd().split("/")[2]  # /tmp/<base>/<workdir>: the way to the working directory
        for folder in ("/dev/shm", "/tmp"):
            assert os.listdir(folder) == ([home] if folder == "/tmp" else []), (folder, os.listdir(folder))
            written = 0
            try:
                with open(os.path.join(folder, "bomb"), "wb") as f:
                    for _ in range(400):
                        f.write(b"x" * (1 << 20))
                        f.flush()
                        written += 1
            except OSError as exc:
                print(folder, "full after", written, "MB:", type(exc).__name__)
    """
    shm_before, tmp_before = set(os.listdir("/dev/shm")), set(os.listdir("/tmp"))
    shmem = _shmem_kb()
    out = run(code, base, shm_bytes=64 * MB, tmp_bytes=32 * MB)
    assert out.status == "ok", out
    assert "/dev/shm full after 6" in out.stdout_tail and "/tmp full after 3" in out.stdout_tail, out
    assert out.protections["private_shm"]
    assert not {n for n in set(os.listdir("/dev/shm")) - shm_before if "bomb" in n}
    assert not {n for n in set(os.listdir("/tmp")) - tmp_before if "bomb" in n}
    assert _shmem_kb() < shmem + 32 * 1024  # the 64 MB are given back (others may use a little)


SYSV_SHM = """
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmget.restype = ctypes.c_int
    segment = libc.shmget(0, 64 << 20, 0o1000 | 0o600)  # IPC_PRIVATE, IPC_CREAT
    assert segment >= 0, ctypes.get_errno()
    print("segments inside:", len(open("/proc/sysvipc/shm").read().splitlines()) - 1)
"""


def test_sysv_shared_memory_is_private_and_removed(base: Path) -> None:
    """Is a System V shared memory segment (which outlives its creator) made in the sandbox's own
    IPC namespace, invisible to the host and gone with the sandbox?"""
    def segments() -> list[str]:
        return Path("/proc/sysvipc/shm").read_text().splitlines()[1:]

    before = segments()
    out = run(SYSV_SHM, base)
    assert out.status == "ok" and "segments inside: 1" in out.stdout_tail, out
    assert [s for s in segments() if s not in before and " 67108864 " in s] == []


def _notebook(path: Path, *cells: str) -> Path:
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells]), path)
    return path


@pytest.mark.slow
def test_notebook_cannot_read_a_classmates_submission(base: Path, tmp_path: Path) -> None:
    """Graded through phase 1, can a notebook not find a classmate's zip in the batch folder, nor
    the autograder, nor the output folder, even knowing their paths?"""
    batch, tests, output = tmp_path / "batch", tmp_path / "autograder", tmp_path / "out"
    for folder in (batch, tests, output):
        folder.mkdir()
    with zipfile.ZipFile(batch / "classmate.zip", "w") as zf:
        zf.writestr("lab.ipynb", "{}")
    (tests / "q1.py").write_text("hidden")
    probe = "\n".join(f"print({str(p)!r}, os.path.exists({str(p)!r}))" for p in
                      (batch / "classmate.zip", batch, tests / "q1.py", output, Path("/etc/shadow")))
    sub = _notebook(batch / "me.ipynb", "import os\n" + probe)
    ex = execute.execute(sub, "tiny", {}, execute.Settings(wall_seconds=120, cell_timeout=60,
                                                            memory_bytes=2 << 30), base=base)
    try:
        assert ex.status == "ok", ex
        text = "".join(o.get("text", "") for c in nbformat.read(ex.executed, 4).cells
                       for o in c.get("outputs", []))
        assert text.count(" False") == 5 and " True" not in text, text
        assert ex.protections["filesystem_read_confined"] and ex.protections["unprivileged_user"]
    finally:
        execute.remove_workdir(ex)


@pytest.mark.slow
def test_cell_ignoring_sigint_ends_at_the_cell_limit(base: Path, tmp_path: Path) -> None:
    """Does a cell that ignores SIGINT and loops forever end soon after the cell time limit (its
    kernel killed after the grace period), reported as a timeout with a message that says so,
    long before the wall-clock limit?"""
    sub = _notebook(tmp_path / "s.ipynb", "x = 1", "import signal, time\n"
                    "signal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.05)\n",
                    "print('never')")
    start = time.monotonic()
    ex = execute.execute(sub, "tiny", {}, execute.Settings(wall_seconds=300, cell_timeout=3,
                                                            memory_bytes=2 << 30), base=base)
    try:
        elapsed = time.monotonic() - start
        assert ex.status == "timeout", ex
        assert ex.message.startswith(execute.STOPPED["interrupt"])
        assert elapsed < 3 + execute.INTERRUPT_GRACE + 30
    finally:
        execute.remove_workdir(ex)


# ------------------------------------------------------------------ graded end to end (the batch)
def _cells(*extra: str) -> tuple[str, ...]:
    import corpus_tiny as corpus

    return (corpus.SETUP, "x = 42\nlst = [1, 2, 3]", "grader.check('q1')", *extra)


# A blank notebook that hunts a classmate's submission (its path given, as a student could guess
# it), the autograder's hidden tests and the output folder; it runs whatever notebook it finds and
# checks q2 with the classmate's answers.
COPY_CLASSMATE = r"""
import glob, json, os
found = {}
for pattern in [os.path.join(BATCH, "*"), os.path.join(TESTS, "*"), os.path.join(OUTPUT, "**"),
                "/tmp/**/*.ipynb", "../**/*.ipynb", "/proc/*/cwd/*.ipynb", "/etc/shadow"]:
    for path in glob.glob(pattern, recursive=True):
        try:
            found[path] = open(path).read()
        except OSError as exc:
            found[path] = type(exc).__name__
for path, text in found.items():
    if path.endswith("honest.ipynb") and text.startswith("{"):
        for cell in json.loads(text)["cells"]:
            if "конец" in "".join(cell["source"]):
                exec("".join(cell["source"]))
own = os.getcwd() + os.sep
print("found:", sorted(p for p, text in found.items()  # what it could read, but its own files
                       if not text.endswith("Error") and not os.path.realpath(p).startswith(own)))
"""

SPAWN_BOMB = r"""
import subprocess, time
children, start = [], time.monotonic()
while time.monotonic() - start < 5 and len(children) < 3000:
    try:
        children.append(subprocess.Popen(["sleep", "120"]))
    except OSError:
        time.sleep(0.01)
print("spawned", len(children))
time.sleep(120)
"""

DISK_BOMB = r"""
import time
for part in range(12):  # 3 GB in files of 256 MB: no single file reaches RLIMIT_FSIZE
    with open("fill%d" % part, "wb") as f:
        for _ in range(256):
            f.write(b"x" * (1 << 20))
time.sleep(120)
"""

SHM_BOMB = r"""
written = 0
try:
    with open("/dev/shm/fill", "wb") as f:
        for _ in range(3 * 1024):
            f.write(b"x" * (1 << 20))
            written += 1
except OSError as exc:
    print("shm full after", written, "MB")
"""

SIGINT_LOOP = ("import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
               "while True:\n    time.sleep(0.05)")


def _written(folder: Path, ctx: object) -> Path:
    raise AssertionError("written above")


@pytest.mark.slow
def test_confinement_exploits_graded_end_to_end(tmp_path: Path) -> None:
    """Through ``grade.grade_folder`` (the code of ``convlab grade``), as an unprivileged user on
    this machine's venv: does a blank notebook that hunts a classmate's submission, the hidden
    tests and the output folder find none of them and score only its own work; are a 3000-process
    spawn bomb, a 3 GB disk bomb and a 3 GB /dev/shm bomb stopped (the first two reported) with the
    work checked before them kept; does a SIGINT-proof loop end at the cell limit as a timeout;
    and is nothing left on the host (processes, /dev/shm, working directories)?"""
    import corpus_tiny as corpus
    from test_corpus import grade_scenarios

    subs, out = tmp_path / "subs", tmp_path / "out"
    autograder = corpus.write_autograder(tmp_path / "autograder")
    paths = f"BATCH, TESTS, OUTPUT = {str(subs)!r}, {str(autograder / 'tests')!r}, {str(out)!r}\n"
    corpus.notebook(subs, "honest.ipynb", corpus.SETUP, *corpus.HONEST)
    corpus.notebook(subs, "copy_classmate.ipynb", corpus.SETUP, paths + COPY_CLASSMATE,
                    "grader.check('q1')\ngrader.check('q2')")
    for name, bomb in (("spawn_bomb", SPAWN_BOMB), ("disk_bomb", DISK_BOMB), ("shm_bomb", SHM_BOMB),
                       ("sigint_loop", SIGINT_LOOP)):
        corpus.notebook(subs, f"{name}.ipynb", *_cells(bomb, "y = 'конец'\ngrader.check('q2')"))
    expected = {
        "honest": corpus.Scenario("honest", "honest", "", "ok", 4.0, write=_written),
        "copy_classmate": corpus.Scenario("copy_classmate", "exploit", "", "ok", 0.0, write=_written),
        "spawn_bomb": corpus.Scenario("spawn_bomb", "exploit", "", "crashed", 2.0, write=_written),
        "disk_bomb": corpus.Scenario("disk_bomb", "exploit", "", "crashed", 2.0, write=_written),
        "shm_bomb": corpus.Scenario("shm_bomb", "exploit", "", "ok", 4.0, write=_written),
        "sigint_loop": corpus.Scenario("sigint_loop", "exploit", "", "timeout", 2.0, write=_written),
    }
    shm_before, shmem = set(os.listdir("/dev/shm")), _shmem_kb()
    # memory: a thousand `sleep`s count ~1.5 MB of RSS each (shared pages counted in each)
    results = grade_scenarios(subs, autograder, out, expected, cell_timeout=20.0, wall_seconds=200.0,
                              memory_bytes=4 << 30)
    for result in results.values():
        protections = result["execution"]["protections"]
        assert all(protections[k] for k in ("unprivileged_user", "filesystem_read_confined",
                                            "process_limit", "disk_quota", "private_shm")), protections
    text = (out / "feedback" / "copy_classmate.ipynb").read_text()
    assert "found: []" in text, text[-3000:]
    assert execute.STOPPED["processes"] in results["spawn_bomb"]["reason"]
    assert execute.STOPPED["disk"] in results["disk_bomb"]["reason"]
    assert "shm full after 512 MB" in (out / "feedback" / "shm_bomb.ipynb").read_text()
    assert execute.STOPPED["interrupt"] in results["sigint_loop"]["reason"]
    assert not [p for p in psutil.process_iter(["username", "cmdline"])
                if (p.info["cmdline"] or [])[:2] == ["sleep", "120"]]
    assert not {n for n in set(os.listdir("/dev/shm")) - shm_before if n == "fill"}
    assert _shmem_kb() < shmem + 128 * 1024


# Takes the reference answers from the grader's own package, as the kernel imports it: the hidden
# checks (their module, a reference function) and thresholds.json; answers only with them.
READ_THE_GRADER = r"""
import os, convlab
got = []
for module in ("convlab.checks.nin", "convlab.checks.models", "convlab.grading.score", "convlab.build"):
    try:
        loaded = __import__(module, fromlist=["_"])
    except ImportError as exc:
        print("import:", module, type(exc).__name__)
    else:  # a hidden module is an empty file: it imports, with nothing in it
        names = [name for name in vars(loaded) if not name.startswith("__")]
        print("import:", module, names)
        got += names
try:
    from convlab.checks import threshold
    got.append(threshold)
except ImportError as exc:
    print("import: threshold", type(exc).__name__)
text = open(os.path.join(os.path.dirname(convlab.__file__), "thresholds.json")).read()
print("thresholds:", repr(text))
print("checks folder:", os.listdir(os.path.join(os.path.dirname(convlab.__file__), "checks")))
x, lst = (42, [1, 2, 3]) if got or text else (None, None)
y = "конец" if got or text else None
"""


@pytest.mark.slow
def test_kernel_cannot_read_the_hidden_checks_end_to_end(tmp_path: Path) -> None:
    """Through ``grade.grade_folder``: does a notebook whose kernel imports the hidden checks (and
    other grader modules) and reads ``thresholds.json`` from the package folder get ImportError or
    an empty module, and an empty file, so that it gains nothing, while the honest notebook still
    gets full marks? (A hidden folder is there, empty: ``import convlab.checks`` alone gives an
    empty namespace package; a hidden module's file is there, empty: it imports, empty.)"""
    import corpus_tiny as corpus
    from test_corpus import grade_scenarios

    subs, out = tmp_path / "subs", tmp_path / "out"
    autograder = corpus.write_autograder(tmp_path / "autograder")
    corpus.notebook(subs, "honest.ipynb", corpus.SETUP, *corpus.HONEST)
    corpus.notebook(subs, "read_the_grader.ipynb", corpus.SETUP, READ_THE_GRADER,
                    "grader.check('q1')\ngrader.check('q2')")
    expected = {
        "honest": corpus.Scenario("honest", "honest", "", "ok", 4.0, write=_written),
        "read_the_grader": corpus.Scenario("read_the_grader", "exploit", "", "ok", 0.0, write=_written),
    }
    grade_scenarios(subs, autograder, out, expected)
    text = (out / "feedback" / "read_the_grader.ipynb").read_text()
    for module in ("convlab.checks.nin", "convlab.checks.models"):
        assert f"import: {module} ModuleNotFoundError" in text, text[-3000:]
    for module in ("convlab.grading.score", "convlab.build"):
        assert f"import: {module} []" in text, text[-3000:]
    assert "import: threshold ImportError" in text, text[-3000:]
    assert "thresholds: ''" in text and "checks folder: []" in text, text[-3000:]


BLOCK_TEST = '''from otter.test_files import test_case

OK_FORMAT = False

name = "q1"
points = 1

@test_case(points=1, hidden=True)
def test_block(nin_block):
    from convlab.checks import nin
    nin.nin_block_probed(nin_block)
'''

NIN_BLOCK = """
import tensorflow as tf

def nin_block(num_channels, kernel_size, strides, padding, num_1x1=2):
    block = tf.keras.Sequential()
    block.add(tf.keras.layers.Conv2D(num_channels, kernel_size, strides=strides, padding=padding,
                                     activation='relu'))
    block.add(tf.keras.layers.BatchNormalization())
    for _ in range(NUM_1X1 if NUM_1X1 is not None else num_1x1):
        block.add(tf.keras.layers.Conv2D(num_channels, kernel_size=1, activation='relu'))
        block.add(tf.keras.layers.BatchNormalization())
    return block
"""


@pytest.mark.slow
def test_probed_block_described_in_the_confined_kernel(tmp_path: Path) -> None:
    """With the hidden checks out of the kernel's reach, are Lab 6's grader-owned probes of
    ``nin_block`` still described in the kernel (``probes.describe_block``) and checked by the
    trusted side: the right block passes, one that ignores ``num_1x1`` fails?"""
    import corpus_tiny as corpus
    from test_corpus import grade_scenarios

    subs, out = tmp_path / "subs", tmp_path / "out"
    tests = tmp_path / "autograder" / "tests"
    tests.mkdir(parents=True)
    (tests / "q1.py").write_text(BLOCK_TEST)
    for name, num_1x1 in (("right_block", None), ("ignores_num_1x1", 1)):
        corpus.notebook(subs, f"{name}.ipynb", corpus.SETUP, f"NUM_1X1 = {num_1x1}\n" + NIN_BLOCK,
                        "grader.check('q1')")
    expected = {"right_block": corpus.Scenario("right_block", "honest", "", "ok", 1.0, write=_written),
                "ignores_num_1x1": corpus.Scenario("ignores_num_1x1", "fault", "", "ok", 0.0, write=_written)}
    results = grade_scenarios(subs, tmp_path / "autograder", out, expected, cell_timeout=120.0)
    message = json.dumps(results["ignores_num_1x1"]["questions"], ensure_ascii=False)
    assert "nin_block(num_channels=8" in message and "ожидается: слои" in message, message[:2000]
