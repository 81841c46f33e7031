"""tools/run_master.py: the master notebook's code as a script, for training on another machine."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("run_master", ROOT / "tools" / "run_master.py")
run_master = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_master)


def test_code_cells_skip_tests_otter_and_magics_and_set_the_seed() -> None:
    """Are the test cells, otter lines and magics left out, and SEED replaced?"""
    cells = run_master.code_cells("lab6_nin", None, 7)
    code = "\n".join(cells)
    assert "SEED = 7" in code and "SEED = 42" not in code
    assert "BEGIN TEST CONFIG" not in code and "grader." not in code and "import otter" not in code
    assert "%%time" not in code
    assert "convlab.setup()" in code and "history = nin.fit(" in code


def test_scenario_edits_apply_or_stop() -> None:
    """Does --scenario apply the scenario's edits, and refuse one that no longer applies?"""
    code = "\n".join(run_master.code_cells("lab6_nin", "dense_head", None))
    assert "tf.keras.layers.Flatten()" in code
    create_nin = code.split("def create_nin")[1].split("return model")[0]
    assert "tf.keras.layers.GlobalAveragePooling2D()" not in create_nin
    with pytest.raises(KeyError):
        run_master.code_cells("lab6_nin", "no_such_scenario", None)


def test_tensorflow_shim_serves_keras(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without TensorFlow (forced here), is ``tf.keras`` Keras and are the notebook's other
    ``tf`` calls served?"""
    import keras

    monkeypatch.setenv("CONVLAB_TF_SHIM", "1")
    tf = run_master.tensorflow_shim()
    assert tf.keras is keras and tf.random is keras.random
    tf.config.experimental.enable_op_determinism()
    monkeypatch.delenv("CONVLAB_TF_SHIM")
    assert run_master.tensorflow_shim() is None  # TensorFlow is installed here
