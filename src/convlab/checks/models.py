"""Checks of model structure and compilation.

A model is described as a flat list of layer descriptions such as ``"Conv2D 32 3x3 same relu"``,
``"MaxPool 2"``, ``"BatchNorm"``, ``"Dropout 0.3"``, ``"Flatten"``, ``"Dense 10 softmax"``.
Equivalent forms describe the same way: Sequential or functional models (nested blocks are
flattened), ``Conv2D(activation='relu')`` or ``Conv2D`` followed by a ``ReLU``/``Activation``
layer, ``MaxPool2D`` or ``MaxPooling2D``, ``Dense(activation='softmax')`` or a ``Softmax`` layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convlab.checks.base import CheckFailed, fail, require, show

# the layer descriptions live beside the grader's kernel side (which may not import checks)
from convlab.grading.layers import Op, _leaf_layers, _pair, layer_ops  # noqa: F401


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
            raise CheckFailed(
                f"{name}, слой №{index + 1}: ожидалось «{want}», получено «{got}». "
                f"Слои модели: {', '.join(found)}."
            )
    if len(found) != len(expected):
        raise CheckFailed(
            f"{name}: ожидалось слоёв: {len(expected)} ({', '.join(expected)}), "
            f"получено: {len(found)} ({', '.join(found)})."
        )


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
    before the next Conv2D or Dense layer (before or after pooling both count)."""
    need_model(model, name)
    ops = layer_ops(model)
    weighted = [i for i, op in enumerate(ops) if op.kind in ("Conv2D", "Dense")]
    output = weighted[-1] if weighted else None
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
            f"{name}: ожидался слой BatchNormalization после каждого слоя {'/'.join(kinds)} "
            f"(до следующего Conv2D/Dense); нет нормализации после: {'; '.join(missing)}. "
            f"Слои модели: {', '.join(op.describe() for op in ops)}."
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
    require(found_loss == loss, f"{name}: функция потерь", loss, found_loss)
    if getattr(model.loss, "from_logits", False):
        raise fail(f"{name}: функция потерь", "from_logits=False (выход сети — softmax)",
                   "from_logits=True")
    aliases = {metric, "accuracy", "acc", "sparse_categorical_accuracy"}
    found_metrics = _metric_names(model)
    require(any(m in aliases for m in found_metrics), f"{name}: метрика", metric,
            found_metrics or "метрик нет")


def is_trained(model: Any, name: str) -> None:
    """The model went through ``fit`` (or had trained weights restored by convlab)."""
    need_model(model, name)
    history = getattr(model, "history", None)
    epochs = len(getattr(history, "epoch", []) or [])
    optimizer = getattr(model, "optimizer", None)
    # a Keras Variable cannot be used as a boolean: convert it, never `or` it
    counter = getattr(optimizer, "iterations", None) if optimizer is not None else None
    iterations = int(np.asarray(counter)) if counter is not None else 0
    require(epochs > 0 or iterations > 0, f"{name}: обучение",
            f"обученная модель (вызов {name}.fit(...))", "модель не обучалась")


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
