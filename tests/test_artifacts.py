"""Model.fit keeps trained models and never retrains an unchanged one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from convlab import artifacts  # noqa: E402

X = np.random.default_rng(0).random((64, 8, 8, 1), dtype=np.float32)
Y = (X.mean(axis=(1, 2, 3)) > 0.5).astype("uint8")


def make(kind: str = "functional", filters: int = 4, loss: str = "sparse_categorical_crossentropy"):
    if kind == "sequential":
        model = keras.Sequential([keras.layers.Conv2D(filters, 3, activation="relu"),
                                  keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    else:
        inputs = keras.Input((8, 8, 1))
        hidden = keras.layers.Flatten()(keras.layers.Conv2D(filters, 3, activation="relu")(inputs))
        model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(hidden))
    model.compile(optimizer="sgd", loss=loss, metrics=["accuracy"])
    return model


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """fit() with artifacts in a temporary folder; counts real trainings."""
    monkeypatch.chdir(tmp_path)
    for var in (artifacts.ENV_DIR, artifacts.ENV_NO_TRAIN, artifacts.ENV_RETRAIN, artifacts.ENV_LOG):
        monkeypatch.delenv(var, raising=False)
    artifacts.enable("artifacts")
    original = artifacts._state["original_fit"]
    calls = []

    def counting_fit(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    artifacts._state["original_fit"] = counting_fit
    keras.utils.set_random_seed(1)
    yield calls
    artifacts._state["original_fit"] = original
    artifacts.disable()


@pytest.mark.parametrize("kind", ["functional", "sequential"])
def test_refit_of_recreated_model_restores_weights(cache, kind: str) -> None:
    """Is a re-created, unchanged model restored (same weights and history) instead of retrained?"""
    first = make(kind)
    history = first.fit(X, Y, epochs=2, verbose=0)
    second = make(kind)  # new layer names (conv2d_1, ...), same architecture
    restored = second.fit(X, Y, epochs=2, verbose=0)
    assert len(cache) == 1
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert restored.history == history.history  # JSON keeps float64 exactly
    assert second.history is restored and restored.epoch == [0, 1]


def test_restore_brings_back_the_optimizer_state(cache) -> None:
    """The restored model's optimizer holds the trained one's step count and learning rate
    (the checks' evidence of training, which a forged history does not give)."""
    schedule = keras.callbacks.LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1))
    first = make()
    first.fit(X, Y, epochs=3, batch_size=16, verbose=0, callbacks=[schedule])
    second = make()
    second.fit(X, Y, epochs=3, batch_size=16, verbose=0, callbacks=[schedule])
    assert len(cache) == 1
    assert int(second.optimizer.iterations) == int(first.optimizer.iterations) == 3 * 4
    assert float(np.asarray(second.optimizer.learning_rate)) == pytest.approx(0.1 / 3)


@pytest.mark.parametrize("change", ["architecture", "compile", "epochs", "data"])
def test_any_change_retrains(cache, change: str) -> None:
    """Does changing the model, its compilation, the fit arguments or the data train again?"""
    make().fit(X, Y, epochs=2, verbose=0)
    model = make(filters=8) if change == "architecture" else make(loss="mse") \
        if change == "compile" else make()
    x = X * 0.5 if change == "data" else X
    y = keras.utils.to_categorical(Y, 2) if change == "compile" else Y
    model.fit(x, y, epochs=3 if change == "epochs" else 2, verbose=0)
    assert len(cache) == 2


def test_data_changed_in_place_retrains(cache) -> None:
    """Is the same array object, changed in place between two fits (one pixel), seen as new
    data (the digest of an array seen before is reused only while its bytes are unchanged)?"""
    x = X.copy()
    make().fit(x, Y, epochs=1, verbose=0)
    make().fit(x, Y, epochs=1, verbose=0)
    assert len(cache) == 1  # unchanged: restored
    x[0, 0, 0, 0] += 0.25
    make().fit(x, Y, epochs=1, verbose=0)
    assert len(cache) == 2
    assert artifacts._array_digest(x) == artifacts._array_digest(x.copy())


def test_continued_training_is_a_new_fit(cache) -> None:
    """Does a second fit on the same model continue training rather than reload the first?"""
    model = make()
    model.fit(X, Y, epochs=1, verbose=0)
    model.fit(X, Y, epochs=1, verbose=0)
    assert len(cache) == 2
    again = make()
    again.fit(X, Y, epochs=1, verbose=0)
    again.fit(X, Y, epochs=1, verbose=0)
    assert len(cache) == 2  # the whole chain is restored on a re-run
    for a, b in zip(model.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_manifest_names_the_notebook_variable(cache) -> None:
    """Does the manifest record which notebook variable held the trained model?"""
    model_a = make()
    model_a.fit(X, Y, epochs=1, verbose=0)
    manifest = json.loads(Path("artifacts/manifest.json").read_text())
    (entry,) = manifest.values()
    assert "model_a" in entry["variables"] and entry["epochs"] == 1
    assert (Path("artifacts") / entry["file"]).is_file()


def test_no_train_mode_refuses_to_train(cache, monkeypatch: pytest.MonkeyPatch) -> None:
    """With CONVLAB_NO_TRAIN=1, does a fit without saved weights fail with a clear error?"""
    monkeypatch.setenv(artifacts.ENV_NO_TRAIN, "1")
    with pytest.raises(artifacts.MissingArtifact, match="CONVLAB_NO_TRAIN"):
        make().fit(X, Y, epochs=1, verbose=0)
    assert cache == []


def test_retrain_variable_forces_training(cache, monkeypatch: pytest.MonkeyPatch) -> None:
    """Does CONVLAB_RETRAIN=1 train even when weights are saved?"""
    make().fit(X, Y, epochs=1, verbose=0)
    monkeypatch.setenv(artifacts.ENV_RETRAIN, "1")
    make().fit(X, Y, epochs=1, verbose=0)
    assert len(cache) == 2


def test_corrupt_artifact_trains_instead(cache) -> None:
    """Is a corrupt saved model replaced by training rather than crashing the notebook?"""
    make().fit(X, Y, epochs=1, verbose=0)
    (saved,) = Path("artifacts").glob("*.keras")
    saved.write_bytes(b"not a keras file")
    make().fit(X, Y, epochs=1, verbose=0)
    assert len(cache) == 2


def test_used_fingerprints_are_logged(cache, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Does CONVLAB_ARTIFACTS_LOG receive each fingerprint used (trained or restored)?"""
    log = tmp_path / "used.log"
    monkeypatch.setenv(artifacts.ENV_LOG, str(log))
    make().fit(X, Y, epochs=1, verbose=0)
    make().fit(X, Y, epochs=1, verbose=0)
    keys = log.read_text().split()
    assert len(keys) == 2 and keys[0] == keys[1]


# ------------------------------------------------------------------------ inference memos


@pytest.fixture
def inference(cache):
    """Counts keras' real evaluate/predict passes while the memos are enabled."""
    calls: list[str] = []
    originals = {kind: artifacts._state[f"original_{kind}"] for kind in ("evaluate", "predict")}

    def counting(kind):
        def method(self, *args, **kwargs):
            if not kwargs.get("_use_cached_eval_dataset"):  # fit's own validation pass
                calls.append(kind)
            return originals[kind](self, *args, **kwargs)
        return method

    for kind in originals:
        artifacts._state[f"original_{kind}"] = counting(kind)
    yield calls
    for kind, method in originals.items():
        artifacts._state[f"original_{kind}"] = method


def memos(kind: str) -> list[Path]:
    return sorted(Path("artifacts").glob(f"*.{kind}-*"))


@pytest.mark.parametrize("return_dict", [False, True])
def test_evaluate_of_an_unchanged_model_is_remembered(inference, return_dict: bool) -> None:
    """Does a second evaluate of the same trained weights on the same data return the stored
    result without another pass, and is the memo kept next to the trained model?"""
    model = make()
    model.fit(X, Y, epochs=1, verbose=0, validation_data=(X, Y))
    assert not memos("evaluate"), "fit's validation passes must not be remembered"
    first = model.evaluate(X, Y, verbose=0, return_dict=return_dict)
    again = make()
    again.fit(X, Y, epochs=1, verbose=0, validation_data=(X, Y))  # restored: same weights
    second = again.evaluate(X, Y, verbose=0, return_dict=return_dict)
    assert inference == ["evaluate"]
    assert second == pytest.approx(first)
    assert type(second) is type(first)
    [memo] = memos("evaluate")
    assert memo.name.startswith(again._convlab_fit_key + ".evaluate-")
    assert memo in artifacts.files_of(Path("artifacts"), again._convlab_fit_key)


@pytest.mark.parametrize("change", ["weights", "data", "batch_size", "return_dict"])
def test_evaluate_recomputes_when_anything_changes(inference, change: str) -> None:
    """Do changed weights, data or arguments get a real evaluation, never a stale memo?"""
    model = make()
    model.fit(X, Y, epochs=1, verbose=0)
    model.evaluate(X, Y, verbose=0)
    x, kwargs = X, {"verbose": 0}
    if change == "weights":
        model.set_weights([w + 0.01 for w in model.get_weights()])
    elif change == "data":
        x = X.copy()
        x[0, 0, 0, 0] += 0.5
    elif change == "batch_size":
        kwargs["batch_size"] = 7
    else:
        kwargs["return_dict"] = True
    model.evaluate(x, Y, **kwargs)
    assert inference == ["evaluate", "evaluate"]


def test_predict_is_remembered_and_a_corrupt_memo_recomputed(inference) -> None:
    """Is a prediction stored as .npy and reused; is a memo of the wrong shape ignored?"""
    model = make()
    model.fit(X, Y, epochs=1, verbose=0)
    first = model.predict(X, batch_size=16, verbose=0)
    second = model.predict(X, batch_size=16, verbose=0)
    assert inference == ["predict"]
    np.testing.assert_array_equal(first, second)
    [memo] = memos("predict")
    np.save(memo, np.zeros((3, 2), np.float32))  # not one row per input
    third = model.predict(X, batch_size=16, verbose=0)
    assert inference == ["predict", "predict"]
    np.testing.assert_allclose(third, first, rtol=1e-6)


def test_untrained_model_is_not_remembered(inference) -> None:
    """A model never fitted through the cache has no trained-model key to keep a memo under."""
    model = make()
    model.predict(X, verbose=0)
    model.predict(X, verbose=0)
    assert inference == ["predict", "predict"]
    assert not memos("predict")


def test_checks_never_use_a_remembered_prediction(inference) -> None:
    """A forged memo (a planted file in a submission's artifacts) changes what the notebook's
    predict returns, but the accuracy checks compute with keras' own predict."""
    from convlab.checks import performance

    model = make()
    model.fit(X, Y, epochs=1, verbose=0)
    model.predict(X, batch_size=1000, verbose=0)
    [memo] = memos("predict")
    forged = np.zeros((len(X), 2), np.float32)
    forged[np.arange(len(X)), Y] = 1.0  # every prediction right
    np.save(memo, forged)
    np.testing.assert_array_equal(model.predict(X, batch_size=1000, verbose=0), forged)
    real = artifacts.original("predict")(model, X, batch_size=1000, verbose=0)
    assert not np.array_equal(np.argmax(real, axis=1), Y), "the model must not be perfect for this test"
    assert artifacts.original("predict") is not keras.Model.predict
    performance._cache.clear()
    performance.pristine = lambda dataset: (X, Y)  # type: ignore[assignment]
    try:
        np.testing.assert_array_equal(performance.predictions(model, "test"), np.argmax(real, axis=1))
    finally:
        import importlib

        importlib.reload(performance)


def test_weights_digest_of_a_committed_model_is_unchanged() -> None:
    """Is the weights digest still the one that named the committed inference memos
    (``solutions/*/artifacts``): one committed model's value, pinned? A changed digest would
    leave every committed memo unused."""
    path = Path(__file__).resolve().parents[1] / "solutions/lab5_cnn/artifacts/52a43913a6ea690b5c3a.keras"
    model = keras.saving.load_model(path, compile=False)
    assert artifacts.weights_digest(model) == "e26a6aaec11d74c0bcb5d38e045768ab"
    assert artifacts.arrays_digest(model.get_weights()) == "e26a6aaec11d74c0bcb5d38e045768ab"


def test_a_settled_digest_is_remembered_and_others_are_not() -> None:
    """Does ``settle_weights_digest`` remember a model's digest (later weights changes do not
    move it: only for models nothing changes), while an unsettled model's digest follows its
    weights?"""
    settled, free = make(), make()
    free.set_weights(settled.get_weights())
    before = artifacts.settle_weights_digest(settled)
    assert before == artifacts.weights_digest(free)
    for model in (settled, free):
        model.set_weights([w + 1 for w in model.get_weights()])
    assert artifacts.weights_digest(settled) == before == artifacts.settle_weights_digest(settled)
    assert artifacts.weights_digest(free) != before


def test_jsonable_is_the_one_converter() -> None:
    """Does ``artifacts.jsonable`` turn numpy values, tuples, non-finite floats and tensors into
    JSON data and anything else into its repr, and does the grading kernel's exporter give the
    same (one converter, not two)?"""
    from convlab.grading import exporter

    value = {1: (np.float32(0.5), np.arange(2)), "nan": float("nan"), "t": keras.ops.ones((2,)),
             "o": object}
    expected = {"1": [0.5, [0, 1]], "nan": None, "t": [1.0, 1.0], "o": repr(object)}
    assert artifacts.jsonable(value) == expected == exporter._jsonable(value)
    assert json.loads(json.dumps(artifacts.jsonable(value))) == expected


def test_manifest_read_is_bounded_and_an_object(tmp_path: Path) -> None:
    """Is a cache's manifest read as a JSON object, and anything else (missing, not JSON, not an
    object, or over ``max_bytes`` where a limit is asked) as no manifest?"""
    manifest = tmp_path / artifacts.MANIFEST
    assert artifacts.read_manifest(tmp_path) == {}
    manifest.write_text(json.dumps({"k": {"file": "k.keras"}}))
    assert artifacts.read_manifest(tmp_path) == {"k": {"file": "k.keras"}}
    assert artifacts.read_manifest(tmp_path, max_bytes=manifest.stat().st_size) == {"k": {"file": "k.keras"}}
    assert artifacts.read_manifest(tmp_path, max_bytes=manifest.stat().st_size - 1) == {}
    for text in ("[1, 2]", "{not json", "\udcff"):
        manifest.write_bytes(text.encode("utf-8", "surrogateescape"))
        assert artifacts.read_manifest(tmp_path) == {}, text
