"""Give trained-model files replayed from another backend the optimizer state their training had.

``tools/run_master.py --weights-from`` files weights trained elsewhere (Keras on JAX) under
TensorFlow's fingerprints; the optimizer state of that training (its step count, the learning
rate the schedule left) is not carried over, so such a file looks untrained to the checks'
training evidence (``checks.nin.trained_as_prescribed``). This fills it from the run's own
record beside it (``<key>.history.json``): steps = epochs run × ``params.steps``, learning rate =
the last one logged. Files whose optimizer already made steps are left as they are.

    python tools/fill_optimizer_state.py tests/fixtures/lab6_nin/artifacts
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def fill(folder: Path) -> list[str]:
    import keras
    import numpy as np

    done = []
    for path in sorted(folder.glob("*.keras")):
        record = json.loads(path.with_suffix(".history.json").read_text())
        steps = len(record.get("epoch") or []) * int((record.get("params") or {}).get("steps") or 0)
        rates = (record.get("history") or {}).get("learning_rate") or []
        model = keras.saving.load_model(path)
        optimizer = model.optimizer
        if optimizer is None or steps == 0:
            continue
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        if int(np.asarray(optimizer.iterations)) != 0:
            continue
        optimizer.iterations.assign(steps)
        if rates:
            optimizer.learning_rate = float(rates[-1])
        model.save(path)
        done.append(f"{path.name}: {steps} steps, learning rate {rates[-1] if rates else 'unchanged'}")
    return done


if __name__ == "__main__":
    print("\n".join(fill(Path(sys.argv[1]))))
