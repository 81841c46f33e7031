"""Accuracy of trained models, computed by the check on a pristine copy of the test data."""

from __future__ import annotations

import contextlib
import hashlib
import json
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from convlab import artifacts
from convlab.checks import data as _data
from convlab.checks.base import fail, require, show
from convlab.checks.data import pristine
from convlab.checks.models import need_model

#: model -> (weights digest, input key) -> predicted classes; an entry goes with its model, so a
#: later model that happens to get the same ``id`` never sees another model's predictions
_cache: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], np.ndarray]] = weakref.WeakKeyDictionary()

#: (function signature, weights digest, input key) -> predicted classes, computed ahead of the
#: scoring from a submission's own trained-model files (:func:`predict_ahead`): a scored model
#: that computes the same function with the same weights reuses them (:func:`function_signature`)
_ahead: dict[tuple[str, str, str], np.ndarray] = {}
#: predictions made (``predict`` calls) and taken from :data:`_ahead`, in this process
counts = {"predicted": 0, "from_ahead": 0}

#: images per ``predict`` step: large batches keep every core busy, and a step of the scored
#: models on 1000 images stays well inside the scorer's memory
PREDICT_BATCH = 1000


def own_test_images(x: Any, dataset: str) -> np.ndarray | None:
    """The student's ``x`` when it holds exactly the test split's images at some positive scale
    (e.g. pixels left in 0..255), shaped like the prepared split; otherwise None. Answers about
    "the test set" may be computed on it: the same images, as the student prepared them."""
    raw = np.asarray(_data._raw(dataset)[1][0])
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f" or x.size != raw.size:
        return None
    flat, raw_flat = x.reshape(len(raw), -1), raw.reshape(len(raw), -1)
    top = float(raw_flat.max())
    scale = float(np.max(flat)) / top if top > 0 else 0.0
    if not (np.isfinite(scale) and scale > 0):
        return None
    if not float(np.max(np.abs(flat - raw_flat * np.float32(scale)))) <= 1e-4 * scale * top:
        return None
    return x.reshape((len(raw), *pristine(dataset)[0].shape[1:])).astype(np.float32, copy=False)


def input_key(x: np.ndarray, dataset: str) -> str:
    """The identity of the images ``x`` in the prediction cache: ``dataset`` itself when they are
    bit for bit the pristine test split (the student's test set scaled as the check scales it is
    then predicted once, not twice), else ``dataset`` and the digest of their bytes (so two
    different arrays never share a prediction)."""
    x_test = pristine(dataset)[0]
    if x is x_test:
        return dataset
    if x.dtype == x_test.dtype and x.shape == x_test.shape:
        same = np.array_equal(np.ascontiguousarray(x).view(np.uint8), x_test.view(np.uint8))
        if same:  # bytes, not values: -0.0 and 0.0 (or two NaNs) are not "the same pixels"
            return dataset
    return f"{dataset}:{artifacts.arrays_digest([x])}"


def _predicted_classes(model: Any, key: str, images: Callable[[], np.ndarray]) -> np.ndarray:
    """Predicted class numbers of ``model`` for the images whose identity is ``key``
    (:func:`input_key`), computed once per model weights and images in a process; ``images()``
    gives them, called only when they are not cached."""
    try:
        known = _cache.setdefault(model, {})
    except TypeError:  # an object that cannot be weakly referenced is not remembered
        known = {}
    full_key = (artifacts.weights_digest(model), key)
    if full_key not in known and _ahead:
        with contextlib.suppress(Exception):  # a model whose config cannot be read: predicted below
            ahead = _ahead.get((function_signature(model), *full_key))
            if ahead is not None:
                known[full_key] = ahead
                counts["from_ahead"] += 1
    if full_key not in known:
        x = images()
        # keras' own predict, even if the notebook replaced it on the model object, and never
        # a remembered result (artifacts.original)
        scores = np.asarray(artifacts.original("predict")(model, x, batch_size=PREDICT_BATCH,
                                                          verbose=0))
        counts["predicted"] += 1
        if scores.ndim != 2 or scores.shape[0] != len(x):
            raise fail("выход модели", "массив (N, число классов)", show(scores))
        known[full_key] = np.argmax(scores, axis=1)
    return known[full_key]


def _linked(node: Any, index: dict[str, int], key: str = "") -> Any:
    """``node`` (a functional model's connections) with each layer name where Keras names the
    layer a connection comes from (``keras_history``, the input and output layer lists)
    replaced by the layer's position; every other value as it is."""
    if isinstance(node, dict):
        return {k: _linked(v, index, k) for k, v in node.items()}
    if isinstance(node, list | tuple):
        if key in ("keras_history", "input_layers", "output_layers") and node and isinstance(node[0], str):
            return [index.get(node[0], f"?{node[0]}"), *(_linked(v, index) for v in node[1:])]
        return [_linked(v, index, key if key in ("input_layers", "output_layers") else "") for v in node]
    return node


def _structure(model: Any, depth: int = 0) -> dict[str, Any]:
    """What a model computes apart from its weights: each layer's class and configuration
    without its own name (a nested model in the same form), in order; the connections between
    layers by position; the shapes of the inputs and outputs."""
    if depth > 16:
        raise ValueError("модели вложены слишком глубоко")
    layers = list(model.layers)
    index = {str(layer.name): position for position, layer in enumerate(layers)}
    entries: list[Any] = []
    for layer in layers:
        if hasattr(layer, "layers") and hasattr(layer, "get_weights"):  # a model used as a layer
            entries.append(_structure(layer, depth + 1))
        else:
            config = dict(layer.get_config())
            config.pop("name", None)
            entries.append({"class": type(layer).__name__, "config": config})
    structure: dict[str, Any] = {
        "class": type(model).__name__, "layers": entries,
        "inputs": [list(getattr(t, "shape", ())) for t in (getattr(model, "inputs", None) or [])],
        "outputs": [list(getattr(t, "shape", ())) for t in (getattr(model, "outputs", None) or [])],
    }
    config = model.get_config()
    if isinstance(config, dict) and isinstance(config.get("layers"), list) and "input_layers" in config:
        # a functional model: who feeds whom, by position (layers that are not in ``layers``,
        # such as its input layers, by name)
        structure["graph"] = [
            [index.get(str(entry.get("name")), f"?{entry.get('name')}"),
             _linked(entry.get("inbound_nodes"), index)]
            for entry in config["layers"] if isinstance(entry, dict)]
        structure["ends"] = _linked({"input_layers": config.get("input_layers"),
                                     "output_layers": config.get("output_layers")}, index)
    return structure


def function_signature(model: Any) -> str:
    """Digest of what ``model`` computes apart from its weights (:func:`_structure`): the same
    network built in another session (``conv2d_7`` for ``conv2d``) has the same signature. Only
    the layers' own names are left out; every other value of their configurations counts."""
    text = json.dumps(_structure(model), sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def predict_ahead(model: Any, dataset: str, kinds: tuple[str, ...] = ("test", "train")) -> None:
    """Predict the classes of the pristine test split (kind ``test``) and/or of the training
    probe (``train``, :data:`TRAIN_PROBE` images) with ``model`` (one of the submission's
    trained-model files, before its export is scored) and keep them: a scored model with the
    same :func:`function_signature` and weights digest gets them without predicting again."""
    signature, weights = function_signature(model), artifacts.weights_digest(model)
    (x_train, _), _ = _data._raw(dataset)
    for key, images in ((dataset, lambda: pristine(dataset)[0]),
                        (f"{dataset}:train", lambda: _data._prepare(x_train[:TRAIN_PROBE]))):
        kind = "train" if key.endswith(":train") else "test"
        if kind in kinds and (signature, weights, key) not in _ahead:
            _ahead[(signature, weights, key)] = _predicted_classes(model, key, images)


def predictions(model: Any, dataset: str, x_own: np.ndarray | None = None) -> np.ndarray:
    """Predicted class numbers for the pristine test images, or for ``x_own`` (the test images
    as the student scaled them, see :func:`own_test_images`); cached per model weights and
    images (:func:`input_key`: the student's images equal to the pristine ones reuse their
    prediction)."""
    x_test = pristine(dataset)[0] if x_own is None else x_own
    return _predicted_classes(model, input_key(x_test, dataset), lambda: x_test)


def test_accuracy(model: Any, dataset: str) -> float:
    """Accuracy on the pristine test split."""
    need_model(model, "модель")
    _, y_test = pristine(dataset)
    return float(np.mean(predictions(model, dataset) == y_test))


def accuracy_at_least(model: Any, dataset: str, minimum: float, name: str = "модель") -> None:
    """Test accuracy of the trained ``model`` is at least ``minimum``."""
    need_model(model, name)
    accuracy = test_accuracy(model, dataset)
    require(accuracy >= minimum, f"{name}: точность на тестовой выборке",
            f"не менее {minimum:.2f}", f"{accuracy:.4f}")


def accuracy_step(model: Any, dataset: str, *, floor: float, threshold: float, step: int,
                  steps: int, name: str = "модель") -> None:
    """Step ``step`` of ``steps`` of the linear accuracy credit: the test accuracy reaches
    ``floor + (threshold - floor) * step / steps``, and the model was fitted on the training
    split (:func:`fitted_on_training_split`: accuracy on the data it trained on earns nothing).
    One test case per step, all-or-nothing each, so otter's per-case scoring gives credit that
    rises linearly from ``floor`` (none) to ``threshold`` (full)."""
    need_model(model, name)
    fitted_on_training_split(model, dataset, name)
    level = floor + (threshold - floor) * step / steps
    accuracy = test_accuracy(model, dataset)
    require(accuracy >= level - 1e-9,
            f"{name}: точность на тестовой выборке (ступень {step} из {steps}; баллы растут "
            f"линейно от {floor:.2f} до {threshold:.2f})", f"не менее {level:.4f}",
            f"{accuracy:.4f}")


#: training images the grader evaluates a model on (the first ones of a fresh load). The check
#: compares their accuracy with the test accuracy at a margin of 0.05; on 3000 images the
#: standard error of an accuracy is at most 0.009 (0.003 near MNIST's 0.98), so a model that
#: learned from the training split misses the margin by chance with odds below 1e-7, and the
#: grader predicts 3000 training images per model instead of 10 000 (a third of its predictions)
TRAIN_PROBE = 3000


def train_accuracy(model: Any, dataset: str) -> float:
    """Accuracy on the first :data:`TRAIN_PROBE` images of a fresh load of the training split."""
    (x_train, y_train), _ = _data._raw(dataset)
    # the same images in every call of a process (its one load), so their name is their identity
    predicted = _predicted_classes(model, f"{dataset}:train",
                                   lambda: _data._prepare(x_train[:TRAIN_PROBE]))
    return float(np.mean(predicted == np.asarray(y_train[:TRAIN_PROBE]).reshape(-1)))


def fitted_on_training_split(model: Any, dataset: str, name: str = "модель",
                             margin: float = 0.05) -> None:
    """The grader's own evaluation says the model learned from the training split: its
    accuracy on training images is not far below its test accuracy (a model fitted on the
    test split knows the test images much better than the training ones)."""
    need_model(model, name)
    on_test, on_train = test_accuracy(model, dataset), train_accuracy(model, dataset)
    require(on_train >= on_test - margin, f"{name}: обучение на обучающей выборке",
            f"точность на обучающих изображениях не ниже точности на тестовых ({on_test:.4f}) "
            f"более чем на {margin:g}",
            f"{on_train:.4f} (модель обучалась на тестовой выборке?)")


def answer_accuracy(value: Any, model: Any, dataset: str, name: str, x_test: Any = None,
                    tolerance: float = 0.002) -> None:
    """The answer ``value`` is the model's accuracy on the test split (within ``tolerance``:
    a few images), computed on the check's prepared test images or on the student's own
    ``x_test`` if it holds the test images at another scale; not a training accuracy."""
    need_model(model, "модель")
    import numbers

    candidates = [test_accuracy(model, dataset)]
    own = own_test_images(x_test, dataset) if x_test is not None else None
    if own is not None:
        _, y_test = pristine(dataset)
        candidates.append(float(np.mean(predictions(model, dataset, own) == y_test)))
    ok = isinstance(value, numbers.Real) and any(abs(float(value) - c) <= tolerance
                                                 for c in candidates)
    require(ok, name, " или ".join(f"{c:.4f} ± {tolerance:g}" for c in candidates)
            + " (точность на тестовой выборке)", show(value))


def more_accurate(model: Any, baseline: Any, dataset: str, name: str, baseline_name: str) -> None:
    """``model`` is more accurate on the test split than ``baseline``."""
    need_model(model, name)
    need_model(baseline, baseline_name)
    accuracy, reference = test_accuracy(model, dataset), test_accuracy(baseline, dataset)
    require(accuracy > reference, f"{name}: точность на тестовой выборке",
            f"больше, чем у {baseline_name} ({reference:.4f})", f"{accuracy:.4f}")


def predicted_labels(labels: Any, model: Any, dataset: str, name: str = "y_pred_labels",
                     x_test: Any = None) -> None:
    """``labels`` are the class numbers the model predicts for the test images (prepared by
    the check, or the student's own ``x_test`` if it holds the test images at another scale)."""
    need_model(model, "модель")
    expected = predictions(model, dataset)
    array = np.asarray(labels).reshape(-1) if labels is not None else np.array([])
    require(array.shape == expected.shape, f"{name}: размер", expected.shape, array.shape)
    agreement = float(np.mean(array == expected))
    own = own_test_images(x_test, dataset) if x_test is not None else None
    if own is not None:
        agreement = max(agreement, float(np.mean(array == predictions(model, dataset, own))))
    require(agreement >= 0.999, f"{name}: совпадение с argmax выхода сети по тестовой выборке",
            "не менее 99.9%", f"{agreement:.2%}")


def argmax_labels(labels: Any, scores: Any, name: str = "y_pred_labels") -> None:
    """``labels`` are the class numbers of the network outputs ``scores`` (row-wise argmax)."""
    outputs = np.asarray(scores) if scores is not None else None
    if outputs is None or outputs.ndim != 2:
        raise fail("y_pred: выход сети", "массив (N, число классов)", show(outputs))
    expected = np.argmax(outputs, axis=1)
    array = np.asarray(labels).reshape(-1) if labels is not None else np.array([])
    require(array.shape == expected.shape, f"{name}: размер", expected.shape, array.shape)
    agreement = float(np.mean(array == expected))
    require(agreement == 1.0, f"{name}: совпадение с номерами классов выхода сети y_pred",
            "100%", f"{agreement:.2%}")
