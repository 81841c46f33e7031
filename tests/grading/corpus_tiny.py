"""The tiny-lab corpus: honest, exploit and fault submissions for the two-phase grader, by name.

Each :class:`Scenario` writes one submission file and says how ``convlab grade`` must grade it
(status and total). The "tiny lab" is a synthetic autograder (:func:`write_autograder`) whose
notebooks run in real kernels without TensorFlow: ``tiny`` (q1 wants ``x == 42``, q2 wants
``y == 'конец'``, each also a hidden check that ``lst`` is a list of 3 integers; 4 points), and
``keras`` (q3: a Keras model; its hidden test measures the accuracy itself with
``model.predict`` in the trusted process; 2 points).

Some scenarios aim at things outside the sandbox, given by a :class:`Context`: ``outside``, a
folder standing for the grader's files (the notebooks try to write, append to, delete them and
to plant pickles' markers there; it must come out unchanged), ``targets``, more such folders
(e.g. the batch's output folder) and ``port``, a TCP port on the grader's 127.0.0.1 that the
network scenario tries to send to (nothing may arrive).

The expectations hold under any settings where the regular cells finish within the cell
timeout (``keras_*`` import TensorFlow in the kernel: allow a minute), the slow cells
(``slow_cell``, ``print_forever``: endless) exceed it, the wall-clock limit exceeds what the
regular cells take (``hang`` uses all of it), and the memory limit is 0.5 to 4 GiB. :data:`SETTINGS`
is such a profile. A benchmark imports this module (``sys.path.insert(0, "tests/grading")``)::

    expected = corpus_tiny.write_corpus(folder, corpus_tiny.Context(outside=grader_files))
    corpus_tiny.write_autograder(autograder_folder, "tiny")  # and "keras" for keras_* scenarios
"""

from __future__ import annotations

import os
import pickle
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

LAB = "tiny"
SETTINGS: dict[str, float] = {"wall_seconds": 240.0, "memory_bytes": 1200 << 20, "cell_timeout": 60.0}

TESTS = '''from otter.test_files import test_case

OK_FORMAT = False

name = "{name}"
points = 2

@test_case(points=1, hidden=False)
def test_public({var}):
    from convlab import checks
    checks.answer_equals({var}, {value!r}, "{var}")

@test_case(points=1, hidden=True)
def test_hidden({var}, lst):
    from convlab import checks
    checks.is_integer_list(lst, "lst")
    checks.answer_equals(len(lst), 3, "len(lst)")
'''

# The true rule behind the keras scenarios' data: label = x @ W > 0.
W = (1.0, -1.0, 0.5, 0.0)
MODEL_TEST = f'''from otter.test_files import test_case

OK_FORMAT = False

name = "q3"
points = 2

@test_case(points=1, hidden=False)
def test_structure(model):
    import keras
    assert isinstance(model, keras.Model), "model должна быть моделью Keras"
    assert tuple(model.output_shape) == (None, 1), f"выход модели {{model.output_shape}}, нужен (None, 1)"

@test_case(points=1, hidden=True)
def test_accuracy(model):
    import numpy as np
    x = np.random.default_rng(123).normal(size=(200, 4)).astype("float32")
    truth = x @ np.array({list(W)!r}) > 0
    predicted = np.asarray(model.predict(x, verbose=0)).reshape(-1) > 0.5
    accuracy = float((predicted == truth).mean())
    assert accuracy >= 0.8, f"точность модели {{accuracy:.2f}} меньше 0.8"
'''


def write_autograder(folder: Path, kind: str = "tiny") -> Path:
    """Write the ``tiny`` (q1, q2) or ``keras`` (q3) autograder's ``tests/`` into ``folder``."""
    tests = Path(folder) / "tests"
    tests.mkdir(parents=True, exist_ok=True)
    if kind == "tiny":
        (tests / "q1.py").write_text(TESTS.format(name="q1", var="x", value=42))
        (tests / "q2.py").write_text(TESTS.format(name="q2", var="y", value="конец"))
    elif kind == "keras":
        (tests / "q3.py").write_text(MODEL_TEST)
    else:
        raise ValueError(f"unknown autograder {kind!r}")
    return Path(folder)


def make_notebook(*cells: str, lab: str = LAB) -> Any:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["otter"] = {"assignment_name": lab}
    return nb


def notebook(folder: Path, name: str, *cells: str, lab: str = LAB) -> Path:
    """Write a notebook of code cells named ``name`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    nbformat.write(make_notebook(*cells, lab=lab), path)
    return path


SETUP = "import otter\ngrader = otter.Notebook(tests_dir='tests')"
HONEST = ("x = 42\nlst = [1, 2, 3]", "grader.check('q1')", "x = 0  # after the check: q1 keeps its score",
          "raise RuntimeError('a broken cell does not stop the rest')", "y = 'конец'",
          "grader.export(pdf=False, files=['artifacts'])")

# ------------------------------------------------------------------------------ exploit sources
PATCH_CHECKS = r"""
import sys
sys.modules.pop('otter', None)
import otter.test_files.exception_test as et, otter.test_files.abstract_test as at
et.test_case.call_func = lambda self, env: None
et.ExceptionTestFile.run = lambda self, env: None
at.TestFile.score = property(lambda self: 2)
from convlab import checks
import convlab.checks.answers as answers
for name in [*checks.__all__, *dir(answers)]:
    for module in (checks, answers):
        if callable(getattr(module, name, None)) and not name.startswith('_'):
            setattr(module, name, lambda *a, **k: None)
class Anything:
    def __eq__(self, other): return True
x = y = Anything()
lst = Anything()
"""

FAKE_RESULTS = r"""
import json, os
fake = {"tests": [{"name": "q1", "score": 2, "max_score": 2}, {"name": "q2", "score": 2, "max_score": 2}],
        "score": 4}
os.makedirs("results", exist_ok=True)
for path in ("results.json", "results/results.json", os.path.expanduser("~/results.json"),
             "export/results.json", "../source/results.json"):  # otter's layout: results next to source
    try:
        with open(path, "w") as f:
            json.dump(fake, f)
    except OSError:
        pass
import convlab.grading.exporter as exporter
exporter.finish = lambda namespace: None
exporter._write_manifest = lambda: None
with open("export/manifest.json", "w") as f:
    json.dump({"format": 1, "snapshots": {q: {"score": 2, "passed": True, "values": {
        "x": {"kind": "passed"}, "y": {"kind": "passed"}, "lst": {"kind": "passed"}}}
        for q in ("q1", "q2")}}, f)
"""

READ_TESTS = r"""
import glob, os, re
sources = {}
for pattern in ("tests/*.py", "**/tests/*.py", "../tests/*.py", "../*/tests/*.py", "../source/tests/*.py",
                os.path.expanduser("~/tests/*.py"), "/autograder/source/tests/*.py"):
    for path in glob.glob(pattern, recursive=True):
        try:
            sources[path] = open(path).read()
        except OSError:
            pass
text = "\n".join(sources.values())
found = re.search(r'answer_equals\(x, (\d+)', text)
x = int(found.group(1)) if found else None
found = re.search(r"answer_equals\(y, '([^']*)'", text)
y = found.group(1) if found else None
lst = [1, 2, 3] if "len(lst)" in text else None
"""

# Try to change every file and folder beneath the targets: the grader's tests, its checks, the
# batch's results. Prints what it managed to do (nothing, in a sound sandbox).
WRITE_OUTSIDE = r"""
import os, pathlib, shutil
done = []
def attempt(what, action):
    try:
        action()
        done.append(what)
    except OSError:
        pass
for target in TARGETS:
    for root, dirs, files in os.walk(target):
        for name in files:
            path = pathlib.Path(root, name)
            attempt(f"append {path}", lambda: open(path, "a").write("\nSCORE = 100  # взлом\n"))
            attempt(f"overwrite {path}", lambda: path.write_text("SCORE = 100\n"))
            attempt(f"rename {path}", lambda: os.rename(path, str(path) + ".moved"))
            attempt(f"delete {path}", path.unlink)
        attempt(f"create in {root}", lambda: pathlib.Path(root, "planted.py").write_text("SCORE = 100\n"))
        attempt(f"mkdir in {root}", lambda: pathlib.Path(root, "planted").mkdir())
        attempt(f"symlink in {root}", lambda: os.symlink("/etc/passwd", pathlib.Path(root, "planted.lnk")))
    attempt(f"rmtree {target}", lambda: shutil.rmtree(target))
print("changed outside:", done)
"""

CONNECT = r"""
import socket
try:
    with socket.create_connection(("127.0.0.1", PORT), timeout=3) as s:
        s.sendall("ответы: x = 42".encode())
    print("connected and sent")
except OSError as error:
    print("blocked:", type(error).__name__)
"""

KERAS_DATA = f"""
import numpy as np, keras
keras.utils.set_random_seed(0)
x_train = np.random.default_rng(0).normal(size=(20, 4)).astype("float32")
y_train = (x_train @ np.array({list(W)!r}) > 0).astype("float32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer=keras.optimizers.Adam(0.1), loss="binary_crossentropy", metrics=["accuracy"])
"""
KERAS_TRAIN = ("model.fit(x_train, y_train, epochs=100, verbose=0)\n"
               "print(model.evaluate(x_train, y_train, verbose=0))")
# Untrained (worse: pointing the wrong way), with the methods that report accuracy patched.
KERAS_PATCH = f"""
model.set_weights([-np.array({list(W)!r}, dtype="float32").reshape(4, 1), np.zeros(1, "float32")])
truth = lambda x: (np.asarray(x) @ np.array({list(W)!r}) > 0).astype("float32").reshape(-1, 1)
keras.Model.predict = lambda self, x, *args, **kwargs: truth(x)
keras.Model.evaluate = lambda self, *args, **kwargs: [0.0, 1.0]
keras.Model.__call__ = lambda self, x, *args, **kwargs: truth(x)
type(model).predict = keras.Model.predict
type(model).evaluate = keras.Model.evaluate
print("точность:", model.evaluate(x_train, y_train)[1], (model.predict(x_train) == truth(x_train)).mean())
"""


# ------------------------------------------------------------------------------------ context
@dataclass(frozen=True)
class Context:
    """What the scenarios aim at outside the sandbox."""

    outside: Path  #: a folder standing for the grader's files (it must stay unchanged)
    port: int | None = None  #: a TCP port on 127.0.0.1 where the grader's side listens
    targets: tuple[Path, ...] = ()  #: more folders the write attack aims at (e.g. the output folder)


@dataclass(frozen=True)
class Scenario:
    """One submission of the corpus and how the grader must grade it."""

    name: str  #: the student id ``convlab grade`` gives it (its file name's stem, cleaned)
    kind: str  #: "honest", "exploit" or "fault"
    about: str
    status: str
    total: float
    write: Callable[[Path, Context], Path] = field(repr=False)
    autograder: str = "tiny"  #: which :func:`write_autograder` grades it


class Payload:
    """Unpickling this creates ``marker`` (a stand-in for arbitrary code in a pickle)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (f"touch '{self.marker}'",)


def _zip(path: Path, files: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def _nb_bytes(*cells: str, lab: str = LAB) -> bytes:
    return nbformat.writes(make_notebook(*cells, lab=lab)).encode()


def raw_zip(path: Path, members: list[tuple[str, bytes, int, int]]) -> Path:
    """A zip written by hand, for archives :mod:`zipfile` will not write: each member is
    ``(name, raw deflate data, declared size, crc)``; the declared sizes need not be true."""
    local, central = bytearray(), bytearray()
    for name, data, size, crc in members:
        encoded = name.encode()
        offset = len(local)
        local += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), size,
                             len(encoded), 0) + encoded + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(data),
                               size, len(encoded), 0, 0, 0, 0, 0, offset) + encoded
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(local), 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(local + central + end))
    return path


def _deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def _zeros_deflate(mib: int) -> bytes:
    """A raw deflate stream of ``mib`` MiB of zeros, made without compressing them all: after a
    full flush the compressor starts afresh, so each MiB compresses to the same bytes."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    return block * mib + c.flush()


# --------------------------------------------------------------------------------- the writers
def _honest(folder: Path, ctx: Context) -> Path:
    return notebook(folder, "honest.ipynb", SETUP, *HONEST)


def _cells(name: str, *cells: str, lab: str = LAB) -> Callable[[Path, Context], Path]:
    return lambda folder, ctx: notebook(folder, f"{name}.ipynb", *cells, lab=lab)


def _write_outside(folder: Path, ctx: Context) -> Path:
    targets = [str(Path(ctx.outside).resolve()), *(str(Path(t).resolve()) for t in ctx.targets)]
    return notebook(folder, "write_outside.ipynb", SETUP, f"TARGETS = {targets!r}\n" + WRITE_OUTSIDE,
                    *HONEST)


def _network(folder: Path, ctx: Context) -> Path:
    if ctx.port is None:
        raise ValueError("the network scenario needs Context.port")
    return notebook(folder, "network.ipynb", SETUP, f"PORT = {int(ctx.port)}\n" + CONNECT, *HONEST)


def _pickles(folder: Path, ctx: Context) -> Path:
    outside = Path(ctx.outside).resolve()
    files = {"tiny.ipynb": _nb_bytes(SETUP, *HONEST)}
    for name in (".OTTER_LOG", "results.pkl", "env.dill", "artifacts/model.pickle", "sub/.OTTER_LOG"):
        files[name] = pickle.dumps(Payload(outside / ("PWNED_" + name.replace("/", "_"))))
    return _zip(folder / "otter_log_pickle.zip", files)


def _renamed_zip(folder: Path, ctx: Context) -> Path:
    return _zip(folder / "Сдача final.zip", {"Копия lab5 (2).ipynb": _nb_bytes(SETUP, *HONEST),
                                               "artifacts/notes.txt": b"no models"})


def _zip_bomb(folder: Path, ctx: Context) -> Path:
    """Two members of 2.5 GiB of zeros each (5 GiB unpacked, 5 MB packed) and the notebook."""
    notebook_data = _nb_bytes(SETUP, *HONEST)
    zeros = _zeros_deflate(2560)
    members = [("tiny.ipynb", _deflate(notebook_data), len(notebook_data), zlib.crc32(notebook_data))]
    members += [(f"artifacts/zeros{i}.bin", zeros, 2560 << 20, 0) for i in range(2)]  # CRC never reached
    return raw_zip(folder / "zip_bomb.zip", members)


def _zip_lying_sizes(folder: Path, ctx: Context) -> Path:
    """The notebook's header declares 10 bytes: reading stops there and the CRC fails."""
    data = _nb_bytes(SETUP, *HONEST)
    return raw_zip(folder / "zip_lying_sizes.zip", [("tiny.ipynb", _deflate(data), 10, zlib.crc32(data))])


def _zip_too_many(folder: Path, ctx: Context) -> Path:
    files = {"tiny.ipynb": _nb_bytes(SETUP, *HONEST)}
    files.update({f"artifacts/f{i}.txt": b"" for i in range(2001)})
    return _zip(folder / "zip_too_many.zip", files)


def _corrupt(folder: Path, ctx: Context) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corrupt.ipynb").write_text("{ not a notebook")
    return folder / "corrupt.ipynb"


def _empty(folder: Path, ctx: Context) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.zip").write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    return folder / "empty.zip"


SCENARIOS: dict[str, Scenario] = {s.name: s for s in [
    Scenario(name="honest", kind="honest", about="answers right, checks, a broken cell in between",
             status="ok", total=4.0, write=_honest),
    # exploits: each gains nothing
    Scenario(name="patch", kind="exploit", about="monkeypatches the checks and otter's runner",
             status="ok", total=0.0, write=_cells("patch", SETUP, PATCH_CHECKS, "grader.check('q1')")),
    Scenario(name="fake_results", kind="exploit", about="forges results.json and the export manifest",
             status="ok", total=0.0, write=_cells("fake_results", SETUP, FAKE_RESULTS)),
    Scenario(name="read_tests", kind="exploit", about="hunts for the hidden tests to copy the answers",
             status="ok", total=0.0, write=_cells("read_tests", SETUP, READ_TESTS, "grader.check('q1')",
                                                  "import os\nassert not os.path.exists('tests')")),
    Scenario(name="otter_log_pickle", kind="exploit",
             about="zip with pickles (.OTTER_LOG, results.pkl, env.dill) that would touch a marker "
                   "outside when unpickled", status="ok", total=4.0, write=_pickles),
    Scenario(name="write_outside", kind="exploit",
             about="writes, appends, renames, deletes the grader's files outside its working directory",
             status="ok", total=4.0, write=_write_outside),
    Scenario(name="network", kind="exploit", about="connects to the grader's 127.0.0.1 and sends",
             status="ok", total=4.0, write=_network),
    Scenario(name="keras_patched", kind="exploit", autograder="keras",
             about="untrained model, Model.predict/evaluate/__call__ patched to report 100%",
             status="ok", total=1.0, write=_cells("keras_patched", SETUP, KERAS_DATA, KERAS_PATCH,
                                                   "grader.check('q3')")),
    Scenario(name="keras_honest", kind="honest", autograder="keras", about="a tiny model trained honestly",
             status="ok", total=2.0, write=_cells("keras_honest", SETUP, KERAS_DATA, KERAS_TRAIN,
                                                  "grader.check('q3')")),
    # faults: a clear status, and the batch carries on
    Scenario(name="syntax_error", kind="fault", about="two cells with syntax errors among good ones",
             status="ok", total=4.0, write=_cells("syntax_error", SETUP, "x = 42\nlst = [1, 2, 3]",
                                                  "def broken(:\n    pass", "grader.check('q1')",
                                                  "y = 'конец' +", "y = 'конец'")),
    Scenario(name="lab_(1)", kind="fault", about="the notebook saved as 'lab (1).ipynb'", status="ok",
             total=4.0, write=lambda folder, ctx: notebook(folder, "lab (1).ipynb", SETUP, *HONEST)),
    Scenario(name="Сдача_final", kind="fault", status="ok", total=4.0, write=_renamed_zip,
             about="a zip under another name holding 'Копия lab5 (2).ipynb'"),
    Scenario(name="huge_output", kind="fault", about="a cell printing 200 MB", status="ok", total=4.0,
             write=_cells("huge_output", SETUP, *HONEST[:2],
                          "for _ in range(200):\n    print('x' * 1_000_000)", *HONEST[2:])),
    Scenario(name="print_forever", kind="fault", about="a cell printing until the cell timeout",
             status="ok", total=4.0, write=_cells("print_forever", SETUP, *HONEST[:2],
                                                  "while True:\n    print('y' * 10_000)", *HONEST[2:])),
    Scenario(name="zip_bomb", kind="fault", about="zip unpacking to 5 GiB of zeros (5 MB packed)",
             status="invalid-notebook", total=0.0, write=_zip_bomb),
    Scenario(name="zip_lying_sizes", kind="fault", about="zip whose header understates a member's size",
             status="invalid-notebook", total=0.0, write=_zip_lying_sizes),
    Scenario(name="zip_too_many", kind="fault", about="zip with 2002 members", status="invalid-notebook",
             total=0.0, write=_zip_too_many),
    Scenario(name="hang", kind="fault", about="an endless loop that ignores interrupts (wall limit)",
             status="timeout", total=2.0,
             write=_cells("hang", SETUP, *HONEST[:2], "import signal\nsignal.signal(signal.SIGINT, "
                          "signal.SIG_IGN)\nwhile True:\n    pass")),
    Scenario(name="slow_cell", kind="fault", about="a cell sleeping past the cell timeout", status="ok",
             total=4.0, write=_cells("slow_cell", SETUP, "import time\ntime.sleep(600)", *HONEST)),
    Scenario(name="dies", kind="fault", about="the kernel's process exits", status="crashed", total=0.0,
             write=_cells("dies", SETUP, "import os\nos._exit(3)", *HONEST)),
    Scenario(name="hog", kind="fault", about="allocates memory without end", status="memory", total=0.0,
             write=_cells("hog", SETUP, "hog = []\nwhile True:\n    hog.append(b'x' * (64 << 20))")),
    Scenario(name="other_lab", kind="fault", about="the notebook of another lab", status="wrong-assignment",
             total=0.0, write=_cells("other_lab", SETUP, *HONEST, lab="lab6_nin")),
    Scenario(name="corrupt", kind="fault", about="not JSON", status="invalid-notebook", total=0.0,
             write=_corrupt),
    Scenario(name="empty", kind="fault", about="an empty zip", status="invalid-notebook", total=0.0,
             write=_empty),
]}


def write_corpus(folder: Path, ctx: Context, names: list[str] | None = None) -> dict[str, Scenario]:
    """Write the scenarios (all, or ``names``) into ``folder``; return student id -> scenario.

    The network scenario is left out when ``ctx.port`` is None.
    """
    from convlab.grading import batch

    folder = Path(folder)
    chosen = [SCENARIOS[n] for n in names] if names is not None else [
        s for s in SCENARIOS.values() if s.name != "network" or ctx.port is not None]
    for scenario in chosen:
        path = scenario.write(folder, ctx)
        if batch.student_id(path.name) != scenario.name:
            raise AssertionError(f"{path.name} is graded as {batch.student_id(path.name)!r}, "
                                 f"not {scenario.name!r}")
    return {s.name: s for s in chosen}


def make_autograder(folder: Path) -> Path:
    """A tiny autograder in ``folder``: q1 wants x == 42, q2 wants y == 'конец'."""
    (folder / "tests").mkdir(parents=True)
    (folder / "tests" / "q1.py").write_text(TESTS.format(name="q1", var="x", value=42))
    (folder / "tests" / "q2.py").write_text(TESTS.format(name="q2", var="y", value="конец"))
    return folder
