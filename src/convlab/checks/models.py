"""Checks of model structure and compilation.

A model is described as a flat list of layer descriptions such as ``"Conv2D 32 3x3 same relu"``,
``"MaxPool 2"``, ``"BatchNorm"``, ``"Dropout 0.3"``, ``"Flatten"``, ``"Dense 10 softmax"``.
Equivalent forms describe the same way: Sequential or functional models (nested blocks are
flattened), ``Conv2D(activation='relu')`` or ``Conv2D`` followed by a ``ReLU``/``Activation``
layer, ``MaxPool2D`` or ``MaxPooling2D``, ``Dense(activation='softmax')`` or a ``Softmax`` layer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from convlab.checks.base import CheckFailed, fail, require, show

# the layer descriptions live beside the grader's kernel side (which may not import checks)
from convlab.grading.layers import Op, _leaf_layers, _pair, layer_ops  # noqa: F401
from convlab.public import mismatch


def need_model(model: Any, name: str) -> None:
    """``model`` is a Keras model (the variable exists and holds a model)."""
    import keras

    if not isinstance(model, keras.Model):
        raise fail(f"{name}", "модель Keras (keras.Model)", show(model) if model is None
                   else type(model).__name__)


def describe_layers(model: Any) -> list[str]:
    """Human-readable descriptions of the model's layers, in order."""
    return [op.describe() for op in layer_ops(model)]


def layer_sequence(model: Any, expected: list[str], *, ignore: tuple[str, ...] = (),
                   name: str = "модель") -> None:
    """The layers are exactly ``expected`` (after dropping layer kinds listed in ``ignore``)."""
    need_model(model, name)
    found = [op.describe() for op in layer_ops(model) if op.kind not in ignore]
    for index, (want, got) in enumerate(zip(expected, found, strict=False)):
        if want != got:
            raise CheckFailed(mismatch(f"{name}, слой №{index + 1}", f"«{want}»", f"«{got}»")
                              + f" Слои модели: {', '.join(found)}.")
    if len(found) != len(expected):
        raise fail(f"{name}: число слоёв", f"{len(expected)} ({', '.join(expected)})",
                   f"{len(found)} ({', '.join(found)})")


def output_layer(model: Any, classes: int, activation: str = "softmax", *,
                 name: str = "модель") -> None:
    """The last layer is ``Dense(classes)`` with ``activation``."""
    need_model(model, name)
    ops = [op for op in layer_ops(model) if op.kind not in ("Dropout",)]
    last = ops[-1] if ops else Op("нет слоёв")
    require(last.kind == "Dense" and last.args == [str(classes)] and last.activation == activation,
            f"{name}: выходной слой", f"«Dense {classes} {activation}»", f"«{last.describe()}»")


def batchnorm_after(model: Any, kinds: list[str], *, name: str = "модель") -> None:
    """Every layer of ``kinds`` (except the output Dense) is followed by BatchNormalization
    before the next Conv2D or Dense layer (before or after pooling both count), and the model
    has at least one layer of each kind it is about (a model with no convolution does not
    meet "after every convolution")."""
    need_model(model, name)
    ops = layer_ops(model)
    weighted = [i for i, op in enumerate(ops) if op.kind in ("Conv2D", "Dense")]
    output = weighted[-1] if weighted else None
    layers_text = ", ".join(op.describe() for op in ops)
    for kind in kinds:
        present = [i for i in weighted if ops[i].kind == kind and i != output]
        if not present:
            what = "свёрточный слой Conv2D" if kind == "Conv2D" else f"скрытый слой {kind}"
            raise CheckFailed(mismatch(name, f"хотя бы один {what} (с BatchNormalization после него)",
                                       "его нет") + f" Слои модели: {layers_text}.")
    missing = []
    for index in weighted:
        if ops[index].kind not in kinds or index == output:
            continue
        following = [i for i in weighted if i > index]
        stop = following[0] if following else len(ops)
        if not any(op.kind == "BatchNorm" for op in ops[index + 1 : stop]):
            missing.append(f"слой №{index + 1} «{ops[index].describe()}»")
    if missing:
        raise CheckFailed(
            mismatch(name, f"слой BatchNormalization после каждого слоя {'/'.join(kinds)} "
                     "(до следующего Conv2D/Dense)", f"нет нормализации после: {'; '.join(missing)}")
            + f" Слои модели: {layers_text}."
        )


def dropout_after_dense(model: Any, *, min_rate: float, max_rate: float,
                        name: str = "модель") -> None:
    """A Dropout with ``min_rate <= rate <= max_rate`` stands between the hidden Dense layer
    and the output layer."""
    need_model(model, name)
    ops = layer_ops(model)
    dense = [i for i, op in enumerate(ops) if op.kind == "Dense"]
    if len(dense) < 2:
        raise fail(f"{name}: полносвязные слои", "скрытый Dense и выходной Dense",
                   ", ".join(op.describe() for op in ops))
    between = [op for op in ops[dense[-2] + 1 : dense[-1]] if op.kind == "Dropout"]
    if not between:
        raise fail(f"{name}: Dropout после скрытого полносвязного слоя",
                   "слой Dropout между Dense-слоями",
                   "его нет; слои модели: " + ", ".join(op.describe() for op in ops))
    rate = between[0].rate or 0.0
    require(min_rate <= rate <= max_rate, f"{name}: вероятность Dropout",
            f"от {min_rate:g} до {max_rate:g}", f"{rate:g}")


def _loss_name(loss: Any) -> str:
    if isinstance(loss, str):
        if loss.islower() or loss.isupper():  # "sparse_categorical_crossentropy", "MSE"
            return loss.lower()
        # keras also accepts class names: "SparseCategoricalCrossentropy"
        return "".join("_" + c.lower() if c.isupper() else c for c in loss).lstrip("_")
    if isinstance(loss, dict):
        return _loss_name(next(iter(loss.values())))
    cls = type(loss).__name__ if not callable(loss) or hasattr(loss, "get_config") else loss.__name__
    snake = "".join("_" + c.lower() if c.isupper() else c for c in cls).lstrip("_")
    return snake.replace("cross_entropy", "crossentropy")


def _metric_names(model: Any) -> list[str]:
    config = model.get_compile_config() or {}
    metrics = config.get("metrics") or []
    if isinstance(metrics, dict):
        metrics = list(metrics.values())
    names = []
    for metric in metrics:
        if isinstance(metric, str):
            names.append(metric.lower())
        elif isinstance(metric, dict):
            inner = metric.get("config", {})
            names.append(str(inner.get("name") or metric.get("class_name", "")).lower())
        else:
            names.append(str(getattr(metric, "name", metric)).lower())
    return names


#: losses that are the same loss for another label encoding: integer labels with the sparse
#: form, one-hot labels with ``categorical_crossentropy`` (fit fails on the wrong encoding)
EQUIVALENT_LOSSES = {"sparse_categorical_crossentropy": ("categorical_crossentropy",)}


def compiled_with(model: Any, *, optimizer: str, loss: str, metric: str,
                  name: str = "модель") -> None:
    """The model is compiled with this optimizer class, loss (probabilities, not logits)
    and metric."""
    need_model(model, name)
    if not getattr(model, "compiled", False) or getattr(model, "optimizer", None) is None:
        raise fail(f"{name}: компиляция", "модель, скомпилированная через compile()",
                   "модель не скомпилирована")
    found_optimizer = type(model.optimizer).__name__
    require(found_optimizer.lower() == optimizer.lower(), f"{name}: оптимизатор", optimizer,
            found_optimizer)
    found_loss = _loss_name(model.loss)
    accepted = {loss, *EQUIVALENT_LOSSES.get(loss, ())}
    require(found_loss in accepted, f"{name}: функция потерь",
            " или ".join(sorted(accepted, reverse=True)), found_loss)
    if getattr(model.loss, "from_logits", False):
        raise fail(f"{name}: функция потерь", "from_logits=False (выход сети — softmax)",
                   "from_logits=True")
    aliases = {metric, "accuracy", "acc", "sparse_categorical_accuracy", "categorical_accuracy"}
    found_metrics = _metric_names(model)
    require(any(m in aliases for m in found_metrics), f"{name}: метрика", metric,
            found_metrics or "метрик нет")


# ------------------------------------------------------------------ evidence of training
#
# Facts about training come from what the student cannot forge cheaply: the weights (moved
# away from a fresh initialization of the same architecture), the optimizer's iteration count
# (saved with the model), and the grader's own evaluation (``performance``). A fit history is
# evidence only where it agrees with them. Lab 6 calls the same functions for its models.


def optimizer_steps(model: Any) -> int:
    """The optimizer's iteration counter (0 for a model that was never fitted or compiled, and
    for an optimizer never built: a counter set by hand on it is not training, and saving the
    model drops it, so both grading routes agree)."""
    optimizer = getattr(model, "optimizer", None)
    built = optimizer is not None and bool(getattr(optimizer, "built", False))
    counter = getattr(optimizer, "iterations", None) if built else None
    try:
        # a Keras Variable cannot be used as a boolean: convert it, never `or` it
        return int(np.asarray(counter)) if counter is not None else 0
    except (TypeError, ValueError):
        return 0


def _history_epochs(model: Any) -> int:
    history = getattr(model, "history", None)
    return len(getattr(history, "epoch", []) or [])


def _fresh_copy(model: Any) -> Any:
    """The same architecture with freshly initialized weights (fixed seed)."""
    import keras

    keras.utils.set_random_seed(0)
    return keras.models.clone_model(model)


def weights_moved(model: Any, name: str) -> None:
    """The weights are not those of a fresh initialization of the same architecture: some
    bias or normalization parameter left its initial constant, or the spread of a kernel of
    at least 100 values differs from a fresh one's by more than 20%."""
    need_model(model, name)
    try:
        fresh = _fresh_copy(model)
        fresh_weights = [np.asarray(w) for w in fresh.weights]
    except Exception:  # an architecture that cannot be cloned: compare with known constants
        fresh_weights = None
    weights = [np.asarray(w) for w in model.weights]
    if fresh_weights is None or len(fresh_weights) != len(weights):
        moved = any(w.size and float(np.std(w)) > 0 for w in weights)
    else:
        moved = False
        for trained, initial in zip(weights, fresh_weights, strict=True):
            if trained.shape != initial.shape or not trained.size:
                moved = moved or trained.shape != initial.shape
                continue
            if float(np.std(initial)) == 0.0:  # a constant initializer: any change counts
                moved = moved or not np.allclose(trained, initial, atol=1e-6)
            elif trained.size >= 100:  # a random initializer: compare the spread (fewer
                # values than this spread too much between two random draws)
                ratio = float(np.std(trained)) / float(np.std(initial))
                moved = moved or not 0.8 <= ratio <= 1.25
    require(moved, f"{name}: веса модели", "веса после обучения (отличаются от начальных)",
            "веса как у только что созданной модели (обучения не было)")


def is_trained(model: Any, name: str) -> None:
    """The model went through ``fit``: its optimizer made steps (at least as many as the
    fit history claims) and its weights moved away from a fresh initialization."""
    need_model(model, name)
    steps = optimizer_steps(model)
    require(steps > 0, f"{name}: обучение", f"обученная модель (вызов {name}.fit(...))",
            "модель не обучалась: оптимизатор не сделал ни одного шага" + (
                f" (хотя история обучения содержит эпох: {_history_epochs(model)})"
                if _history_epochs(model) else ""))
    epochs = _history_epochs(model)
    require(steps >= epochs, f"{name}: история обучения",
            "не больше эпох, чем шагов оптимизатора",
            f"эпох в истории: {epochs}, шагов оптимизатора: {steps}")
    weights_moved(model, name)


def trained_as_prescribed(model: Any, *, epochs: int, batch_size: int, train_size: int,
                          name: str, min_fraction: float = 0.8) -> None:
    """The optimizer made exactly ``epochs`` × ceil(n / ``batch_size``) steps, n being the
    number of training examples (the whole training split, or at least ``min_fraction`` of it
    when some is held out by ``validation_split``). Fewer epochs, another batch size or a fit
    on the (smaller) test split give another count. A fit history, where there is one, must
    agree."""
    is_trained(model, name)
    steps = optimizer_steps(model)
    lowest = math.ceil(math.ceil(train_size * min_fraction) / batch_size)
    highest = math.ceil(train_size / batch_size)
    per_epoch = steps / epochs
    ok = per_epoch.is_integer() and lowest <= per_epoch <= highest
    if not ok:
        guess = ""
        for candidate in range(1, 10 * epochs + 1):
            if steps % candidate == 0 and lowest <= steps // candidate <= highest:
                guess = f" (похоже на {candidate} эпох(и) по {batch_size} примеров)"
                break
        if not guess and steps % epochs == 0 and steps // epochs < lowest:
            n = steps // epochs * batch_size
            guess = (f" (около {n} примеров за эпоху: меньше обучающей выборки из "
                     f"{train_size}; обучение на тестовой выборке или на части данных?)")
        raise fail(f"{name}: обучение", f"{epochs} эпох по {batch_size} примеров в батче на "
                   f"обучающей выборке ({epochs} × {highest} = {epochs * highest} шагов "
                   "оптимизатора)", f"{steps} шагов оптимизатора{guess}")
    history = getattr(model, "history", None)
    recorded = _history_epochs(model)
    params = getattr(history, "params", None) or {}
    if recorded and recorded != epochs and recorded * per_epoch != steps:
        # the history of the last fit only covers part of the steps: fine if it is consistent
        require(recorded * per_epoch <= steps, f"{name}: история обучения",
                f"не больше {epochs} эпох", f"{recorded} эпох")
    claimed = params.get("steps") if isinstance(params, dict) else None
    if isinstance(claimed, int) and recorded == epochs:
        require(claimed == per_epoch, f"{name}: шагов за эпоху", per_epoch,
                f"{claimed} (по истории обучения)")


def _param_count(weights: list[Any]) -> int:
    total = 0
    for weight in weights:
        size = 1
        for dim in weight.shape:
            size *= int(dim)
        total += size
    return total


def trainable_split(model: Any) -> tuple[int, int]:
    """(trainable, non-trainable) parameter counts."""
    return _param_count(model.trainable_weights), _param_count(model.non_trainable_weights)


def batchnorm_param_counts(model: Any) -> list[int]:
    """Parameters of each BatchNormalization layer, in order."""
    return [layer.count_params() for layer in _leaf_layers(model)
            if type(layer).__name__ == "BatchNormalization"]


LAYER_ALIASES = {"MaxPool2D": "MaxPooling2D", "AvgPool2D": "AveragePooling2D",
                 "GlobalAvgPool2D": "GlobalAveragePooling2D"}


def parameterless_layer_types(model: Any) -> set[str]:
    """Class names of the model's layers that have no parameters (the input layer excluded)."""
    return {type(layer).__name__ for layer in _leaf_layers(model) if layer.count_params() == 0}
