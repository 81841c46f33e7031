"""Phase 1 of the two-phase grader: run a submission's notebook in the sandbox, export its values.

The grader (trusted) never runs submission code in its own process. :func:`execute`:

1. unpacks the submission (:func:`unpack`) into a fresh private working directory
   (:func:`convlab.grading.sandbox.prepare_workdir`): a bare ``.ipynb`` under any name, or a
   ``grader.export()`` zip (the notebook plus ``artifacts/``). The directory holds no tests and
   nothing of the grader. Zip members are checked (no absolute paths, no ``..``, no links, at
   most :data:`MAX_MEMBERS` members and :data:`MAX_UNPACKED` bytes: the sizes the headers
   declare, before anything is written, then the bytes actually read); ``.OTTER_LOG``, pickles
   and otter's environment files are never extracted. A corrupt or empty submission is
   ``invalid-notebook``; a notebook whose metadata ``otter.assignment_name`` names another lab
   is ``wrong-assignment``.
2. writes the notebook to execute: a first cell (ours) that installs
   :mod:`convlab.grading.exporter` — it replaces the ``otter`` module of the kernel by a stand-in,
   so ``grader.check("q")`` *snapshots* the values question ``q``'s tests read at that point (as
   otter scores a question when its check cell runs) and ``grader.export(...)`` does nothing —
   then the student's cells (cells otter ignores at grading are dropped), then a last cell (ours)
   that snapshots the questions never checked against the final namespace. We keep the check
   cells rather than drop them because *when* a question is checked matters: Lab 5 reuses
   ``x_train`` for MNIST and then CIFAR-10. The first cell also caps what each cell prints, in
   the kernel (:func:`convlab.grading.exporter.cap_output`).
3. runs :mod:`convlab.grading.runner` (nbclient, ``allow_errors=True``, a per-cell timeout that
   interrupts the cell and carries on, outputs capped at :data:`MAX_CELL_OUTPUT` per cell and
   :data:`MAX_OUTPUT` in all) with :func:`convlab.grading.sandbox.run`: wall-clock and memory
   limits, no network, unprivileged user, reads confined (mount namespace: the notebook sees the
   Python environment and the datasets read-only, its working directory, nothing else of the
   host), process, disk and ``/dev/shm`` limits, writes confined to the working directory
   (Landlock). A cell that ignores the interrupt at the cell time limit has its kernel killed
   :data:`INTERRUPT_GRACE` seconds later (status ``timeout``).
   The environment holds only ``CONVLAB_DATASETS``, the Python path of this package, quiet
   plotting/TensorFlow settings and the Jupyter/IPython/matplotlib/Keras folders (in the
   working directory).

The result (:class:`Execution`) says how it ended and where the export folder and the executed
notebook are. Everything in the working directory was written by the submission and is data
to validate (:mod:`convlab.grading.score`), never code to run.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import stat
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import nbformat

import convlab
from convlab import datasets
from convlab.build import STUDENT_MODULES
from convlab.grading import runner, sandbox

MAX_MEMBERS = 2000
MAX_UNPACKED = 4 << 30  #: bytes a zip submission may unpack to
MAX_NOTEBOOK = 50 << 20  #: bytes of a submitted or executed notebook
EXPORT_DIR = "export"
NOTEBOOK = "submission.ipynb"
EXECUTED = "executed.ipynb"
#: never extracted from a zip: otter's log (a dill pickle), pickles, otter's saved environments
FORBIDDEN_SUFFIXES = (".pkl", ".pickle", ".dill", ".otter", ".joblib")
FORBIDDEN_NAMES = (".OTTER_LOG",)

MAX_CELL_OUTPUT = 2 << 20  #: characters of outputs kept per cell of the executed notebook
MAX_OUTPUT = 20 << 20  #: characters of outputs kept in the whole executed notebook
#: what a cut cell shows, from the kernel's cap (exporter.cap_output) or the runner's
CUT_NOTE = f"\n[вывод ячейки обрезан: больше {MAX_CELL_OUTPUT} символов]\n"

#: the runner (nbclient, outputs bounded), run by path in the sandbox: see its docstring
RUNNER = Path(runner.__file__)


#: seconds a cell interrupted at its time limit has to stop before its kernel is killed
INTERRUPT_GRACE = 10.0
KERNEL_KILLED = runner.KERNEL_KILLED  #: the runner's exit code: it killed a kernel that ignored the interrupt
#: the first line of an execution's message when the sandbox stopped it
STOPPED = {"processes": "выполнение остановлено: превышен лимит числа процессов и потоков",
           "disk": "выполнение остановлено: превышен лимит объёма файлов, записанных блокнотом",
           "interrupt": "выполнение остановлено: ячейка не прервалась по истечении лимита времени ячейки, "
                        "ядро остановлено принудительно"}


class SubmissionError(Exception):
    """The submission cannot be graded; ``status`` is ``invalid-notebook`` or ``wrong-assignment``."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Limits of one execution."""

    wall_seconds: float = 3600.0
    memory_bytes: int | None = 8 << 30
    cell_timeout: float = 1800.0
    seed: int | None = None  #: otter's ``seed`` / ``seed_variable`` (see :func:`otter_seed`)
    seed_variable: str | None = None
    no_train: bool = False  #: CONVLAB_NO_TRAIN=1: a fit without its submitted model fails
    datasets: str | None = None  #: CONVLAB_DATASETS for the kernel (default: the grader's)
    allow_user_switch: bool = True
    confine_writes: bool = True  #: Landlock: the notebook writes only its working directory
    confine_reads: bool = True  #: mount namespace: the notebook sees only what it needs
    #: explicit opt-in (``convlab grade --allow-root``): where the machine cannot confine the
    #: notebook, run it anyway (as root when the grader is root); without it such a machine refuses
    allow_root: bool = False
    max_processes: int | None = 1024  #: processes and threads of one notebook (TF needs ~100s)
    disk_bytes: int | None = 2 << 30  #: bytes a notebook may add to its working directory
    shm_bytes: int = 512 << 20  #: its private /dev/shm
    max_members: int = MAX_MEMBERS  #: files a zip submission may hold
    max_unpacked: int = MAX_UNPACKED  #: bytes a zip submission may unpack to
    #: CPU threads of the kernel's TensorFlow and OpenMP (None: their default, every core); a batch
    #: of several workers on one machine gives each its share, see :func:`thread_env`
    threads: int | None = None


@dataclass(frozen=True, kw_only=True)
class Execution:
    """How phase 1 ended for one submission."""

    status: str  #: ok, timeout, memory, crashed (the sandbox's) or invalid-notebook, wrong-assignment
    message: str = ""
    workdir: Path | None = None
    export: Path | None = None
    executed: Path | None = None
    seconds: float = 0.0
    peak_rss_bytes: int = 0
    protections: dict[str, bool] = field(default_factory=dict)
    stderr_tail: str = ""


# ---------------------------------------------------------------------------------- unpacking
def _member_path(name: str) -> PurePosixPath | None:
    """The relative path of a zip member, or None when it must not be extracted."""
    if "\\" in name or "\x00" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise SubmissionError("invalid-notebook", f"недопустимый путь в архиве: {name!r}")
    path = PurePosixPath(name)
    if any(part in ("..", "") for part in path.parts) or not path.parts:
        raise SubmissionError("invalid-notebook", f"недопустимый путь в архиве: {name!r}")
    if path.parts[0] == "__MACOSX" or any(part in FORBIDDEN_NAMES for part in path.parts):
        return None
    if path.name.lower().endswith(FORBIDDEN_SUFFIXES):
        return None
    return path


def _extract(zf: zipfile.ZipFile, dest: Path, max_members: int = MAX_MEMBERS,
             max_unpacked: int = MAX_UNPACKED) -> list[PurePosixPath]:
    members = zf.infolist()
    if len(members) > max_members:
        raise SubmissionError("invalid-notebook", f"в архиве {len(members)} файлов (не более {max_members})")
    declared = sum(info.file_size for info in members)
    if declared > max_unpacked:  # refused before writing anything (a zip bomb says what it is)
        raise SubmissionError("invalid-notebook", f"архив распаковывается в слишком большой объём "
                              f"({declared} байт, не более {max_unpacked})")
    written: list[PurePosixPath] = []
    budget = max_unpacked  # zipfile never reads past a member's declared size; counted anyway
    for info in members:
        if info.is_dir():
            continue
        mode = info.external_attr >> 16
        if stat.S_IFMT(mode) and not stat.S_ISREG(mode):  # symlinks and other special files
            continue
        rel = _member_path(info.filename)
        if rel is None:
            continue
        target = dest.joinpath(*rel.parts)
        if not target.resolve().is_relative_to(dest.resolve()):
            raise SubmissionError("invalid-notebook", f"недопустимый путь в архиве: {info.filename!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as source, open(target, "xb") as sink:
            while chunk := source.read(1 << 20):
                budget -= len(chunk)
                if budget < 0:
                    raise SubmissionError("invalid-notebook", "архив распаковывается в слишком большой объём")
                sink.write(chunk)
        written.append(rel)
    return written


def _read_notebook(path: Path) -> Any:
    if path.stat().st_size > MAX_NOTEBOOK:
        raise SubmissionError("invalid-notebook", "блокнот слишком большой")
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as error:
        raise SubmissionError("invalid-notebook", f"файл не является блокнотом Jupyter: {error}") from error
    if not isinstance(nb.get("cells"), list):
        raise SubmissionError("invalid-notebook", "файл не является блокнотом Jupyter: нет ячеек")
    return nb


def _the_notebook(files: list[PurePosixPath]) -> PurePosixPath:
    """The one notebook of a zip's files: at the top level, else anywhere but in checkpoints."""
    notebooks = [f for f in files if f.suffix.lower() == ".ipynb" and len(f.parts) == 1]
    if not notebooks:
        notebooks = [f for f in files if f.suffix.lower() == ".ipynb" and ".ipynb_checkpoints" not in f.parts]
    if len(notebooks) != 1:
        raise SubmissionError("invalid-notebook", "в архиве нет блокнота .ipynb" if not notebooks
                              else f"в архиве несколько блокнотов: {', '.join(map(str, notebooks))}")
    return notebooks[0]


def submitted_notebook(submission: Path) -> Any:
    """The submitted notebook (nbformat v4) read as plain JSON, never run and nothing extracted:
    the ``.ipynb`` itself or the one notebook of a zip (as :func:`unpack` picks it). Raises
    :class:`SubmissionError` when there is none."""
    submission = Path(submission)
    if submission.suffix.lower() != ".zip":
        return _read_notebook(submission)
    try:
        with zipfile.ZipFile(submission) as zf:
            members = {}
            for info in zf.infolist():
                if info.is_dir():
                    continue
                with contextlib.suppress(SubmissionError):
                    if (rel := _member_path(info.filename)) is not None:
                        members[rel] = info
            info = members[_the_notebook(list(members))]
            with zf.open(info) as source:
                data = source.read(MAX_NOTEBOOK + 1)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, ValueError, KeyError) as error:
        raise SubmissionError("invalid-notebook", f"архив повреждён: {error}") from error
    if len(data) > MAX_NOTEBOOK:
        raise SubmissionError("invalid-notebook", "блокнот слишком большой")
    try:
        return nbformat.reads(data.decode("utf-8"), as_version=4)
    except Exception as error:
        raise SubmissionError("invalid-notebook", f"файл не является блокнотом Jupyter: {error}") from error


def unpack(submission: Path, workdir: Path, lab: str | None = None, *, max_members: int = MAX_MEMBERS,
           max_unpacked: int = MAX_UNPACKED) -> Any:
    """Put the submission's files into ``workdir`` and return its notebook (nbformat v4).

    Raises :class:`SubmissionError` for a corrupt or empty submission, one of more than
    ``max_members`` files or ``max_unpacked`` bytes (by the headers, then as read), or one of
    another lab.
    """
    submission = Path(submission)
    if submission.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(submission) as zf:
                files = _extract(zf, workdir, max_members, max_unpacked)
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, ValueError) as error:
            raise SubmissionError("invalid-notebook", f"архив повреждён: {error}") from error
        path = workdir.joinpath(*_the_notebook(files).parts)
        nb = _read_notebook(path)
        path.unlink()
    else:
        nb = _read_notebook(submission)
    name = ((nb.get("metadata") or {}).get("otter") or {}).get("assignment_name")
    if lab is not None and name is not None and name != lab:
        raise SubmissionError("wrong-assignment", f"блокнот задания «{name}», а оценивается «{lab}»")
    return nb


# --------------------------------------------------------------------------- the notebook to run
def _ignored(cell: Any) -> bool:
    meta = cell.get("metadata") or {}
    otter = found if isinstance(found := meta.get("otter"), dict) else {}
    return "otter_ignore" in (meta.get("tags") or []) or bool(otter.get("ignore"))


def _seeded(cells: list[Any], seed: int | None, seed_variable: str | None) -> list[Any]:
    """Seed as otter's grading does: ``<seed_variable> = <seed>`` (else numpy's and random's
    seeds) before every code cell that is not a cell magic (``%%time``)."""
    if seed is None:
        return cells
    seed = int(seed)
    head: list[Any] = []
    if seed_variable is None:
        head = [nbformat.v4.new_code_cell("import numpy as _convlab_np\nimport random as _convlab_random")]
        line = f"_convlab_np.random.seed({seed})\n_convlab_random.seed({seed})"
    elif seed_variable.isidentifier():
        line = f"{seed_variable} = {seed}"
    else:
        raise ValueError(f"seed_variable {seed_variable!r} is not a Python name")
    for cell in cells:
        if cell.cell_type == "code" and not cell.source.startswith("%%"):
            cell.source = f"{line}\n{cell.source}"
    return [*head, *cells]


def execution_notebook(nb: Any, needed: dict[str, list[str]], *, seed: int | None = None,
                       seed_variable: str | None = None) -> Any:
    """The student's notebook between our first cell (install the exporter) and last cell
    (finish), seeded as otter seeds it when the autograder sets ``seed``."""
    first = nbformat.v4.new_code_cell(
        "import convlab.grading.exporter as _convlab_exporter\n"
        f"_convlab_exporter.install({json.dumps(needed, ensure_ascii=True)}, {EXPORT_DIR!r})\n"
        f"_convlab_exporter.cap_output({MAX_CELL_OUTPUT}, {MAX_OUTPUT}, {CUT_NOTE!r})\n")
    last = nbformat.v4.new_code_cell(
        "import convlab.grading.exporter as _convlab_exporter\n"
        "_convlab_exporter.finish(globals())\n")
    cells = [c for c in nb.cells if c.get("cell_type") in ("code", "markdown", "raw") and not _ignored(c)]
    cells = _seeded(cells, seed, seed_variable)
    out = nbformat.v4.new_notebook(cells=[first, *cells, last])
    out.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    for number, cell in enumerate(out.cells):
        cell["id"] = f"cell-{number}"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return out


def _package_path() -> str:
    """The folder from which the kernel imports this package (the grader's own copy)."""
    return str(Path(convlab.__file__).resolve().parents[1])


#: the files of this package that the notebook's kernel may read: the student kit's modules and
#: the kernel side of the grader (the exporter and what it imports). The rest (the hidden checks,
#: ``thresholds.json``, the grader, every ``__pycache__``) is hidden from the kernel in the sandbox.
KERNEL_MODULES = (*STUDENT_MODULES, "grading/__init__.py", "grading/exporter.py", "grading/export_format.py",
                  "grading/probes.py", "grading/model_policy.py", "grading/layers.py", "grading/runner.py")


def hidden_from_kernel(package: Path | None = None) -> list[str]:
    """Every path of the package folder (``package``, else this package's) except
    :data:`KERNEL_MODULES` and the folders holding them: what the kernel's sandbox hides."""
    root = Path(package if package is not None else Path(convlab.__file__).parent).resolve()
    keep = {root / name for name in KERNEL_MODULES}
    hidden: list[str] = []

    def walk(folder: Path) -> None:
        for entry in sorted(folder.iterdir()):
            if entry in keep:
                continue
            if entry.is_dir() and not entry.is_symlink() and any(k.is_relative_to(entry) for k in keep):
                walk(entry)
            else:
                hidden.append(str(entry))

    walk(root)
    return hidden


def kernel_env(settings: Settings, workdir: Path | None = None) -> dict[str, str]:
    """The whole environment of the sandboxed runner and its kernel. With ``workdir``, the
    configuration and cache folders of Jupyter, IPython, matplotlib and Keras are inside it (the
    only place the notebook may write; ``HOME`` and ``TMPDIR`` are set by the sandbox)."""
    env = {"PYTHONPATH": _package_path(), "MPLBACKEND": "Agg", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONDONTWRITEBYTECODE": "1", "PATH": str(Path(sys.executable).parent) + os.pathsep
           + os.environ.get("PATH", os.defpath)}
    if workdir is not None:
        home = Path(workdir)
        env.update({"XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / ".cache"),
                    "XDG_DATA_HOME": str(home / ".local" / "share"),
                    "JUPYTER_RUNTIME_DIR": str(home / ".local" / "share" / "jupyter" / "runtime"),
                    "IPYTHONDIR": str(home / ".ipython"),
                    "MPLCONFIGDIR": str(home / ".config" / "matplotlib"),
                    "KERAS_HOME": str(home / ".keras")})
    if settings.no_train:
        from convlab.artifacts import ENV_NO_TRAIN

        env[ENV_NO_TRAIN] = "1"
    root = settings.datasets or os.environ.get(datasets.ENV_VAR)
    if root:
        env[datasets.ENV_VAR] = str(Path(root).resolve())
    env.update(thread_env(settings.threads))
    return env


def thread_env(threads: int | None) -> dict[str, str]:
    """Environment that caps TensorFlow's and OpenMP's thread pools at ``threads`` (``{}`` for
    None). Two kernels that each spin a pool as wide as the machine slow each other down."""
    if not threads:
        return {}
    value = str(max(1, int(threads)))
    return {"TF_NUM_INTRAOP_THREADS": value, "TF_NUM_INTEROP_THREADS": value, "OMP_NUM_THREADS": value}


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _reachable_by_others(path: Path) -> bool:
    """Whether a user other than the owner can reach ``path`` (every parent searchable, the path
    itself readable)."""
    try:
        path = path.resolve()
        if not path.stat().st_mode & stat.S_IROTH:
            return False
        return all(parent.stat().st_mode & stat.S_IXOTH for parent in path.parents)
    except OSError:
        return False


@functools.cache
def sandbox_user_can_run() -> bool:
    """Whether the sandbox user can run this interpreter with its libraries and this package:
    always with the read confinement (the sandbox sees the Python environment at its real path,
    every parent folder traversable), else where every parent folder is searchable by others
    (not a virtualenv whose Python lives under ``/root``)."""
    if sandbox.probe_protections()["filesystem_read_confined"]:
        return True
    import sysconfig

    paths = [Path(sys.executable), Path(sysconfig.get_paths()["stdlib"]),
             Path(sysconfig.get_paths()["purelib"]), Path(_package_path()) / "convlab"]
    return all(_reachable_by_others(p) for p in paths)


#: kept names: the working directory's lifecycle lives in :mod:`convlab.grading.sandbox` (issue 15)
sandbox_base = sandbox.default_base
sweep_stale_workdirs = sandbox.sweep_stale_workdirs
LOCK_PREFIX = sandbox.LOCK_PREFIX
try_lock = sandbox.try_lock


def execute(submission: Path, lab: str, needed: dict[str, list[str]], settings: Settings,
            base: Path | None = None) -> Execution:
    """Phase 1 for one submission: unpack, run in the sandbox, export. Never raises for a bad
    submission (its status says what happened); the caller removes ``workdir`` when done."""
    workdir = sandbox.claim_workdir(base or sandbox.default_base())
    try:
        try:
            nb = unpack(submission, workdir, lab, max_members=settings.max_members,
                        max_unpacked=settings.max_unpacked)
        except SubmissionError as error:
            return Execution(status=error.status, message=str(error), workdir=workdir)
        runnable = execution_notebook(nb, needed, seed=settings.seed, seed_variable=settings.seed_variable)
        nbformat.write(runnable, workdir / NOTEBOOK)
        limits = sandbox.Limits(wall_seconds=settings.wall_seconds, memory_bytes=settings.memory_bytes,
                                allow_user_switch=settings.allow_user_switch,
                                confine_writes=settings.confine_writes,
                                confine_reads=settings.confine_reads, allow_root=settings.allow_root,
                                max_processes=settings.max_processes, disk_bytes=settings.disk_bytes,
                                shm_bytes=settings.shm_bytes)
        command = [sys.executable, "-P", str(RUNNER), NOTEBOOK, EXECUTED, str(settings.cell_timeout),
                   str(MAX_CELL_OUTPUT), str(MAX_OUTPUT), CUT_NOTE, str(INTERRUPT_GRACE)]
        outcome = sandbox.run(command, workdir=workdir.resolve(), limits=limits,  # datasets: READABLE_ENV
                              env=kernel_env(settings, workdir.resolve()), hidden=hidden_from_kernel())
    except BaseException:
        sandbox.release_workdir(workdir)
        raise
    status = outcome.status
    message = "" if status == "ok" else outcome.stderr_tail[-1500:]
    if outcome.stopped_by is not None:
        message = f"{STOPPED[outcome.stopped_by]}\n{message}"
    elif status == "crashed" and outcome.returncode == KERNEL_KILLED:
        status = "timeout"  # a cell ignored the interrupt at the cell time limit: its kernel was killed
        message = f"{STOPPED['interrupt']}\n{message}"
    return Execution(status=status, message=message, workdir=workdir, export=workdir / EXPORT_DIR,
                     executed=workdir / EXECUTED, seconds=outcome.seconds,
                     peak_rss_bytes=outcome.peak_rss_bytes, protections=outcome.protections,
                     stderr_tail=outcome.stderr_tail)


def remove_workdir(execution: Execution) -> None:
    """Delete the working directory of an execution."""
    if execution.workdir is not None:
        sandbox.release_workdir(execution.workdir)
