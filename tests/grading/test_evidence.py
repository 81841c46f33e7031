"""Training evidence read from the model (:mod:`convlab.grading.evidence`): the optimizer's step
counter and the weights against their initialization, identical on the live model (``otter run``)
and on the model the scorer rebuilt from the export; a forged history stays a claim."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from convlab.grading import evidence, exporter, score

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _keep_otter(monkeypatch: pytest.MonkeyPatch) -> None:
    import otter

    monkeypatch.setitem(sys.modules, "otter", otter)


def model(epochs: int = 0) -> Any:
    import keras

    keras.utils.set_random_seed(1)
    m = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(2, 3),
                          keras.layers.BatchNormalization(), keras.layers.ReLU(), keras.layers.Flatten(),
                          keras.layers.Dense(2, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if epochs:
        x = np.random.default_rng(0).normal(size=(4, 6, 6, 1)).astype("float32")
        m.fit(x, np.array([0, 1, 0, 1]), epochs=epochs, batch_size=2, verbose=0)
    return m


def forge_history(m: Any, epochs: int) -> None:
    import keras

    record = keras.callbacks.History()
    record.set_model(m)
    record.epoch = list(range(epochs))
    record.history = {"loss": [0.1] * epochs, "accuracy": [0.99] * epochs}
    m.history = record


def reloaded(tmp_path: Path, m: Any) -> Any:
    folder = tmp_path / "export"
    exporter.install({"q": ["m"]}, str(folder))
    exporter.snapshot("q", {"m": m})
    export = score.load_snapshots(folder)
    try:
        env, problems = score._environment(export, "q", ["m"], "нет")
    finally:
        export.close()
    assert problems == {}
    return env["m"]


def test_forged_history_on_an_untrained_model_is_only_a_claim(tmp_path: Path) -> None:
    """Does an untrained model with a forged 8-epoch history show no steps and no moved weights,
    so the claim is inconsistent, on the live model and after the scorer's reload alike?"""
    m = model()
    forge_history(m, 8)
    for candidate in (m, reloaded(tmp_path, m)):
        facts = evidence.training_evidence(candidate)
        assert facts.claimed_epochs == 8 and facts.iterations == 0
        assert facts.constant_variables == 6 and not facts.weights_moved  # 2 biases + BN's 4
        assert not facts.consistent() and not facts.consistent(steps_per_epoch=2)


def test_trained_model_is_consistent_with_its_steps(tmp_path: Path) -> None:
    """Does a model fitted 3 epochs of 2 steps show 6 steps and moved weights, consistent with
    2 steps per epoch but not with 3, on both routes identically?"""
    m = model(epochs=3)
    live = evidence.training_evidence(m)
    back = evidence.training_evidence(reloaded(tmp_path, m))
    assert live.iterations == back.iterations == 6
    assert live.weights_moved and back.weights_moved
    assert live.unchanged_constant_variables == back.unchanged_constant_variables
    assert live.consistent(steps_per_epoch=2) and back.consistent(steps_per_epoch=2)
    assert not back.consistent(steps_per_epoch=3)
    assert len(back.kernel_std_ratio) == 2 and all(r > 0 for r in back.kernel_std_ratio.values())


def test_fresh_initialization_is_the_graders_and_repeatable() -> None:
    """Is the fresh initialization fixed by the grader's seed (the same twice), whatever the
    student's weights?"""
    a = evidence.fresh_initialization(model(epochs=1))
    b = evidence.fresh_initialization(model())
    for x, y in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("lab", ["lab5_cnn", "lab6_nin"])
def test_reference_models_show_training(lab: str) -> None:
    """Do the committed reference models of both labs carry their optimizer steps and moved weights?"""
    import keras

    for path in sorted((ROOT / "solutions" / lab / "artifacts").glob("*.keras")):
        facts = evidence.training_evidence(keras.saving.load_model(path, safe_mode=True))
        assert facts.iterations > 0 and facts.weights_moved, (path.name, facts)
