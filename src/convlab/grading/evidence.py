"""Evidence of training read from a model itself, for the checks (issue: a forged ``model.history``
must stay a claim).

What a submission cannot forge cheaply, and what both grading routes see identically (the live
model in an ``otter run`` kernel; the model the scorer rebuilt from its allow-listed configuration
and weights, optimizer state included):

* ``iterations``: the optimizer's own step counter, saved with the optimizer state in the
  ``.keras`` archive (``fit`` adds one per batch; a model compiled but never fitted has 0);
* the weights against their initialization: variables whose initializer is a constant
  (biases, BatchNormalization's beta/gamma and moving statistics) keep exactly that value until
  training moves them; randomly initialized kernels are compared with a fresh initialization of
  the same architecture made by the grader with a fixed seed (:func:`fresh_initialization`);
* the scorer's own evaluation on the grader's data (the checks do that themselves).

A fit history (``model.history``) is only a claim: :func:`training_evidence` reports whether it is
consistent with the step counter (``epochs × steps per epoch``, when the caller knows the steps)
and with weights that moved. Check functions live in ``convlab.checks``; this module only gathers
the facts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

FRESH_SEED = 20240917  #: the grader's seed for fresh initializations (never the student's)


@dataclass(frozen=True)
class TrainingEvidence:
    """Facts about one model's training, from its optimizer state and weights."""

    iterations: int  #: optimizer steps taken (0: never fitted, or no optimizer state submitted)
    claimed_epochs: int  #: epochs the attached history claims (a claim, not evidence)
    constant_variables: int  #: variables whose initializer is a constant (biases, BN statistics...)
    unchanged_constant_variables: int  #: of those, still exactly at their initial value
    kernel_std_ratio: dict[str, float] = field(default_factory=dict)  #: std(weights) / std(fresh init)

    @property
    def weights_moved(self) -> bool:
        """True when some constant-initialized variable left its initial value (training moves
        biases and BatchNormalization statistics at the first step)."""
        return self.constant_variables > 0 and self.unchanged_constant_variables < self.constant_variables

    def consistent(self, steps_per_epoch: int | None = None) -> bool:
        """Is the claimed history backed by the model: steps taken and weights moved, and, when
        ``steps_per_epoch`` is given, exactly ``claimed_epochs × steps_per_epoch`` steps?"""
        if self.claimed_epochs == 0:
            return True
        if self.iterations <= 0 or not self.weights_moved:
            return False
        return steps_per_epoch is None or self.iterations == self.claimed_epochs * steps_per_epoch


def iterations(model: Any) -> int:
    """The optimizer's step counter (0 without an optimizer or its state)."""
    import numpy as np

    optimizer = getattr(model, "optimizer", None)
    counter = getattr(optimizer, "iterations", None) if optimizer is not None else None
    try:
        return int(np.asarray(counter)) if counter is not None else 0
    except (TypeError, ValueError):
        return 0


def _constant_initial_values(model: Any) -> dict[str, float]:
    """Variable path -> the constant its initializer gives (Zeros, Ones, Constant)."""
    import keras

    values: dict[str, float] = {}
    for layer in model._flatten_layers(include_self=False, recursive=True):
        config = layer.get_config() if hasattr(layer, "get_config") else {}
        for variable in layer.weights:
            short = variable.path.rsplit("/", 1)[-1]
            key = {"kernel": "kernel_initializer", "bias": "bias_initializer", "gamma": "gamma_initializer",
                   "beta": "beta_initializer", "moving_mean": "moving_mean_initializer",
                   "moving_variance": "moving_variance_initializer"}.get(short)
            if key is None or key not in config:
                continue
            try:
                initializer = keras.initializers.get(config[key])
            except (ValueError, TypeError):
                continue
            if isinstance(initializer, keras.initializers.Zeros):
                values[variable.path] = 0.0
            elif isinstance(initializer, keras.initializers.Ones):
                values[variable.path] = 1.0
            elif isinstance(initializer, keras.initializers.Constant):
                values[variable.path] = float(initializer.get_config().get("value", 0.0))
    return values


def fresh_initialization(model: Any, seed: int = FRESH_SEED) -> Any:
    """A new model of the same architecture, freshly initialized with the grader's ``seed``
    (cloned from the model's configuration: in the scorer an allow-listed one)."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.models.clone_model(model)


def training_evidence(model: Any, *, fresh: Any | None = None) -> TrainingEvidence:
    """Gather :class:`TrainingEvidence` for ``model``; ``fresh`` (default: built here with
    :data:`FRESH_SEED`) is a fresh initialization of the same architecture."""
    import numpy as np

    constants = _constant_initial_values(model)
    unchanged = 0
    for variable in model.weights:
        if variable.path in constants:
            unchanged += bool(np.all(np.asarray(variable) == constants[variable.path]))
    if fresh is None:
        try:
            fresh = fresh_initialization(model)
        except Exception:  # a model Keras cannot clone: no ratios
            fresh = None
    ratios: dict[str, float] = {}
    if fresh is not None and len(fresh.weights) == len(model.weights):
        for own, new in zip(model.weights, fresh.weights, strict=True):
            if own.path in constants or len(own.shape) < 2:
                continue
            spread = float(np.std(np.asarray(new)))
            if spread > 0 and math.isfinite(spread):
                ratios[own.path] = round(float(np.std(np.asarray(own))) / spread, 6)
    history = getattr(model, "history", None)
    claimed = len(getattr(history, "epoch", None) or [])
    return TrainingEvidence(iterations=iterations(model), claimed_epochs=claimed,
                            constant_variables=len(constants), unchanged_constant_variables=unchanged,
                            kernel_std_ratio=ratios)
