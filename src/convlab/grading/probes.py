"""Grader-owned probes: the grader, not the notebook, chooses the arguments on which the
functions a student wrote are checked (Lab 6's ``nin_block``, ``cosine_lr`` and counters).

The probes are fixed per assignment (:data:`PROBES`, stratified by hand so every argument and
layer kind is exercised: strided and ``valid`` convolutions, kernels > 1 with each padding,
``num_1x1`` other than 2, networks with and without BatchNormalization, a Dense layer). They
live only in the autograder; the student kit never sees them.

Both grading routes give the same outcomes:

* ``otter run``: the hidden test receives the student's function from the notebook's namespace
  and the check calls :func:`outcomes` on it, which applies it to every probe;
* ``convlab grade``: the exporter (in the sandbox) sees that a probed name holds a callable and
  exports :func:`record` — the same :func:`outcomes`, as plain data (numbers, strings, layer
  descriptions; never a model or a function). The scorer wraps that data in :class:`Recorded`
  (:func:`restore`), a stand-in that answers only the probed arguments, and the same check calls
  :func:`outcomes` on it, which returns the recorded list.

An outcome is ``{"ok": value}`` or ``{"error": message}`` (the function raised or returned
something of the wrong kind), with values normalized identically in both routes.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Callable
from typing import Any

#: the names of the notebook's probed functions -> what kind of probe they get
PROBED = {
    "nin_block": "block",
    "cosine_lr": "schedule",
    "count_params": "params",
    "count_mults": "mults",
    "count_memory": "memory",
}

#: input of every probed block, as the notebook's own example: (H, W, C)
BLOCK_INPUT = (16, 16, 3)

#: ``nin_block`` keyword arguments; None for ``num_1x1`` means "left at its default (2)"
BLOCKS: list[dict[str, Any]] = [
    {"num_channels": 8, "kernel_size": 3, "strides": 1, "padding": "same", "num_1x1": 2},
    {"num_channels": 6, "kernel_size": 5, "strides": 2, "padding": "valid", "num_1x1": 1},
    {"num_channels": 12, "kernel_size": 3, "strides": 2, "padding": "same", "num_1x1": 3},
    {"num_channels": 5, "kernel_size": 3, "strides": 1, "padding": "valid"},
    {"num_channels": 4, "kernel_size": 1, "strides": 1, "padding": "same", "num_1x1": 1},
    {"num_channels": 10, "kernel_size": 5, "strides": 1, "padding": "same", "num_1x1": 2},
]

#: ``cosine_lr(epoch, lr_0, lr_min, T)``: both ends, the middle, T and rates unlike the lab's
SCHEDULE: list[tuple[int, float, float, int]] = [
    (0, 1e-2, 0.0, 10),
    (10, 1e-2, 0.0, 10),
    (5, 1e-3, 1e-5, 10),
    (3, 3e-3, 3e-4, 7),
    (13, 5e-4, 5e-5, 50),
    (1, 2e-3, 1e-5, 3),
    (19, 1e-2, 1e-3, 20),
]

#: probe networks for the counters (see :func:`build_network`); each block entry is
#: ``[filters, kernel, strides, padding, num_1x1]``; ``bn``: BatchNormalization after each conv;
#: ``nested``: blocks as nested ``Sequential`` (as the lab's ``nin_block``) or flat layers
NETWORKS: list[dict[str, Any]] = [
    {"input": [16, 16, 3], "bn": True, "nested": True, "pool": [3, 2],
     "blocks": [[8, 3, 2, "same", 2], [10, 3, 1, "valid", 1]], "head": "gap", "batch": 32},
    {"input": [12, 12, 1], "bn": False, "nested": False, "pool": [2, 2],
     "blocks": [[6, 5, 1, "valid", 1]], "head": "flatten_dense", "dense": 7, "batch": 128},
    {"input": [20, 20, 3], "bn": True, "nested": True, "pool": [2, 2],
     "blocks": [[4, 3, 2, "valid", 3], [9, 3, 1, "same", 2]], "head": "gap_dense", "dense": 5,
     "batch": 7},
    {"input": [15, 15, 3], "bn": False, "nested": True, "pool": [3, 2],
     "blocks": [[5, 5, 1, "same", 2], [6, 3, 2, "same", 1], [10, 3, 1, "same", 2]],
     "head": "gap", "batch": 64},
    {"input": [9, 11, 2], "bn": True, "nested": False, "pool": None,
     "blocks": [[7, 3, 1, "valid", 0], [3, 1, 1, "valid", 2]], "head": "flatten_dense", "dense": 4,
     "batch": 3},
]


# ------------------------------------------------------------------------------- probe inputs
def build_block_probe(fn: Callable[..., Any], config: dict[str, Any]) -> Any:
    """``nin_block(**config)`` applied to a :data:`BLOCK_INPUT` input (a built model)."""
    import keras

    return keras.Sequential([keras.Input(BLOCK_INPUT), fn(**config)])


def build_network(spec: dict[str, Any], index: int = 0) -> Any:
    """A small NiN-like probe network of :data:`NETWORKS` (fixed weights: counting does not
    depend on them)."""
    import keras
    from keras import layers

    def block(filters: int, kernel: int, strides: int, padding: str, ones: int) -> list[Any]:
        stack = [layers.Conv2D(filters, kernel, strides=strides, padding=padding, activation="relu")]
        if spec["bn"]:
            stack.append(layers.BatchNormalization())
        for _ in range(ones):
            stack.append(layers.Conv2D(filters, 1, activation="relu"))
            if spec["bn"]:
                stack.append(layers.BatchNormalization())
        return stack

    stack: list[Any] = [keras.Input(tuple(spec["input"]))]
    for number, entry in enumerate(spec["blocks"]):
        part = block(*entry)
        stack.extend([keras.Sequential(part)] if spec["nested"] else part)
        if spec["pool"] and number < len(spec["blocks"]) - 1:
            stack.append(layers.MaxPooling2D(spec["pool"][0], strides=spec["pool"][1], padding="same"))
    stack.append(layers.Dropout(0.3))
    if spec["head"].startswith("gap"):
        stack.append(layers.GlobalAveragePooling2D())
    else:
        stack.append(layers.Flatten())
    if spec["head"].endswith("dense"):
        stack.append(layers.Dense(spec["dense"]))
    return keras.Sequential(stack, name=f"probe_network_{index}")


def probe_set_digest(kind: str) -> str:
    """A short digest of the probes of ``kind`` (a recorded answer must be for these probes)."""
    payload = {"block": [BLOCK_INPUT, BLOCKS], "schedule": SCHEDULE}.get(kind, NETWORKS)
    text = json.dumps([kind, payload], sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------- normalizing
def _number(value: Any) -> Any:
    """A real number as a Python int (whole) or float; anything else raises TypeError."""
    import numpy as np

    if isinstance(value, bool | np.bool_):
        raise TypeError("bool")
    if hasattr(value, "numpy") and not isinstance(value, numbers.Number):
        value = value.numpy()
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise TypeError(f"массив формы {tuple(value.shape)}")
        value = value.reshape(()).item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(repr(value))
        return float(value)
    raise TypeError(type(value).__name__)


def describe_block(model: Any) -> dict[str, Any]:
    """What the block check needs of a built block: its layer descriptions and output shape."""
    from convlab.grading.layers import layer_ops

    ops = [[op.kind, list(op.args), op.activation] for op in layer_ops(model)]
    shape = [int(d) if d is not None else None for d in tuple(model.output_shape)[1:]]
    return {"layers": ops, "output_shape": shape}


def _apply(kind: str, fn: Callable[..., Any], index: int) -> Any:
    if kind == "block":
        return describe_block(build_block_probe(fn, BLOCKS[index]))
    if kind == "schedule":
        return float(_number(fn(*SCHEDULE[index])))
    spec = NETWORKS[index]
    model = build_network(spec, index)
    value = fn(model, spec["batch"]) if kind == "memory" else fn(model)
    return _number(value)


def _error(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip()
    return text if len(text) <= 300 else text[:297] + "..."


def count(kind: str) -> int:
    """How many probes a function of ``kind`` gets."""
    return {"block": len(BLOCKS), "schedule": len(SCHEDULE)}.get(kind, len(NETWORKS))


def compute(kind: str, fn: Callable[..., Any]) -> list[dict[str, Any]]:
    """Call ``fn`` on every probe of ``kind`` (in the kernel that holds it)."""
    results: list[dict[str, Any]] = []
    for index in range(count(kind)):
        try:
            results.append({"ok": _apply(kind, fn, index)})
        except Exception as error:  # the student's function failed on this probe
            results.append({"error": _error(error)})
    return results


# ------------------------------------------------------------------ the two-phase stand-in
class Recorded:
    """What a student's function answered on the grader's probes, restored by the scorer.

    It is a callable that answers nothing else: calling it on any other argument fails."""

    def __init__(self, name: str, kind: str, digest: str, results: list[dict[str, Any]]) -> None:
        self.name, self.kind, self.digest, self.results = name, kind, digest, results

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{self.name}: при оценивании функция вызывается только на пробах оценщика")

    def __repr__(self) -> str:
        return f"<ответы функции {self.name} на {len(self.results)} проб>"


def outcomes(kind: str, fn: Any) -> list[dict[str, Any]]:
    """The outcomes of ``fn`` on the probes of ``kind``: computed when ``fn`` is the student's
    function (``otter run``), the recorded ones when it is a :class:`Recorded` (two-phase)."""
    if isinstance(fn, Recorded):
        if fn.kind != kind or fn.digest != probe_set_digest(kind) or len(fn.results) != count(kind):
            raise AssertionError(f"{fn.name}: ответы функции записаны не для проб оценщика")
        return fn.results
    if not callable(fn):
        from convlab.public import mismatch, show

        raise AssertionError(mismatch("функция на пробах оценщика", "функция", show(fn)))
    return compute(kind, fn)


def is_probed(name: str, value: Any) -> bool:
    """The exporter's question: is ``value`` a function the grader probes?"""
    return name in PROBED and callable(value) and not isinstance(value, type)


def record(name: str, fn: Callable[..., Any]) -> dict[str, Any]:
    """The plain data the exporter writes for a probed function (see :func:`restore`)."""
    kind = PROBED[name]
    return {"kind": kind, "digest": probe_set_digest(kind), "results": compute(kind, fn)}


def _plain(value: Any, depth: int = 0) -> bool:
    if depth > 8:
        return False
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list):
        return len(value) <= 1000 and all(_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return len(value) <= 100 and all(isinstance(k, str) and _plain(v, depth + 1)
                                         for k, v in value.items())
    return False


def restore(name: str, data: Any) -> Recorded:
    """The scorer's stand-in for a probed function from its exported (hostile) data."""
    if name not in PROBED or not isinstance(data, dict) or not _plain(data):
        raise ValueError("повреждённые ответы функции")
    results = data.get("results")
    if not isinstance(results, list) or not all(
            isinstance(r, dict) and len(r) == 1 and ("ok" in r or isinstance(r.get("error"), str))
            for r in results):
        raise ValueError("повреждённые ответы функции")
    return Recorded(name, str(data.get("kind")), str(data.get("digest")), results)
