"""Layer descriptions of a Keras model: the one implementation, shared by the hidden checks
(:mod:`convlab.checks.models`) and the kernel side of the grader
(:func:`convlab.grading.probes.describe_block` runs in the student's kernel, which cannot import
``convlab.checks``).

A pure description (layer kinds and their arguments), no reference answer nor threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Op:
    """One layer of the flattened model, with any folded activation."""

    kind: str  #: Conv2D, Dense, MaxPool, AvgPool, GlobalAvgPool, BatchNorm, Dropout, Flatten, ...
    args: list[str] = field(default_factory=list)
    activation: str | None = None  #: for Conv2D / Dense
    rate: float | None = None  #: for Dropout

    def describe(self) -> str:
        parts = [self.kind, *self.args]
        if self.activation is not None:
            parts.append(self.activation)
        return " ".join(parts)


def _leaf_layers(model: Any) -> list[Any]:
    import keras

    leaves = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            leaves.extend(_leaf_layers(layer))
        elif type(layer).__name__ != "InputLayer":
            leaves.append(layer)
    return leaves


#: function names of activations as Keras writes them (``tf.nn.softmax`` is ``softmax_v2``)
_ACTIVATION_ALIASES = {"softmax_v2": "softmax", "log_softmax_v2": "log_softmax", "relu6": "relu6",
                       "sigmoid_v2": "sigmoid", "swish": "silu"}


def _activation_name(value: Any) -> str:
    """The canonical name of an activation given as a string, a function (``tf.nn.softmax``,
    ``keras.activations.relu``) or a serialized function (a ``{"config": "softmax_v2"}`` dict)."""
    if value is None:
        return "linear"
    if isinstance(value, dict):  # keras' serialization of a function
        inner = value.get("config")
        value = inner if isinstance(inner, str) else value.get("class_name", "?")
    name = value if isinstance(value, str) else getattr(value, "__name__", str(value))
    name = str(name).rsplit(".", 1)[-1].lower()
    return _ACTIVATION_ALIASES.get(name, name)


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    return int(value[0]), int(value[1])


def _op(layer: Any) -> Op:
    kind = type(layer).__name__
    config = layer.get_config()
    if kind == "Conv2D":
        k = _pair(config["kernel_size"])
        args = [str(config["filters"]), f"{k[0]}x{k[1]}", config["padding"]]
        strides = _pair(config["strides"])
        if strides != (1, 1):
            args.append(f"stride {strides[0]}" if strides[0] == strides[1] else f"stride {strides}")
        return Op("Conv2D", args, _activation_name(config.get("activation")))
    if kind == "Dense":
        return Op("Dense", [str(config["units"])], _activation_name(config.get("activation")))
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        pool = _pair(config["pool_size"])
        strides = _pair(config["strides"] or config["pool_size"])
        args = [str(pool[0]) if pool[0] == pool[1] else f"{pool[0]}x{pool[1]}"]
        if strides != pool:
            args.append(f"stride {strides[0]}")
        if config["padding"] != "valid":
            args.append(config["padding"])
        return Op("MaxPool" if kind == "MaxPooling2D" else "AvgPool", args)
    if kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        return Op("GlobalAvgPool" if "Average" in kind else "GlobalMaxPool")
    if kind == "BatchNormalization":
        return Op("BatchNorm")
    if kind == "Dropout":
        return Op("Dropout", [f"{config['rate']:g}"], rate=float(config["rate"]))
    if kind == "ReLU":
        return Op("Activation", activation="relu")
    if kind == "Softmax":
        return Op("Activation", activation="softmax")
    if kind == "Activation":
        return Op("Activation", activation=_activation_name(config.get("activation")))
    return Op(kind)


def _fold_target(ops: list[Op], activation: str | None) -> Op | None:
    """The Conv2D/Dense that a following activation layer belongs to: the last one, if only
    BatchNorm/Dropout (or, for relu, which commutes with max pooling, MaxPool) stand between."""
    passable = {"BatchNorm", "Dropout"} | ({"MaxPool"} if activation == "relu" else set())
    for previous in reversed(ops):
        if previous.kind in passable:
            continue
        if previous.kind in ("Conv2D", "Dense") and previous.activation == "linear":
            return previous
        return None
    return None


def layer_ops(model: Any) -> list[Op]:
    """The model as a flat list of :class:`Op`, activation layers folded into Conv2D/Dense
    (a ReLU after MaxPooling folds into the convolution before it: the two commute)."""
    ops: list[Op] = []
    for layer in _leaf_layers(model):
        op = _op(layer)
        if op.kind == "Activation":
            target = _fold_target(ops, op.activation)
            if target is not None:
                target.activation = op.activation
                continue
            op = Op("Activation", [op.activation or "linear"])
        ops.append(op)
    return ops
