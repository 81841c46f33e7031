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


def _activation_name(value: Any) -> str:
    if value is None:
        return "linear"
    name = value if isinstance(value, str) else getattr(value, "__name__", str(value))
    return name.lower()


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


def layer_ops(model: Any) -> list[Op]:
    """The model as a flat list of :class:`Op`, activation layers folded into Conv2D/Dense."""
    ops: list[Op] = []
    for layer in _leaf_layers(model):
        op = _op(layer)
        if op.kind == "Activation":
            # fold into the last Conv2D/Dense if only BatchNorm/Dropout stand between them
            for previous in reversed(ops):
                if previous.kind in ("BatchNorm", "Dropout"):
                    continue
                if previous.kind in ("Conv2D", "Dense") and previous.activation == "linear":
                    previous.activation = op.activation
                    op = None  # type: ignore[assignment]
                break
            if op is None:
                continue
            op = Op("Activation", [op.activation or "linear"])
        ops.append(op)
    return ops
