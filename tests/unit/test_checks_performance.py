"""Accuracy checks (convlab.checks.performance) and calibrated thresholds, with "mapping"
networks whose predictions on the synthetic test split are known exactly (conftest.py)."""

from __future__ import annotations

import json
import re

import keras
import numpy as np
import pytest

from convlab import checks
from convlab.checks import CheckFailed


def exactly(text: str) -> str:
    """A ``match=`` pattern for this literal text."""
    return re.escape(text)


@pytest.fixture(scope="module")
def oracle(make_mapping_model):
    """Predicts ORACLE on the MNIST-like test split: right on 8 of 10 images."""
    return make_mapping_model((8, 8, 1), shift=0)


@pytest.fixture(scope="module")
def shifted(make_mapping_model):
    """Predicts ORACLE + 1: right on 2 of 10 images."""
    return make_mapping_model((8, 8, 1), shift=1)


@pytest.fixture(scope="module")
def cifar_oracle(make_mapping_model):
    """The oracle for the CIFAR-like split (labels stored as an (N, 1) column)."""
    return make_mapping_model((6, 6, 3), shift=0)


def test_synthetic_accuracies_are_as_designed(synthetic):
    """Are the exact accuracies the tests below rely on 0.8 (oracle) and 0.2 (shifted)?"""
    assert synthetic.accuracy(0) == 0.8
    assert synthetic.accuracy(1) == 0.2


# -------------------------------------------------------------------------- test_accuracy


def test_test_accuracy_is_exact(fake_datasets, oracle, shifted, cifar_oracle):
    """Does test_accuracy return the exact accuracy as a float, flattening CIFAR's
    (N, 1) labels?"""
    accuracy = checks.test_accuracy(oracle, "mnist")
    assert isinstance(accuracy, float) and accuracy == 0.8
    assert checks.test_accuracy(shifted, "mnist") == 0.2
    assert checks.test_accuracy(cifar_oracle, "cifar10") == 0.8


def test_test_accuracy_student_answer(fake_datasets, oracle):
    """Is a student accuracy within 0.01 accepted by answer_close against test_accuracy,
    and a wrong one (the accuracy in percent) rejected with both values named?"""
    checks.answer_close(0.805, checks.test_accuracy(oracle, "mnist"), 0.01, "accuracy_1")
    with pytest.raises(CheckFailed, match=exactly(
            "accuracy_1: ожидается: 0.8000 ± 0.01; получено: 80.")):
        checks.answer_close(80.0, checks.test_accuracy(oracle, "mnist"), 0.01, "accuracy_1")


def test_test_accuracy_no_model_fails(fake_datasets):
    """Does test_accuracy on a variable left as None fail, saying a model was expected?"""
    with pytest.raises(CheckFailed, match=exactly(
            "модель: ожидается: модель Keras (keras.Model); получено: None (переменная не задана).")):
        checks.test_accuracy(None, "mnist")


def test_test_accuracy_follows_weight_changes(fake_datasets, make_mapping_model, point_mapping):
    """Is a model re-evaluated after its weights change (predictions are cached per
    weights, not per model object)?"""
    model = make_mapping_model((8, 8, 1), shift=0)
    assert checks.test_accuracy(model, "mnist") == 0.8
    point_mapping(model, 1)
    assert checks.test_accuracy(model, "mnist") == 0.2


def test_test_accuracy_ignores_a_replaced_predict(fake_datasets, make_mapping_model):
    """Does the check use keras' own predict even if the notebook replaced predict on the
    model object with one returning perfect answers (so the accuracy cannot be faked)?"""
    model = make_mapping_model((8, 8, 1), shift=0)
    perfect = np.eye(fake_datasets.classes, dtype=np.float32)[fake_datasets.y_test]
    model.predict = lambda *args, **kwargs: perfect
    assert np.mean(np.argmax(model.predict(None), axis=1) == fake_datasets.y_test) == 1.0
    assert checks.test_accuracy(model, "mnist") == 0.8


def test_test_accuracy_wrong_output_shape_fails(fake_datasets):
    """Does a network whose output is not (N, classes) fail, showing the output found?"""
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, padding="same")(inputs))
    with pytest.raises(CheckFailed, match=exactly(
            "выход модели: ожидается: массив (N, число классов); "
            "получено: массив float32 формы (10, 8, 8, 2).")):
        checks.test_accuracy(model, "mnist")


# ---------------------------------------------------------------------- accuracy_at_least


@pytest.mark.parametrize("minimum", [0.5, 0.8])
def test_accuracy_at_least_passes_at_or_above_minimum(fake_datasets, oracle, minimum):
    """Does an accuracy of 0.8 pass for a minimum below it and exactly at it?"""
    checks.accuracy_at_least(oracle, "mnist", minimum, "model1")


def test_accuracy_at_least_cifar_labels(fake_datasets, cifar_oracle):
    """Does accuracy_at_least work with CIFAR's (N, 1) labels?"""
    checks.accuracy_at_least(cifar_oracle, "cifar10", 0.8, "model4")


def test_accuracy_at_least_below_threshold_fails(fake_datasets, oracle):
    """Does an accuracy of 0.8 fail the model1 threshold (0.92), naming both values?"""
    with pytest.raises(CheckFailed, match=exactly(
            "model1: точность на тестовой выборке: ожидается: не менее 0.92; получено: 0.8000.")):
        checks.accuracy_at_least(oracle, "mnist", checks.threshold("lab5_cnn", "model1"),
                                 "model1")


def test_accuracy_at_least_no_model_fails(fake_datasets):
    """Does accuracy_at_least on None fail with the variable's name?"""
    with pytest.raises(CheckFailed, match=exactly(
            "model4: ожидается: модель Keras (keras.Model); получено: None (переменная не задана).")):
        checks.accuracy_at_least(None, "cifar10", 0.45, "model4")


# -------------------------------------------------------------------------- more_accurate


def test_more_accurate_passes(fake_datasets, oracle, shifted):
    """Does a model at 0.8 count as more accurate than a baseline at 0.2?"""
    checks.more_accurate(oracle, shifted, "mnist", "model2", "model1")


def test_more_accurate_less_accurate_fails(fake_datasets, oracle, shifted):
    """Does a model at 0.2 fail against a baseline at 0.8, naming both accuracies?"""
    with pytest.raises(CheckFailed, match=exactly(
            "model2: точность на тестовой выборке: ожидается: больше, чем у model1 (0.8000); "
            "получено: 0.2000.")):
        checks.more_accurate(shifted, oracle, "mnist", "model2", "model1")


def test_more_accurate_equal_fails(fake_datasets, oracle, make_mapping_model):
    """Does an equally accurate model (not strictly better) fail?"""
    twin = make_mapping_model((8, 8, 1), shift=0)
    with pytest.raises(CheckFailed, match=exactly(
            "ожидается: больше, чем у model1 (0.8000); получено: 0.8000.")):
        checks.more_accurate(twin, oracle, "mnist", "model2", "model1")


def test_more_accurate_missing_baseline_fails(fake_datasets, oracle):
    """Does a missing baseline fail with the baseline's name?"""
    with pytest.raises(CheckFailed, match=exactly(
            "model1: ожидается: модель Keras (keras.Model); получено: None (переменная не задана).")):
        checks.more_accurate(oracle, None, "mnist", "model2", "model1")


# ----------------------------------------------------------------------- predicted_labels


@pytest.mark.parametrize("form", ["array", "list", "column"])
def test_predicted_labels_accepts_argmax(fake_datasets, oracle, form):
    """Are the network's argmax labels accepted as an array, a list or an (N, 1) column?"""
    labels = {"array": fake_datasets.oracle, "list": fake_datasets.oracle.tolist(),
              "column": fake_datasets.oracle[:, np.newaxis]}[form]
    checks.predicted_labels(labels, oracle, "mnist")


def test_predicted_labels_true_labels_fail(fake_datasets, oracle):
    """Do the true test labels (instead of the predictions) fail, giving the agreement
    expected and found?"""
    with pytest.raises(CheckFailed, match=exactly(
            "y_pred_labels: совпадение с argmax выхода сети по тестовой выборке: "
            "ожидается: не менее 99.9%; получено: 80.00%.")):
        checks.predicted_labels(fake_datasets.y_test, oracle, "mnist")


def test_predicted_labels_probabilities_fail(fake_datasets, oracle):
    """Do the probabilities (argmax forgotten) fail on their size, naming both sizes?"""
    probabilities = np.asarray(oracle(checks.pristine("mnist")[0]))
    with pytest.raises(CheckFailed, match=exactly(
            "y_pred_labels: размер: ожидается: (10,); получено: (30,).")):
        checks.predicted_labels(probabilities, oracle, "mnist")


def test_predicted_labels_none_fails(fake_datasets, oracle):
    """Does a labels variable left as None fail on its size?"""
    with pytest.raises(CheckFailed, match=exactly(
            "y_pred_labels: размер: ожидается: (10,); получено: (0,).")):
        checks.predicted_labels(None, oracle, "mnist")


# ------------------------------------------------------------------ accuracy_step, split


@pytest.fixture
def on_training_split(monkeypatch):
    """The grader's evaluation on training images says "fitted on the training split" (the
    synthetic training labels are random: that check is tested on its own below)."""
    from convlab.checks import performance

    monkeypatch.setattr(performance, "train_accuracy", lambda model, dataset: 1.0)


@pytest.mark.parametrize("step, passes", [(1, True), (2, True), (3, True), (4, False)])
def test_accuracy_step_linear_levels(fake_datasets, on_training_split, oracle, step, passes):
    """With floor 0.2 and threshold 0.9, are the steps at 0.375, 0.55, 0.725, 0.9: the oracle
    (0.8) passes three of four?"""
    kwargs = {"floor": 0.2, "threshold": 0.9, "step": step, "steps": 4, "name": "model1"}
    if passes:
        checks.accuracy_step(oracle, "mnist", **kwargs)
    else:
        with pytest.raises(CheckFailed, match=exactly(
                "model1: точность на тестовой выборке (ступень 4 из 4; баллы растут линейно "
                "от 0.20 до 0.90): ожидается: не менее 0.9000; получено: 0.8000.")):
            checks.accuracy_step(oracle, "mnist", **kwargs)


def test_accuracy_step_needs_training_split(fake_datasets, oracle):
    """Does an accurate model that knows the test images much better than the training ones
    (as a model fitted on the test split does) get no accuracy step?"""
    with pytest.raises(CheckFailed, match=exactly("model1: обучение на обучающей выборке: ожидается")):
        checks.accuracy_step(oracle, "mnist", floor=0.1, threshold=0.5, step=1, steps=4,
                             name="model1")


def test_fitted_on_training_split(fake_datasets, make_mapping_model, synthetic):
    """Is a model whose training accuracy is not below its test accuracy accepted (a constant
    model predicting the most frequent training class), and the oracle (0.8 on test, chance
    on the random training labels) refused with both accuracies?"""
    y_train = synthetic.raw["mnist"][0][1]
    counts = np.bincount(y_train, minlength=3) / len(y_train)
    test_counts = np.bincount(synthetic.y_test, minlength=3) / len(synthetic.y_test)
    best = int(np.argmax(counts - test_counts))
    assert counts[best] >= test_counts[best] - 0.05
    inputs = keras.Input((8, 8, 1))
    dense = keras.layers.Dense(3, activation="softmax")
    constant = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    bias = np.full(3, -10.0, dtype=np.float32)
    bias[best] = 10.0
    dense.set_weights([np.zeros((64, 3), np.float32), bias])
    checks.fitted_on_training_split(constant, "mnist", "model1")
    assert checks.train_accuracy(constant, "mnist") == pytest.approx(counts[best])
    oracle = make_mapping_model((8, 8, 1), shift=0)
    with pytest.raises(CheckFailed, match=r"model1: обучение на обучающей выборке: ожидается: "
                       r"точность на обучающих изображениях не ниже точности на тестовых \(0\.8000\)"):
        checks.fitted_on_training_split(oracle, "mnist", "model1")


def test_floor_reads_calibrated_value():
    """Is every lab5 model's floor below its threshold (credit rises from floor to threshold)?"""
    for model in ("model1", "model2", "model4", "model5", "model6"):
        assert 0.1 < checks.floor("lab5_cnn", model) < checks.threshold("lab5_cnn", model)


# ------------------------------------------------------------------------------ threshold


def test_threshold_reads_calibrated_value():
    """Does threshold return the calibrated model1 threshold of lab5_cnn as a float (0.92)?"""
    value = checks.threshold("lab5_cnn", "model1")
    assert isinstance(value, float) and value == 0.92


@pytest.mark.parametrize("lab, model", [("lab5_cnn", "model99"), ("lab0", "model1")])
def test_threshold_unknown_raises_key_error(lab, model):
    """Does an unknown lab or model raise KeyError instead of inventing a threshold?"""
    with pytest.raises(KeyError):
        checks.threshold(lab, model)


# ----------------------------------------------------------------------- argmax_labels


def test_argmax_labels_passes_for_rowwise_argmax():
    """Are labels equal to the row-wise argmax of the network outputs accepted?"""
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]], dtype=np.float32)
    checks.argmax_labels(np.array([1, 0, 1]), scores)


def test_argmax_labels_wrong_labels_fail():
    """Do labels that differ from the argmax fail, saying how many agree?"""
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], dtype=np.float32)
    expected = ("y_pred_labels: совпадение с номерами классов выхода сети y_pred: "
                "ожидается: 100%; получено: 75.00%.")
    with pytest.raises(CheckFailed, match=re.escape(expected)):
        checks.argmax_labels(np.array([1, 0, 1, 1]), scores)


def test_argmax_labels_probabilities_instead_of_labels_fail():
    """Does passing the raw outputs (not class numbers) fail on the size?"""
    scores = np.eye(3, dtype=np.float32)
    with pytest.raises(CheckFailed,
                       match=re.escape("y_pred_labels: размер: ожидается: (3,); получено: (9,)")):
        checks.argmax_labels(scores, scores)


def test_argmax_labels_missing_outputs_fail():
    """Does a missing y_pred fail with the expected shape named?"""
    expected = "y_pred: выход сети: ожидается: массив (N, число классов)"
    with pytest.raises(CheckFailed, match=re.escape(expected)):
        checks.argmax_labels(np.array([1]), None)


def test_lab5_text_states_floors_and_thresholds():
    """Does the Lab 5 master print, next to each task, the floor and threshold its accuracy
    steps use (so the text and the grading cannot disagree)?"""
    from pathlib import Path

    import nbformat

    master = Path(__file__).resolve().parents[2] / "assignments" / "lab5_cnn" / "lab5_cnn.ipynb"
    text = "\n".join(c.source for c in nbformat.read(master, 4).cells if c.cell_type == "markdown")
    for model in ("model1", "model4", "model5", "model6"):
        threshold, floor = checks.threshold("lab5_cnn", model), checks.floor("lab5_cnn", model)
        assert f"при {threshold:.2f} и выше, ноль при {floor:.2f} и ниже" in text, model


def test_answer_accuracy_test_split_only(fake_datasets, oracle, synthetic):
    """Is the test accuracy accepted (also when computed on the student's own test images at
    another scale), and a value off by more than the tolerance refused with both candidates?"""
    checks.answer_accuracy(0.8, oracle, "mnist", "accuracy_1")
    raw = synthetic.raw["mnist"][1][0].astype(np.float32)[..., np.newaxis]
    checks.answer_accuracy(0.8, oracle, "mnist", "accuracy_1", x_test=raw)  # 0..255 pixels
    with pytest.raises(CheckFailed, match=exactly("accuracy_1: ожидается: 0.8000 ± 0.002")):
        checks.answer_accuracy(0.7, oracle, "mnist", "accuracy_1")
    shuffled = raw[::-1].copy()  # not the test split in its order: not used
    assert checks.performance.own_test_images(shuffled, "mnist") is None
    with pytest.raises(CheckFailed, match=exactly("accuracy_1: ожидается: 0.8000 ± 0.002 (точность")):
        checks.answer_accuracy(0.3, oracle, "mnist", "accuracy_1", x_test=shuffled)


def test_lab6_text_states_floor_and_threshold():
    """Does the Lab 6 master print, next to task 5, the calibrated floor and threshold (in
    percent) that its accuracy steps use?"""
    from pathlib import Path

    import nbformat

    master = Path(__file__).resolve().parents[2] / "assignments" / "lab6_nin" / "lab6_nin.ipynb"
    text = "\n".join(c.source for c in nbformat.read(master, 4).cells if c.cell_type == "markdown")
    threshold, floor = checks.threshold("lab6_nin", "nin"), checks.floor("lab6_nin", "nin")
    assert f"0 баллов при точности {floor:.0%} и ниже, полный балл от {threshold:.0%}" in text


# ------------------------------------------------------------------- prediction cache


@pytest.fixture
def predict_calls(monkeypatch):
    """Counts keras' own ``Model.predict`` calls (the checks' only way to predict) and their
    ``batch_size``."""
    calls: list[dict] = []
    original = keras.Model.predict

    def counted(self, x, *args, **kwargs):
        calls.append({"images": len(x), **kwargs})
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "predict", counted)
    return calls


def test_student_copy_of_the_pristine_test_set_is_predicted_once(fake_datasets, make_mapping_model,
                                                                 predict_calls):
    """Is the student's test set, scaled exactly as the check scales it (equal bytes, another
    array), answered from the pristine prediction instead of predicting the same pixels again,
    with the same verdicts as before?"""
    model = make_mapping_model((8, 8, 1), shift=0)
    x_test = checks.performance.pristine("mnist")[0]
    copy = x_test.copy()
    assert checks.performance.own_test_images(copy, "mnist") is not None
    labels = np.argmax(np.asarray(model(x_test, training=False)), axis=1)
    checks.answer_accuracy(0.8, model, "mnist", "accuracy_1", x_test=copy)
    assert len(predict_calls) == 1  # the pristine test set; the student's copy reuses it
    checks.predicted_labels(labels, model, "mnist", x_test=copy)
    assert len(predict_calls) == 1
    with pytest.raises(CheckFailed, match=exactly("accuracy_1: ожидается: 0.8000 ± 0.002 "
                                                  "или 0.8000 ± 0.002")):
        checks.answer_accuracy(0.7, model, "mnist", "accuracy_1", x_test=x_test * 2)


def test_pristine_test_set_and_its_copy_share_one_prediction(fake_datasets, make_mapping_model,
                                                             predict_calls):
    """Does one scoring predict the pristine test set and a byte-equal copy of it once, in
    large batches, but a copy that differs in a single pixel (or only in the sign of a zero)
    again?"""
    model = make_mapping_model((8, 8, 1), shift=0)
    x_test = checks.performance.pristine("mnist")[0]
    first = checks.performance.predictions(model, "mnist")
    again = checks.performance.predictions(model, "mnist", x_test.copy())
    assert np.array_equal(first, again) and len(predict_calls) == 1
    assert predict_calls[0]["batch_size"] == checks.performance.PREDICT_BATCH >= 1000
    changed = x_test.copy()
    changed[0, 0, 0, 0] += 0.5
    checks.performance.predictions(model, "mnist", changed)
    assert len(predict_calls) == 2
    signed = x_test.copy()
    signed[signed == 0] = -0.0
    checks.performance.predictions(model, "mnist", signed)
    assert len(predict_calls) == 3


def test_different_images_of_the_same_scale_never_share_a_prediction(fake_datasets,
                                                                      make_mapping_model):
    """Are two arrays with the same largest pixel but different images predicted each on its
    own (the cache keys the pixels themselves, not their scale)?"""
    model = make_mapping_model((8, 8, 1), shift=0)
    x_test = checks.performance.pristine("mnist")[0] * 255
    reversed_order = x_test[::-1].copy()
    assert float(np.max(x_test)) == float(np.max(reversed_order))
    forward = checks.performance.predictions(model, "mnist", x_test)
    backward = checks.performance.predictions(model, "mnist", reversed_order)
    assert np.array_equal(backward, forward[::-1]) and not np.array_equal(backward, forward)


# ------------------------------------------------------------ predictions made ahead of scoring
def _functional(activation: str = "relu", names: tuple[str, str] = ("hidden", "out"), skip: bool = False,
                dtype: str = "float32") -> keras.Model:
    inputs = keras.Input((8, 8, 1))
    flat = keras.layers.Flatten()(inputs)
    hidden = keras.layers.Dense(6, activation=activation, name=names[0], dtype=dtype)(flat)
    joined = keras.layers.Concatenate()([hidden, flat if skip else hidden])
    out = keras.layers.Dense(3, activation="softmax", name=names[1], dtype=dtype)(joined)
    return keras.Model(inputs, out)


def _sequential(activation: str = "relu") -> keras.Sequential:
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, activation=activation),
                             keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])


def test_function_signature_ignores_layer_names_only():
    """Is the same network built again (other layer and model names, as a second session gives)
    signed alike, sequential and functional, and is any change of what it computes (an
    activation, the wiring, the dtype) signed differently, also when a layer is named after
    the activation it replaces?"""
    sign = checks.performance.function_signature
    assert sign(_sequential()) == sign(_sequential())  # conv2d, conv2d_1, ...: new names
    assert sign(_functional()) == sign(_functional(names=("a", "b")))
    assert sign(_sequential()) != sign(_sequential("sigmoid"))
    variants = [_functional("sigmoid"), _functional(skip=True), _functional(dtype="float16"),
                _functional(names=("relu", "out")), _functional("sigmoid", names=("sigmoid", "out"))]
    signatures = {sign(model) for model in variants}
    assert len(signatures) == len(variants) - 1  # the two "relu" ones compute the same
    assert sign(_functional()) == sign(variants[3]) and sign(_functional()) not in {
        sign(variants[0]), sign(variants[1]), sign(variants[2]), sign(variants[4])}


def test_predictions_made_ahead_serve_the_same_network_only(fake_datasets, make_mapping_model, monkeypatch):
    """Does a model predicted ahead (a trained-model file) give its predictions to another
    object with the same network and weights (its export) without predicting again, and not
    to one with the same weights and another activation, which is predicted and scored on its own?"""
    from convlab import artifacts
    from convlab.checks import performance

    ahead = make_mapping_model((8, 8, 1), shift=0)
    performance.predict_ahead(ahead, "mnist")
    calls = []
    real_predict = artifacts.original("predict")
    monkeypatch.setattr(artifacts, "original", lambda name: (
        lambda model, *a, **k: calls.append(model) or real_predict(model, *a, **k)))
    same = make_mapping_model((8, 8, 1), shift=0)
    assert checks.test_accuracy(same, "mnist") == 0.8 and checks.train_accuracy(same, "mnist") >= 0
    assert calls == []
    inputs = keras.Input((8, 8, 1))
    classes = same.layers[-1].units
    flat = keras.layers.Flatten()(inputs)
    other = keras.Model(inputs, keras.layers.Dense(classes, activation="sigmoid")(flat))
    other.set_weights(same.get_weights())
    checks.test_accuracy(other, "mnist")
    assert calls == [other]


def test_scoring_process_predicts_ahead_with_accepted_files_until_its_job(fake_datasets, make_mapping_model,
                                                                          tmp_path):
    """Does a warm scoring process predict with each accepted trained-model file of its plan whose
    input fits a dataset of the lab (test split and training probe), pass over a file that is not
    a model, and predict nothing without a plan or once its job has come?"""
    from convlab.checks import performance
    from convlab.grading import score_process

    folder = tmp_path / "ahead"
    folder.mkdir()
    make_mapping_model((8, 8, 1), shift=0).save(folder / "a.keras")
    make_mapping_model((5, 5, 1), shift=0).save(folder / "b.keras")  # fits no dataset
    (folder / "c.keras").write_bytes(b"PK\x03\x04 hostile")
    # the cache's manifest: all three held the planned variable
    (folder / "manifest.json").write_text(json.dumps(
        {key: {"file": f"{key}.keras", "variables": ["model"]} for key in "abc"}))
    spec = {"datasets": ["mnist", "cifar10"], "ahead": {"model": ["test", "train"]}}
    job = tmp_path / "job.json"
    assert score_process.predict_ahead(folder, spec, job) == 1
    assert sorted(key for _, _, key in performance._ahead) == ["mnist", "mnist:train"]
    performance._ahead.clear()
    assert score_process.predict_ahead(folder, {"datasets": ["mnist", "cifar10"]}, job) == 0  # no plan
    assert performance._ahead == {}
    job.write_text("{}")
    assert score_process.predict_ahead(folder, spec, job) == 0
    assert performance._ahead == {}
