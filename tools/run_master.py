"""Run a lab's master notebook as a plain script, to train its models on another machine.

Training the NiN lab's networks takes about 45 minutes on a 2-core CPU. On a GPU machine the
same code trains in seconds, with Keras 3 on any backend (``KERAS_BACKEND=jax`` where
TensorFlow is not installed: ``import tensorflow as tf`` is then served by a small shim whose
``tf.keras`` is Keras itself). This script executes the master's code cells in order, in one
namespace, without Jupyter or otter:

* cells of hidden/public tests, ``import otter``, ``grader.*`` lines and IPython magics are
  skipped;
* ``convlab.setup()`` runs as in the notebook, so every ``fit`` lands in ``--artifacts``
  under the fingerprint the notebook computes; copy that folder's files into the
  notebook's ``artifacts/`` (or a scenario fixture folder) and the notebook reuses them;
* ``--scenario`` applies the edits of a scenario of ``tests/fixtures/<lab>/scenarios.yml``
  first; ``--seed`` replaces ``SEED = ...``; ``--until`` stops after the first cell that
  contains the given text;
* ``--weights-from DIR`` trains nothing: each ``fit`` loads the weights and history that a run
  on another backend saved in ``DIR`` for the same notebook variable, and the artifact is
  saved under this backend's fingerprint (fingerprints differ between backends because
  layer configs do);
* ``--evaluate VAR`` appends one JSON line (seed, accuracy of ``VAR`` on the test split,
  training seconds, backend) to ``--log``, for calibration runs.

So the GPU run trains, and a run of ``--weights-from`` on the TensorFlow machine files the
weights where the notebook will look for them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SKIPPED_LINE = re.compile(r"^\s*(%|!|import otter\b|grader\s*=|grader\.)")


def tensorflow_shim() -> types.ModuleType | None:
    """A stand-in for ``tensorflow`` where it is not installed (None where it is).

    It is given to the notebook's code only: registering it in ``sys.modules`` would make
    Keras believe TensorFlow is there.
    """
    try:
        if os.environ.get("CONVLAB_TF_SHIM") != "1":  # "1": use the shim anyway (tests)
            import tensorflow  # noqa: F401
            return None
    except ImportError:
        pass
    import keras

    tf = types.ModuleType("tensorflow")
    tf.__version__ = f"shim ({keras.backend.backend()} backend)"
    tf.keras = keras
    tf.random = keras.random  # uniform, normal: the same signatures as tf.random's
    tf.config = types.SimpleNamespace(
        experimental=types.SimpleNamespace(enable_op_determinism=lambda: None))
    return tf


def code_cells(lab: str, scenario: str | None, seed: int | None) -> list[str]:
    master = json.loads((ROOT / "assignments" / lab / f"{lab}.ipynb").read_text())
    cells = ["".join(c["source"]) for c in master["cells"] if c["cell_type"] == "code"]
    if scenario:
        import yaml

        spec = yaml.safe_load((ROOT / "tests" / "fixtures" / lab / "scenarios.yml").read_text())
        for edit in spec["scenarios"][scenario].get("edits", []):
            hits = [i for i, text in enumerate(cells) if edit["cell"] in text]
            if len(hits) != 1 or edit["old"] not in cells[hits[0]]:
                raise SystemExit(f"{scenario}: edit {edit['old']!r} does not apply")
            cells[hits[0]] = cells[hits[0]].replace(edit["old"], edit["new"])
    if seed is not None:
        cells = [re.sub(r"^SEED = \d+", f"SEED = {seed}", text, flags=re.M) for text in cells]
    runnable = []
    for text in cells:
        if text.lstrip().startswith('""" # BEGIN TEST CONFIG'):
            continue
        runnable.append("\n".join(line for line in text.splitlines()
                                  if not SKIPPED_LINE.match(line)))
    return runnable


def replay_fit(source: Path, namespace: dict[str, Any]) -> Any:
    """A ``Model.fit`` stand-in that loads the weights trained for the same variable."""
    import keras

    manifest = json.loads((source / "manifest.json").read_text())

    def fit(model: Any, *args: Any, **kwargs: Any) -> Any:
        names = {name for name, value in namespace.items() if value is model}
        keys = [key for key, entry in manifest.items() if names & set(entry["variables"])]
        if len(keys) != 1:
            raise SystemExit(f"{source}: no single trained model for {sorted(names)}")
        trained = keras.saving.load_model(source / f"{keys[0]}.keras", compile=False)
        model.set_weights(trained.get_weights())
        record = json.loads((source / f"{keys[0]}.history.json").read_text())
        history = keras.callbacks.History()
        history.set_model(model)
        history.history, history.epoch = record["history"], record["epoch"]
        history.params = record.get("params", {})
        model.history = history
        print(f"weights of {sorted(names)} from {source / keys[0]}.keras")
        return history

    return fit


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lab")
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--scenario")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--until")
    parser.add_argument("--weights-from", type=Path)
    parser.add_argument("--evaluate")
    parser.add_argument("--log", type=Path)
    args = parser.parse_args(argv)

    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ["CONVLAB_ARTIFACTS"] = str(args.artifacts.resolve())
    args.artifacts.mkdir(parents=True, exist_ok=True)
    shim = tensorflow_shim()
    import numpy as np

    namespace: dict[str, Any] = {"__name__": "__main__"}
    if shim is not None:
        namespace["tf"] = shim
    start = time.perf_counter()
    for text in code_cells(args.lab, args.scenario, args.seed):
        if shim is not None:
            text = re.sub(r"^import tensorflow as tf$", "", text, flags=re.M)
        exec(compile(text, f"<{args.lab}>", "exec"), namespace)
        if args.weights_from and "convlab.setup()" in text:
            from convlab import artifacts

            artifacts._state["original_fit"] = replay_fit(args.weights_from, namespace)
        if args.until and args.until in text:
            break
    seconds = time.perf_counter() - start
    if args.evaluate:
        import keras

        model = namespace[args.evaluate]
        predictions = model.predict(namespace["x_test"], batch_size=1000, verbose=0)
        accuracy = float(np.mean(np.argmax(predictions, axis=1)
                                 == np.asarray(namespace["y_test"]).reshape(-1)))
        record = {"model": args.evaluate, "seed": args.seed, "scenario": args.scenario,
                  "epochs": namespace.get("EPOCHS"), "test_accuracy": round(accuracy, 4),
                  "seconds": round(seconds, 1), "backend": keras.backend.backend()}
        print(json.dumps(record), flush=True)
        if args.log:
            with args.log.open("a") as log:
                log.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
