"""An otter plugin that closes two holes of ``otter run`` before anything of a submission runs.

Listed in ``assignments/assign_config.yml`` (``plugins:``), it is installed in the grading
environment with this package's wheel. Its ``before_grading`` hook runs in the grader process
after the submission is unpacked and *before* otter unpickles ``.OTTER_LOG``:

* it deletes ``.OTTER_LOG`` from the submission, so a crafted pickle in a zip is never loaded
  (otter loads it with dill whenever it exists, even with ``grade_from_log: false``);
* it gives every notebook cell a wall-clock limit (``cell_timeout``, seconds; default 1800),
  interrupting a hanging cell and carrying on, since ``otter run`` has no timeout of its own;
* it keeps TensorFlow's C++ logging quiet in the grading kernel;
* with ``no_train: true`` (labs graded only from submitted weights, e.g. lab6_nin) it sets
  ``CONVLAB_NO_TRAIN=1``, so a fit without a submitted trained model fails instead of training.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from otter.plugins import AbstractOtterPlugin

DEFAULT_CELL_TIMEOUT = 1800


class GradingGuard(AbstractOtterPlugin):
    """Drop the submitted otter log and limit each cell's run time."""

    def before_grading(self, config: Any) -> None:
        submission = Path(self.submission_path)
        folder = submission if submission.is_dir() else submission.parent
        for log in {Path.cwd() / ".OTTER_LOG", folder / ".OTTER_LOG"}:
            if log.is_file() or log.is_symlink():
                log.unlink()
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        settings = self.plugin_config or {}
        if settings.get("no_train"):
            from convlab.artifacts import ENV_NO_TRAIN

            os.environ[ENV_NO_TRAIN] = "1"
        timeout = int(settings.get("cell_timeout", DEFAULT_CELL_TIMEOUT))
        limit_cells(timeout)


def limit_cells(timeout: int) -> None:
    """Make nbconvert's ExecutePreprocessor (used by otter's grading) time out each cell."""
    import nbconvert.preprocessors as preprocessors

    base = preprocessors.ExecutePreprocessor
    if getattr(base, "_convlab_timeout", None) == timeout:
        return
    original = getattr(base, "_convlab_original", base)

    class TimedExecutePreprocessor(original):  # type: ignore[misc, valid-type]
        _convlab_timeout = timeout
        _convlab_original = original

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.timeout = timeout
            self.interrupt_on_timeout = True

    preprocessors.ExecutePreprocessor = TimedExecutePreprocessor  # type: ignore[misc]  # otter's own class, replaced
