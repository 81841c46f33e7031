"""Export and score, in-process: each value kind round-trips as plain data, loading is safe, and
scores follow otter's rules. The kernel side (:mod:`exporter`) and the trusted side (:mod:`score`)
meet only through files, as in a real grading; nothing here starts a kernel or a sandbox.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.figure import Figure

from convlab import checks
from convlab.grading import execute as ex
from convlab.grading import exporter, score


@pytest.fixture(autouse=True)
def _keep_otter(monkeypatch: pytest.MonkeyPatch) -> None:
    """:func:`exporter.install` replaces the ``otter`` module, as in a kernel: undo it after."""
    import otter

    monkeypatch.setitem(sys.modules, "otter", otter)


def export_values(tmp_path: Path, values: dict[str, Any], question: str = "q") -> Path:
    """Snapshot ``values`` for ``question`` as the kernel would; return the export folder."""
    folder = tmp_path / "export"
    exporter.install({question: list(values)}, str(folder))
    exporter.snapshot(question, values)
    return folder


def load_back(folder: Path, names: list[str], question: str = "q") -> tuple[dict, dict]:
    export = score.load_snapshots(folder)
    assert export is not None
    try:
        return score._environment(export, question, names, "нет")
    finally:
        export.close()


class _Payload:
    """Unpickling this creates a marker file (a stand-in for arbitrary code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (f"touch '{self.marker}'",)


# ------------------------------------------------------------------------------ round trips
PLAIN = {
    "i": 7, "big": 2**70, "f": 0.25, "nan": math.nan, "inf": -math.inf, "s": "строка", "none": None,
    "b": True, "lst": [1, "a", [2.5, None]], "tup": (1, (2, 3)), "st": {"gamma", "beta"},
    "fs": frozenset({1, 2}), "d": {"a": 1, (1, 2): [3], 5: {"x"}},
    "np_i": np.int64(5), "np_f": np.float32(0.5), "np_b": np.bool_(True),
    "arr": np.arange(12, dtype=np.float32).reshape(3, 4), "u8": np.arange(6, dtype=np.uint8),
    "empty": np.zeros((0, 3)), "nested": [np.ones(2, dtype=np.int16), (np.float64(1.5),)],
}


def test_plain_values_round_trip(tmp_path: Path) -> None:
    """Do numbers, strings, containers (tuples, sets, dict keys) and arrays come back equal, with
    their exact types and dtypes?"""
    env, problems = load_back(export_values(tmp_path, PLAIN), list(PLAIN))
    assert problems == {}
    for name, value in PLAIN.items():
        got = env[name]
        if name == "nan":
            assert math.isnan(got)
        elif isinstance(value, np.ndarray):
            assert got.dtype == value.dtype and got.shape == value.shape and np.array_equal(got, value)
        elif name == "nested":
            assert got[0].dtype == np.int16 and np.array_equal(got[0], value[0])
            assert type(got[1]) is tuple and type(got[1][0]) is np.float64 and got[1][0] == 1.5
        else:
            assert got == value and type(got) is type(value), name
    assert env["d"][(1, 2)] == [3] and type(env["np_f"]) is np.float32


def test_otter_stand_in_snapshots_on_check(tmp_path: Path) -> None:
    """In the kernel, is ``otter`` replaced by a stand-in whose ``check`` snapshots the question's
    names (the last check wins), whose ``export`` and other calls do nothing, and which does not
    pretend to have module attributes such as ``__file__`` (IPython's tracebacks probe them)?"""
    folder = tmp_path / "export"
    exporter.install({"q1": ["x"], "q2": ["x"]}, str(folder))
    import otter

    assert otter.__doc__.startswith("convlab grading stand-in")
    with pytest.raises(AttributeError):
        otter.__file__  # noqa: B018
    grader = otter.Notebook(tests_dir="tests")
    assert grader.export(pdf=False, files=["artifacts"]) is None and otter.anything() is None
    grader.check("q1", {"x": 1})
    grader.check("q1", {"x": 2})
    exporter.finish({"x": 3})
    env, _ = load_back(folder, ["x"], "q1")
    assert env == {"x": 2}
    env, _ = load_back(folder, ["x"], "q2")
    assert env == {"x": 3}


def test_shared_array_is_written_once(tmp_path: Path) -> None:
    """Is one array held by two names (or two questions) stored in one file?"""
    arr = np.arange(1000.0)
    folder = tmp_path / "export"
    exporter.install({"q1": ["a", "b"], "q2": ["a"]}, str(folder))
    exporter.snapshot("q1", {"a": arr, "b": arr})
    exporter.snapshot("q2", {"a": arr})
    assert len(list(folder.glob("*.npy"))) == 1


def test_unexportable_and_missing_values_fail_their_tests(tmp_path: Path) -> None:
    """Is a function, a module or an unknown object reported as not exportable with its type name,
    and a missing name as not found, failing each test case that reads it in Russian?"""
    values = {"f": lambda: 1, "m": os, "obj": object(), "lst": [1, print]}
    folder = tmp_path / "export"
    exporter.install({"q": ["f", "m", "obj", "lst", "absent"]}, str(folder))
    exporter.snapshot("q", values)
    env, problems = load_back(folder, ["f", "m", "obj", "lst", "absent"])
    assert env == {}
    assert "function" in problems["f"] and "module" in problems["m"] and "object" in problems["obj"]
    assert "builtin_function_or_method" in problems["lst"]
    assert problems["absent"] == "в блокноте нет такой переменной"
    test_file = write_tests(tmp_path, "q", 1, ["@test_case(points=1)\ndef test_a(absent):\n    pass"])
    export = score.load_snapshots(folder)
    result = score.score(test_file, export)
    export.close()
    assert result["scores"] == {"q": 0.0}
    assert "переменная absent не найдена / не может быть экспортирована" in result["messages"][0]


# ------------------------------------------------------------------------------------ models
def tiny_model(fit: bool, *, lambda_layer: bool = False) -> Any:
    import keras

    layers = [keras.Input((4, 4, 1)), keras.layers.Conv2D(3, 3, padding="same", activation="relu")]
    if lambda_layer:
        layers.append(keras.layers.Lambda(lambda t: t * 2))
    layers += [keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")]
    model = keras.Sequential(layers)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if fit:
        # random images: on all-zero ones (balanced labels) no weight would move, and that is no training
        images = np.random.default_rng(0).normal(size=(4, 4, 4, 1)).astype(np.float32)
        model.fit(images, np.array([0, 1, 0, 1]), epochs=2, verbose=0)
    return model


def test_model_round_trip_keeps_training_state(tmp_path: Path) -> None:
    """Does a trained model come back with its weights, layers, compilation and history (so
    ``is_trained`` passes), and an untrained one still fail ``is_trained``?"""
    trained, fresh = tiny_model(True), tiny_model(False)
    env, problems = load_back(export_values(tmp_path, {"m": trained, "u": fresh}), ["m", "u"])
    assert problems == {}
    model = env["m"]
    for a, b in zip(model.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert model.history.epoch == [0, 1] and len(model.history.history["loss"]) == 2
    checks.is_trained(model, "m")
    checks.compiled_with(model, optimizer="SGD", loss="sparse_categorical_crossentropy",
                         metric="accuracy", name="m")
    assert checks.describe_layers(model) == checks.describe_layers(trained)
    with pytest.raises(checks.CheckFailed, match="модель не обучалась"):
        checks.is_trained(env["u"], "u")


def test_lambda_model_is_refused(tmp_path: Path) -> None:
    """Is a model with a Lambda layer (Python bytecode) not exported by the kernel (a Russian
    reason instead), and, written into the export by hand, refused by the scorer's allow-list
    (and by keras' safe_mode on its own as well)?"""
    import keras

    model = tiny_model(False, lambda_layer=True)
    folder = export_values(tmp_path, {"m": model}, "q")
    assert not list(folder.glob("*.keras"))
    env, problems = load_back(folder, ["m"])
    assert "m" not in env and "не принимается на проверку" in problems["m"], problems
    saved = tmp_path / "m.keras"
    model.save(saved)
    with pytest.raises(ValueError, match="safe_mode"):
        keras.saving.load_model(saved, safe_mode=True)
    name = "m_" + "1" * 32 + ".keras"
    (folder / name).write_bytes(saved.read_bytes())
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["snapshots"]["q"]["values"]["m"] = {"kind": "value", "value": {"$t": "model", "file": name}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    env, problems = load_back(folder, ["m"])
    assert "m" not in env and "пользовательский код" in problems["m"], problems


def test_model_naming_foreign_module_is_refused(tmp_path: Path) -> None:
    """Is a .keras archive whose config names a non-Keras module refused before keras reads it?"""
    folder = export_values(tmp_path, {"m": tiny_model(False)})
    saved = next(folder.glob("*.keras"))
    with zipfile.ZipFile(saved) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(files["config.json"])
    config["config"]["layers"][1]["module"] = "os"
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(saved, "w") as zf:
        for n, data in files.items():
            zf.writestr(n, data)
    env, problems = load_back(folder, ["m"])
    assert "m" not in env and "объект os.Conv2D не из допустимых" in problems["m"], problems


# ----------------------------------------------------------------------------------- figures
def grid_figure(rows: int, cols: int, images: list[np.ndarray]) -> Figure:
    fig = Figure()
    axes = fig.subplots(rows, cols)
    for ax, image in zip(np.ravel(axes), images, strict=False):
        ax.imshow(image)
    return fig


def test_figure_round_trip_for_grid_checks(tmp_path: Path) -> None:
    """Does a rebuilt figure keep the grid geometry and each panel's image, so that
    ``image_grid`` and ``feature_map_grid`` judge it as they judge the original?"""
    model = tiny_model(False)
    rng = np.random.default_rng(0)
    # fixed positive kernels: the three channels differ and none is cut to zero by the ReLU
    kernel, bias = model.layers[0].get_weights()
    model.layers[0].set_weights([rng.random(kernel.shape).astype(np.float32), np.zeros_like(bias)])
    image = rng.random((1, 4, 4, 1)).astype(np.float32)
    maps = np.asarray(model.layers[0](image))[0]
    assert not np.allclose(maps[..., 0], maps[..., 1]) and not np.allclose(maps[..., 0], maps[..., 2])
    fig = grid_figure(1, 3, [maps[..., k] for k in range(3)])
    wrong = grid_figure(1, 3, [maps[..., 0]] * 3)
    env, problems = load_back(export_values(tmp_path, {"fig": fig, "wrong": wrong}), ["fig", "wrong"])
    assert problems == {}
    rebuilt = env["fig"]
    assert isinstance(rebuilt, Figure) and rebuilt is not fig
    checks.image_grid(rebuilt, rows=1, cols=3)
    with pytest.raises(checks.CheckFailed, match="сетка панелей"):
        checks.image_grid(rebuilt, rows=3, cols=1)
    checks.feature_map_grid(rebuilt, model, [image])
    with pytest.raises(checks.CheckFailed):
        checks.feature_map_grid(env["wrong"], model, [image])


def test_figure_round_trip_for_training_images(tmp_path: Path, datasets_root: Path) -> None:
    """Does ``shows_training_images`` pass on a rebuilt figure of MNIST training images (uint8
    and [0, 1] floats) and fail on one of noise?"""
    from convlab import datasets

    (x_train, _), _ = datasets.load("mnist")
    good = grid_figure(1, 4, [x_train[0], x_train[5] / 255, x_train[9], x_train[30]])
    noise = grid_figure(1, 4, [np.random.default_rng(1).random((28, 28))] * 4)
    env, _ = load_back(export_values(tmp_path, {"good": good, "noise": noise}), ["good", "noise"])
    checks.shows_training_images(env["good"], "mnist", count=4)
    with pytest.raises(checks.CheckFailed, match="которого нет в выборке"):
        checks.shows_training_images(env["noise"], "mnist", count=4)


# ------------------------------------------------------------------------------ hostile files
def test_pickled_array_is_never_loaded(tmp_path: Path) -> None:
    """Is an .npy holding a pickle (object array) refused without unpickling it?"""
    marker = tmp_path / "PWNED"
    folder = export_values(tmp_path, {"a": np.zeros(3)})
    target = next(folder.glob("*.npy"))
    np.save(target, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    env, problems = load_back(folder, ["a"])
    assert "a" not in env and "массив объектов Python не принимается" in problems["a"], problems
    assert not marker.exists()


def test_links_and_odd_file_names_are_refused(tmp_path: Path) -> None:
    """Are an export file that is a symbolic link (to a grader file) and a manifest naming a path
    outside the folder both refused?"""
    secret = tmp_path / "secret.npy"
    np.save(secret, np.arange(3))
    folder = export_values(tmp_path, {"a": np.zeros(3)})
    target = next(folder.glob("*.npy"))
    target.unlink()
    target.symlink_to(secret)
    env, problems = load_back(folder, ["a"])
    assert "a" not in env and "не найден" in problems["a"]
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["snapshots"]["q"]["values"]["a"]["value"]["file"] = "../secret.npy"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    env, problems = load_back(folder, ["a"])
    assert "a" not in env and "недопустимое имя" in problems["a"]


def test_export_folder_that_is_a_link_is_not_read(tmp_path: Path) -> None:
    """Is an export folder replaced by a link (to a folder of the grader) not read at all?"""
    real = export_values(tmp_path, {"a": 1})
    link = tmp_path / "linked"
    link.symlink_to(real, target_is_directory=True)
    assert score.load_snapshots(link) is None
    assert score.load_snapshots(tmp_path / "nowhere") is None


# ------------------------------------------------------------------------------------ scoring
def write_tests(tmp_path: Path, name: str, points: Any, cases: list[str], extra: str = "") -> list:
    folder = tmp_path / "tests"
    folder.mkdir(exist_ok=True)
    body = "\n\n".join(cases)
    (folder / f"{name}.py").write_text(
        f"from otter.test_files import test_case\n\nOK_FORMAT = False\n\nname = {name!r}\n"
        f"points = {points!r}\n{extra}\n{body}\n")
    return [t for t in score.load_tests(folder) if t.name == name]


def test_score_follows_otter_points_and_all_or_nothing(tmp_path: Path) -> None:
    """Are case points resolved as otter does (a total of 2, one case at 0.5, the two others
    0.75 each), partial credit summed, and all_or_nothing honoured?"""
    cases = ["@test_case(points=0.5, hidden=False)\ndef test_a(x):\n    assert x == 1",
             "@test_case(hidden=True)\ndef test_b(x):\n    assert x > 0",
             "@test_case(hidden=True)\ndef test_c(x):\n    from convlab import checks\n"
             "    checks.answer_equals(x, 2, 'x')"]
    partial = write_tests(tmp_path, "qp", 2, cases)
    strict = write_tests(tmp_path, "qs", 2, cases, extra="all_or_nothing = True")
    folder = tmp_path / "export"
    exporter.install({"qp": ["x"], "qs": ["x"]}, str(folder))
    exporter.snapshot("qp", {"x": 1})
    exporter.snapshot("qs", {"x": 1})
    export = score.load_snapshots(folder)
    result = score.score([*partial, *strict], export)
    export.close()
    assert [c["points"] for c in result["questions"]["qp"]["cases"]] == [0.5, 0.75, 0.75]
    assert result["scores"] == {"qp": 1.25, "qs": 0.0}
    assert result["possible"] == {"qp": 2.0, "qs": 2.0} and result["total"] == 1.25
    failed = result["questions"]["qp"]["cases"][2]
    assert not failed["passed"] and failed["hidden"]
    assert failed["message"] == "x: ожидается: 2; получено: 1."
    report = score.gradescope(result)
    assert report["score"] == 1.25
    assert [(t["name"], t.get("score"), t.get("max_score"), t["visibility"]) for t in report["tests"]] == [
        ("Public Tests", None, None, "visible"), ("qp", 1.25, 2.0, "hidden"), ("qs", 0.0, 2.0, "hidden")]


def test_question_without_snapshot_fails_with_status_reason(tmp_path: Path) -> None:
    """When the notebook stopped before a question was snapshotted, does each case fail with the
    reason (here a timeout) instead of being passed None?"""
    tests = write_tests(tmp_path, "q", 1, ["@test_case()\ndef test_a(x):\n    pass"])
    result = score.score(tests, None, status="timeout")
    assert result["scores"] == {"q": 0.0} and result["status"] == "timeout"
    assert "прервано по времени" in result["messages"][0]


# ------------------------------------------------------------------------------- unpacking
def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def notebook_bytes(assignment: str | None = "lab") -> bytes:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    if assignment:
        nb.metadata["otter"] = {"assignment_name": assignment}
    return nbformat.writes(nb).encode()


def test_unpack_zip_keeps_notebook_and_artifacts_but_no_pickles(tmp_path: Path) -> None:
    """Does a grader.export() zip (any notebook name) give its notebook and artifacts/, never its
    .OTTER_LOG, pickles or links, and is nothing unpickled?"""
    marker = tmp_path / "PWNED"
    payload = pickle.dumps(_Payload(marker))
    sub = make_zip(tmp_path / "s.zip", {"my lab (1).ipynb": notebook_bytes(), "artifacts/m.keras": b"k",
                                        ".OTTER_LOG": payload, "artifacts/env.pkl": payload,
                                        "notes.dill": payload})
    link = zipfile.ZipInfo("artifacts/link")
    link.external_attr = (0o120777 << 16)  # a symbolic link to a grader file
    with zipfile.ZipFile(sub, "a") as zf:
        zf.writestr(link, "/etc/passwd")
    work = tmp_path / "work"
    work.mkdir()
    nb = ex.unpack(sub, work, "lab")
    assert nb.cells[0].source == "x = 1"
    assert sorted(str(p.relative_to(work)) for p in work.rglob("*")) == ["artifacts", "artifacts/m.keras"]
    assert not marker.exists()


@pytest.mark.parametrize(("members", "status", "fragment"), [
    ({}, "invalid-notebook", "нет блокнота"),
    ({"a.ipynb": b"{not json"}, "invalid-notebook", "не является блокнотом"),
    ({"a.ipynb": b'{"hello": 1}'}, "invalid-notebook", "не является блокнотом"),
    ({"a.ipynb": notebook_bytes(), "b.ipynb": notebook_bytes()}, "invalid-notebook", "несколько"),
    ({"../evil.ipynb": notebook_bytes()}, "invalid-notebook", "недопустимый путь"),
    ({"/abs.ipynb": notebook_bytes()}, "invalid-notebook", "недопустимый путь"),
    ({"a.ipynb": notebook_bytes("lab6_nin")}, "wrong-assignment", "lab6_nin"),
])
def test_unpack_rejects_bad_submissions(tmp_path: Path, members: dict, status: str, fragment: str) -> None:
    """Is each broken zip (empty, corrupt JSON, not a notebook, two notebooks, a path escaping the
    folder) invalid, and a notebook of another lab a wrong assignment?"""
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(ex.SubmissionError, match=fragment) as caught:
        ex.unpack(make_zip(tmp_path / "s.zip", members), work, "lab")
    assert caught.value.status == status
    assert not (tmp_path / "evil.ipynb").exists()


def test_unpack_bare_and_corrupt_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Is a bare notebook read under any name, a non-zip .zip invalid, and a zip that unpacks past
    the size cap refused?"""
    work = tmp_path / "work"
    work.mkdir()
    bare = tmp_path / "Иванов.ipynb"
    bare.write_bytes(notebook_bytes(None))
    assert ex.unpack(bare, work, "lab").cells[0].source == "x = 1"
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK not really")
    with pytest.raises(ex.SubmissionError, match="архив повреждён"):
        ex.unpack(bad, work, "lab")
    big = make_zip(tmp_path / "big.zip", {"a.ipynb": notebook_bytes(), "artifacts/x": b"0" * 5000})
    with pytest.raises(ex.SubmissionError, match="слишком большой"):
        ex.unpack(big, tmp_path / "work", "lab", max_unpacked=1000)
    assert not (tmp_path / "work" / "artifacts").exists()  # refused from the headers, nothing written
    with pytest.raises(ex.SubmissionError, match="2 файлов"):
        ex.unpack(big, tmp_path / "work", "lab", max_members=1)


def test_execution_notebook_wraps_the_student_cells() -> None:
    """Does the notebook to run start with the exporter's install, end with its finish, drop the
    cells otter ignores and keep the student's check cells in place?"""
    import nbformat

    cells = [nbformat.v4.new_code_cell("grader.check('q1')"),
             nbformat.v4.new_code_cell("slow()", metadata={"tags": ["otter_ignore"]}),
             nbformat.v4.new_markdown_cell("text")]
    nb = ex.execution_notebook(nbformat.v4.new_notebook(cells=cells), {"q1": ["x"]})
    sources = [c.source for c in nb.cells]
    assert "install({\"q1\": [\"x\"]}, 'export')" in sources[0]
    assert sources[1:3] == ["grader.check('q1')", "text"]
    assert "finish(globals())" in sources[-1] and len(sources) == 4


def test_execution_notebook_seeds_like_otter(tmp_path: Path) -> None:
    """With the autograder's seed, does every code cell but cell magics start with
    ``SEED = 42`` (otter's seed_variable), or with numpy/random seeding without a variable?"""
    import nbformat

    from convlab.grading import grade

    cells = [nbformat.v4.new_code_cell("SEED = 7\nprint(SEED)"), nbformat.v4.new_code_cell("%%time\nfit()")]
    nb = ex.execution_notebook(nbformat.v4.new_notebook(cells=cells), {}, seed=42, seed_variable="SEED")
    assert [c.source for c in nb.cells[1:3]] == ["SEED = 42\nSEED = 7\nprint(SEED)", "%%time\nfit()"]
    cells = [nbformat.v4.new_code_cell("x = 1")]
    nb = ex.execution_notebook(nbformat.v4.new_notebook(cells=cells), {}, seed=3)
    assert nb.cells[2].source.startswith("_convlab_np.random.seed(3)\n_convlab_random.seed(3)\n")
    lab = Path(__file__).resolve().parents[2] / "autograder" / "lab5_cnn"
    for source in (lab, lab / "tests", lab / "lab5_cnn-autograder.zip"):
        settings = grade.with_otter_seed(ex.Settings(), source)
        assert (settings.seed, settings.seed_variable) == (42, "SEED")
    assert grade.with_otter_seed(ex.Settings(), tmp_path).seed is None


def test_feedback_can_hide_hidden_details() -> None:
    """Does the feedback show each failed check's message, and only the fact of a failed hidden
    check when hiding is asked (HTML escaped)?"""
    from convlab.grading import feedback

    result = {"student_id": "s<1>", "status": "ok", "total": 1, "max_total": 3, "questions": {"q1": {
        "score": 1, "possible": 3, "cases": [
            {"name": "q1 - 1", "points": 1, "hidden": False, "passed": False, "message": "открытое <b>"},
            {"name": "q1 - 2", "points": 2, "hidden": True, "passed": False, "message": "тайна"}]}}}
    shown = feedback.feedback_markdown(result)
    assert "открытое &lt;b&gt;" in shown and "<b>" not in shown and "тайна" in shown
    assert "| q1 | 1 | 3 |" in shown
    hidden = feedback.feedback_markdown(result, hide_hidden=True)
    assert "тайна" not in hidden and "скрытая проверка не пройдена" in hidden
    page = feedback.feedback_html(result, hide_hidden=True)
    assert "&lt;b&gt;" in page and "<b>" not in page and "тайна" not in page
    assert textwrap.dedent(page).startswith("<!DOCTYPE html>")


def test_lab5_tests_load_from_folder_and_zip() -> None:
    """Are the Lab 5 tests read alike from the autograder folder and its zip, with otter's points
    (37 in all) and the parameter names that phase 1 must export?"""
    root = Path(__file__).resolve().parents[2] / "autograder" / "lab5_cnn"
    from_dir = score.load_tests(root)
    from_zip = score.load_tests(root / "lab5_cnn-autograder.zip")
    summary = [(t.name, t.possible, [(c.points, c.hidden) for c in t.test_cases]) for t in from_dir]
    assert summary == [(t.name, t.possible, [(c.points, c.hidden) for c in t.test_cases]) for t in from_zip]
    assert sum(t.possible for t in from_dir) == 37
    needed = score.needed_names(from_dir)
    assert needed["q3_feature_maps"] == ["fig", "model2"]  # any train or test image: the check finds it
    assert needed["q1_data"] == ["x_train", "x_test", "y_train", "y_test"]


def test_gradescope_visibility_follows_show_hidden(tmp_path: Path) -> None:
    """Is a question's Gradescope entry hidden unless the autograder's otter_config.json says
    show_hidden, and then shown after publication?"""
    from convlab.grading import grade

    (tmp_path / "tests").mkdir()
    assert grade.show_hidden(tmp_path) is False
    (tmp_path / "otter_config.json").write_text('{"show_hidden": true}')
    assert grade.show_hidden(tmp_path) is True and grade.show_hidden(tmp_path / "tests") is True
    result = {"total": 1, "questions": {"q": {"score": 1, "possible": 1, "output": "ok", "public_output": "",
                                              "cases": []}}}
    assert score.gradescope(result, show_hidden=True)["tests"][1]["visibility"] == "after_published"
    assert score.gradescope(result)["tests"][1]["visibility"] == "hidden"


def test_no_train_follows_the_labs_grading_guard(tmp_path: Path) -> None:
    """Does the two-phase route forbid training exactly where the lab's GradingGuard says
    ``no_train: true`` (as otter run does), and the kernel get CONVLAB_NO_TRAIN=1 then?"""
    from convlab.grading import grade

    def autograder(plugins: list) -> Path:
        folder = tmp_path / f"ag{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        (folder / "otter_config.json").write_text(json.dumps({"plugins": plugins}))
        return folder

    guard = "convlab.otter_plugin.GradingGuard"
    strict = grade.with_otter_seed(ex.Settings(), autograder([{guard: {"no_train": True}}]))
    assert strict.no_train and ex.kernel_env(strict)["CONVLAB_NO_TRAIN"] == "1"
    for plugins in ([{guard: {"cell_timeout": 60}}], [], [{guard: {"no_train": "yes"}}], ["x"]):
        lax = grade.with_otter_seed(ex.Settings(), autograder(plugins))
        assert not lax.no_train and "CONVLAB_NO_TRAIN" not in ex.kernel_env(lax)


def test_batch_workers_share_the_cores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Does each of several workers on this machine get its share of the cores for its kernel's
    TensorFlow (and a single worker, a remote Dask cluster or an explicit setting keep theirs)?"""
    from convlab.grading import batch, grade

    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.ipynb").write_text("{}")
    seen: list[Any] = []

    class Stop(Exception):
        pass

    def fake_run_batch(submissions, grade_one, out, **kwargs):
        seen.append(grade_one.args[0].settings.threads)
        raise Stop

    monkeypatch.setattr(batch, "run_batch", fake_run_batch)
    monkeypatch.setattr(ex, "cores", lambda: 4)
    monkeypatch.setattr(ex, "sweep_stale_workdirs", lambda base: None)
    for workers, settings, engine in ((2, ex.Settings(), None), (8, ex.Settings(), None),
                                      (1, ex.Settings(), None), (2, ex.Settings(threads=3), None),
                                      (2, ex.Settings(), batch.DaskEngine("local")),
                                      (2, ex.Settings(), batch.DaskEngine("tcp://host:8786"))):
        config = grade.Config(lab="lab5_cnn", tests=tmp_path, settings=settings)
        with pytest.raises(Stop):
            grade.grade_folder(config, tmp_path, tmp_path / "out", workers=workers, engine=engine)
    assert seen == [2, 1, None, 3, 2, None]
    env = ex.kernel_env(ex.Settings(threads=2))
    assert env["TF_NUM_INTRAOP_THREADS"] == env["OMP_NUM_THREADS"] == "2"
    assert "TF_NUM_INTRAOP_THREADS" not in ex.kernel_env(ex.Settings())


def test_kernel_modules_import_only_kernel_modules() -> None:
    """Does every module the kernel may read (``execute.KERNEL_MODULES``) import, of this package,
    only modules in that list (the rest is hidden from the kernel: an import of it would fail in
    the sandbox), and is every hidden-check module and thresholds.json out of the list?"""
    import ast

    import convlab

    root = Path(convlab.__file__).parent
    allowed = {"convlab." + name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
               for name in ex.KERNEL_MODULES} | {"convlab"}
    for name in ex.KERNEL_MODULES:
        for node in ast.walk(ast.parse((root / name).read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("convlab"):
                # a submodule of an allowed package, or a name of an allowed module
                found = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in allowed
                         else node.module for a in node.names]
            elif isinstance(node, ast.Import):
                found = [a.name for a in node.names if a.name.startswith("convlab")]
            else:
                continue
            for module in found:
                assert module in allowed, (name, module)
    hidden = {Path(p).relative_to(root).as_posix() for p in ex.hidden_from_kernel()}
    assert {"checks", "thresholds.json", "grading/score.py", "build.py"} <= hidden, hidden
    assert not hidden & set(ex.KERNEL_MODULES)


def test_checks_on_the_solution_model_predict_the_test_set_once_same_verdicts(
        datasets_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the committed Lab 5 solution model1 and the real MNIST: with the student's test set
    scaled as the check scales it (another array, the same bytes), do the accuracy answer and the
    predicted labels get the same verdicts and messages as keras' own predict computed afresh
    gives, while the scoring predicts the test set once (not once more for the student's copy)?"""
    import keras

    from convlab.checks import data, performance

    folder = Path(__file__).resolve().parents[2] / "solutions" / "lab5_cnn" / "artifacts"
    manifest = json.loads((folder / "manifest.json").read_text())
    file = next(e["file"] for e in manifest.values() if "model1" in e["variables"])
    model = keras.saving.load_model(folder / file, compile=False, safe_mode=True)
    x_test, y_test = data.pristine("mnist")
    fresh = np.argmax(keras.Model.predict(model, x_test, batch_size=performance.PREDICT_BATCH, verbose=0),
                      axis=1)
    accuracy = float(np.mean(fresh == y_test))
    calls: list[int] = []
    original = keras.Model.predict

    def counted(self: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(x))
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "predict", counted)
    copy = x_test.copy()
    checks.answer_accuracy(accuracy, model, "mnist", "accuracy_1", x_test=copy)
    checks.predicted_labels(fresh, model, "mnist", x_test=copy)
    with pytest.raises(checks.CheckFailed) as failed:
        checks.answer_accuracy(accuracy - 0.01, model, "mnist", "accuracy_1", x_test=copy)
    assert str(failed.value).startswith(
        f"accuracy_1: ожидается: {accuracy:.4f} ± 0.002 или {accuracy:.4f} ± 0.002 (точность")
    assert calls == [len(x_test)]
