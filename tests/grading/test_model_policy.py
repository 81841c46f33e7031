"""The scorer's model allow-list and size budgets (:mod:`convlab.grading.model_policy`), and the
kernel side's export of equivalent activations under their Keras names.

Hostile archives are written by hand (the kernel-side exporter refuses them, but a submission
controls its kernel and can write the export folder itself). Each refusal is shown to matter by
a control: the same file does harm without the policy (a marker function is called by Keras'
own ``safe_mode=True`` loading).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from convlab.grading import exporter, model_policy, score, score_process

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_MODELS = sorted([*ROOT.glob("solutions/*/artifacts/*.keras"),
                           *ROOT.glob("tests/fixtures/*/artifacts/*.keras")])


@pytest.fixture(autouse=True)
def _keep_otter(monkeypatch: pytest.MonkeyPatch) -> None:
    import otter

    monkeypatch.setitem(sys.modules, "otter", otter)


def small_model(activation: Any = "softmax") -> Any:
    import keras

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.MaxPooling2D(), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation=activation)])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def rewrite(archive: Path, edit: Any) -> None:
    """Apply ``edit(config)`` to the config.json of a .keras archive."""
    with zipfile.ZipFile(archive) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(files["config.json"])
    edit(config)
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)


def export_folder(tmp_path: Path, archive: Path, var: str = "m") -> Path:
    """An export folder (as phase 1 writes it) holding ``archive`` as the value of ``var``."""
    folder = tmp_path / "export"
    folder.mkdir()
    name = "m_" + "0" * 32 + ".keras"
    (folder / name).write_bytes(archive.read_bytes())
    manifest = {"format": 1, "snapshots": {"q": {"at": "check", "values": {
        var: {"kind": "value", "value": {"$t": "model", "file": name, "epoch": [], "history": {}}}}}}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def load(folder: Path, names: list[str]) -> tuple[dict, dict]:
    export = score.load_snapshots(folder)
    assert export is not None
    try:
        return score._environment(export, "q", names, "нет")
    finally:
        export.close()


# ------------------------------------------------------------------ reference models still load
@pytest.mark.parametrize("path", REFERENCE_MODELS, ids=lambda p: f"{p.parts[-4]}-{p.parts[-3]}-{p.stem}")
def test_reference_models_are_accepted_with_exact_sizes(path: Path) -> None:
    """Does every reference and fixture model of both labs pass the policy, with the parameter
    count and output shape inferred from its configuration equal to those of the loaded model?"""
    import zipfile

    import keras

    with zipfile.ZipFile(path) as archive:
        config = archive.read("config.json").decode()
    if '"class_name": "function"' in config:
        # a scenario's cached model written with activation functions (tf.nn.softmax): the raw
        # cache file names functions and is refused; the exporter saves it under Keras names
        # (the activation-spelling tests), which is what the scorer ever sees
        with pytest.raises(model_policy.PolicyError, match="ссылку на функцию"):
            model_policy.check_keras_archive(path)
        return
    summary = model_policy.check_keras_archive(path)
    model = keras.saving.load_model(path, safe_mode=True)
    assert summary.params == sum(int(np.prod(w.shape)) for w in model.weights)
    assert summary.outputs == [tuple(model.output_shape[1:])]


def test_reference_models_exist() -> None:
    labs = {p.parts[-3] for p in REFERENCE_MODELS}
    assert labs == {"lab5_cnn", "lab6_nin"}, labs


def test_branched_functional_model_is_accepted(tmp_path: Path) -> None:
    """Is a right-but-different branched model (Concatenate, Add, GlobalMaxPooling2D, ReLU and
    Softmax layers, a function given as tf.nn.relu) accepted, with exact sizes?"""
    import keras
    import tensorflow as tf

    inputs = keras.Input((16, 16, 3))
    a = keras.layers.Conv2D(8, 1, activation=tf.nn.relu)(inputs)
    b = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    b = keras.layers.ReLU()(keras.layers.BatchNormalization()(b))
    x = keras.layers.Concatenate()([a, b])
    x = keras.layers.Add()([x, keras.layers.Conv2D(16, 1, strides=1)(x)])
    x = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.GlobalMaxPooling2D()(x)
    outputs = keras.layers.Softmax()(keras.layers.Dense(10)(x))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="sparse_categorical_crossentropy")
    folder = tmp_path / "k"
    exporter.install({"q": ["m"]}, str(folder))
    exporter.snapshot("q", {"m": model})
    saved = next(folder.glob("*.keras"))
    summary = model_policy.check_keras_archive(saved)
    assert summary.params == sum(int(np.prod(w.shape)) for w in model.weights)
    env, problems = load_export(folder)
    assert problems == {}
    x_probe = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(env["m"].predict(x_probe, verbose=0), model.predict(x_probe, verbose=0),
                               rtol=1e-5, atol=1e-6)


def load_export(folder: Path) -> tuple[dict, dict]:
    return load(folder, ["m"])


# ------------------------------------------------------------ student-named code is never called
MARKER_API = "keras.ops.relu"


@pytest.fixture
def marker_function(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Path]:
    """Keras' public ``keras.ops.relu``, as deserialization finds it by name, replaced by a
    function that leaves a marker file when called (a stand-in for any Keras function with side
    effects, e.g. one changing Keras' global state)."""
    from keras.src import api_export

    marker = tmp_path / "called"
    original = api_export.get_symbol_from_name(MARKER_API)

    def relu(x: Any, *args: Any, **kwargs: Any) -> Any:
        marker.write_text("called")
        return original(x)

    monkeypatch.setitem(api_export.REGISTERED_NAMES_TO_OBJS, MARKER_API, relu)
    return relu, marker


@pytest.mark.parametrize("kind", ["lambda", "activation"])
def test_student_named_keras_function_is_refused_and_never_called(
        tmp_path: Path, marker_function: tuple[Any, Path], kind: str) -> None:
    """Is a model naming a Keras function (a Lambda's function, or a layer activation given as a
    function reference) refused by the scorer with nothing called, while Keras' own
    ``load_model(safe_mode=True)`` does call it (the control)?"""
    import keras

    _, marker = marker_function
    layer = keras.layers.Lambda(lambda t: t) if kind == "lambda" else keras.layers.Activation("relu")
    model = keras.Sequential([keras.Input((4,)), layer, keras.layers.Dense(2)])
    archive = tmp_path / "poison.keras"
    model.save(archive)  # the exporter would refuse it: the submission writes it by hand
    reference = {"module": "keras.ops", "class_name": "function", "config": "relu",
                 "registered_name": "function"}
    rewrite(archive, lambda c: c["config"]["layers"][1]["config"].update(
        {"function" if kind == "lambda" else "activation": reference}))
    marker.unlink(missing_ok=True)

    env, problems = load(export_folder(tmp_path, archive), ["m"])
    assert "m" not in env, problems
    assert ("пользовательский код" if kind == "lambda" else "ссылку на функцию") in problems["m"], problems
    assert not marker.exists()

    with contextlib.suppress(Exception):  # control: Keras alone, safe_mode=True, calls it
        keras.saving.load_model(archive, safe_mode=True).predict(np.zeros((1, 4), "float32"), verbose=0)
    assert marker.exists()


def test_kernel_refuses_unknown_activation_with_a_clear_message(tmp_path: Path) -> None:
    """Is a model whose activation is an arbitrary function reported as not exportable, with a
    Russian message naming the layer and what to write instead?"""
    model = small_model(activation=lambda t: t * 2)
    folder = tmp_path / "k"
    exporter.install({"q": ["m"]}, str(folder))
    exporter.snapshot("q", {"m": model})
    assert not list(folder.glob("*.keras"))
    env, problems = load_export(folder)
    assert "m" not in env
    assert "не из допустимых" in problems["m"] and "activation='relu'" in problems["m"], problems


# ------------------------------------------------------------------------- bounded before building
_MEASURE = textwrap.dedent("""
    import json, resource, sys
    from pathlib import Path
    from convlab.grading import model_policy
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        model_policy.check_keras_archive(Path(sys.argv[1]))
        outcome = "accepted"
    except model_policy.PolicyError as error:
        outcome = str(error)
    print(json.dumps({"outcome": outcome, "keras": "keras" in sys.modules,
                      "growth_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before}))
""")



def test_oversized_declared_layer_is_refused_before_building(tmp_path: Path) -> None:
    """Is a small archive declaring ``Dense(units=2**27)`` refused from its configuration alone
    (Keras never imported, the checking process grows by under 50 MB; unchecked it drove
    the scorer to 6.4 GB)? A conv layer declaring 2**20 filters and a huge input are refused too."""
    model = small_model()
    archive = tmp_path / "big.keras"
    model.save(archive)
    edits = {
        "units": lambda c: c["config"]["layers"][-1]["config"].update(units=2**27),
        "filters": lambda c: c["config"]["layers"][1]["config"].update(filters=2**20),
        "input": lambda c: c["config"]["layers"][0]["config"].update(batch_shape=[None, 60000, 60000, 1]),
    }
    for what, edit in edits.items():
        path = tmp_path / f"{what}.keras"
        path.write_bytes(archive.read_bytes())
        rewrite(path, edit)
        assert path.stat().st_size < 64 << 10
        proc = subprocess.run([sys.executable, "-c", _MEASURE, str(path)], capture_output=True, text=True,
                              check=True)
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        assert report["outcome"] != "accepted", what
        assert "допустим" in report["outcome"], report
        assert not report["keras"] and report["growth_mb"] < 50, report


@pytest.mark.parametrize("edit, fragment", [
    (lambda c: c["config"]["layers"][-1]["config"].update(activation="softmax_v2"), "не из допустимых"),
    (lambda c: c["config"]["layers"][-1].update(class_name="EinsumDense"), "не из допустимых"),
    (lambda c: c["config"]["layers"][-1]["config"].update(function="print"), "недопустимый параметр"),
    (lambda c: c["config"]["layers"][-1].update(registered_name="Custom>Dense"), "чужим именем"),
    (lambda c: c.update(module="os"), "не модель"),
    (lambda c: c["compile_config"].update(loss="my_module.loss"), "недопустимое значение"),
])
def test_config_outside_the_allow_list_is_refused(tmp_path: Path, edit: Any, fragment: str) -> None:
    archive = tmp_path / "m.keras"
    small_model().save(archive)
    model_policy.check_keras_archive(archive)  # the unedited model passes
    rewrite(archive, edit)
    with pytest.raises(model_policy.PolicyError, match=fragment):
        model_policy.check_keras_archive(archive)


def test_extra_archive_members_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "m.keras"
    small_model().save(archive)
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("assets/payload.py", "print('x')")
    with pytest.raises(model_policy.PolicyError, match="посторонние файлы"):
        model_policy.check_keras_archive(archive)


# --------------------------------------------------------------------------------- array budget
def sparse_npy(path: Path, declared_bytes: int) -> None:
    """A .npy whose header declares ``declared_bytes`` of float32 and whose data is a hole."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (declared_bytes // 4,)}
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        handle.truncate(handle.tell() + declared_bytes)


def test_oversized_sparse_arrays_are_refused(tmp_path: Path) -> None:
    """Are two sparse 1.5 GiB arrays (a few KB on disk) refused by their declared sizes before any
    is read, in the grader's copy (nothing copied out) and in the scorer, with a message; and does
    a small array of another export still load?"""
    folder = tmp_path / "export"
    folder.mkdir()
    names = [f"a_{c * 32}.npy" for c in "01"]
    for name in names:
        sparse_npy(folder / name, 3 << 29)
    values = {f"x{i}": {"kind": "value", "value": {"$t": "ndarray", "file": n}} for i, n in enumerate(names)}
    (folder / "manifest.json").write_text(json.dumps({"format": 1, "snapshots": {"q": {"values": values}}}))
    assert sum(p.stat().st_blocks * 512 for p in folder.iterdir()) < 1 << 20

    dest = tmp_path / "copy"
    refused = score_process._copy_export(folder, dest)
    assert "массивы сдачи вместе занимают" in refused
    assert not list(dest.glob("*.npy"))

    measure = textwrap.dedent("""
        import json, resource, sys
        from pathlib import Path
        from convlab.grading import score
        import numpy
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        export = score.load_snapshots(Path(sys.argv[1]))
        env, problems = score._environment(export, "q", ["x0", "x1"], "нет")
        print(json.dumps({"loaded": sorted(env), "problems": problems,
                          "growth_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before}))
    """)
    proc = subprocess.run([sys.executable, "-c", measure, str(folder)], capture_output=True, text=True,
                          check=True)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["loaded"] == [] and all("вместе занимают" in p for p in report["problems"].values())
    assert report["growth_mb"] < 50, report

    small = tmp_path / "small"
    small.mkdir()
    np.save(small / names[0], np.arange(10, dtype=np.float32))
    (small / "manifest.json").write_text(json.dumps({"format": 1, "snapshots": {"q": {"values": {
        "x0": values["x0"]}}}}))
    export = score.load_snapshots(small)
    try:
        env, problems = score._environment(export, "q", ["x0"], "нет")
    finally:
        export.close()
    assert problems == {} and env["x0"].tolist() == list(range(10))


# ------------------------------------------------------------------- equivalent activations
@pytest.mark.parametrize("name, dotted", [(n, d) for n, ds in exporter.EQUIVALENT_ACTIVATIONS.items()
                                          for d in ds])
def test_equivalent_activations_compute_the_same(name: str, dotted: str) -> None:
    """Does each function the exporter saves under a Keras name compute exactly that activation
    (so that renaming it cannot change a grade)?"""
    import keras
    import tensorflow  # noqa: F401  (the notebook's import: tf.nn.* are resolved only when imported)

    function = exporter._resolve(dotted)
    assert callable(function), dotted
    x = np.random.default_rng(0).normal(scale=3, size=(5, 7)).astype("float32")
    np.testing.assert_allclose(np.asarray(function(x)), np.asarray(keras.activations.get(name)(x)),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("spelling", ["tf.nn.softmax", "keras.activations.softmax", "keras.ops.softmax",
                                      "tf.keras.activations.softmax", "'softmax'"])
def test_equivalent_activation_spellings_export_the_same_model(tmp_path: Path, spelling: str) -> None:
    """Is a model written with ``activation=tf.nn.softmax`` (or another spelling) exported under
    the name ``softmax``, loaded by the scorer, and predicting what the live model predicts, while
    the live model keeps its own function?"""
    import keras
    import tensorflow as tf

    function = eval(spelling, {"tf": tf, "keras": keras})
    model = small_model(activation=function)
    folder = tmp_path / "k"
    exporter.install({"q": ["m"]}, str(folder))
    exporter.snapshot("q", {"m": model})
    with zipfile.ZipFile(next(folder.glob("*.keras"))) as zf:
        config = json.loads(zf.read("config.json"))
    assert config["config"]["layers"][-1]["config"]["activation"] == "softmax"
    assert model.layers[-1].activation is keras.activations.get(function)
    env, problems = load_export(folder)
    assert problems == {}
    x = np.random.default_rng(1).normal(size=(3, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(env["m"].predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-7)


def test_augmentation_schedule_and_object_losses_are_accepted(tmp_path: Path) -> None:
    """Is a right-but-different Lab 5 style model accepted with exact sizes: augmentation layers
    and Rescaling inside the model, MaxPool2D, Reshape, a Softmax layer, an optimizer with a
    cosine schedule, loss and metric given as objects with one-hot labels?"""
    import keras

    model = keras.Sequential([
        keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255), keras.layers.RandomFlip("horizontal"),
        keras.layers.RandomRotation(0.1), keras.layers.RandomTranslation(0.1, 0.1),
        keras.layers.RandomZoom(0.1), keras.layers.RandomContrast(0.2),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.MaxPool2D(), keras.layers.Dropout(0.2), keras.layers.Reshape((-1,)),
        keras.layers.Dense(10), keras.layers.Softmax()])
    model.compile(optimizer=keras.optimizers.SGD(keras.optimizers.schedules.CosineDecay(0.1, 100)),
                  loss=keras.losses.CategoricalCrossentropy(), metrics=[keras.metrics.CategoricalAccuracy()])
    archive = tmp_path / "aug.keras"
    model.save(archive)
    summary = model_policy.check_keras_archive(archive)
    assert summary.params == sum(int(np.prod(w.shape)) for w in model.weights)
    assert summary.outputs == [(10,)]
