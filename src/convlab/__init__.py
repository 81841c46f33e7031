"""convlab: auto-graded convolutional-network labs on Keras and otter-grader."""

from __future__ import annotations

__version__ = "0.1.0"


def setup(artifacts_dir: str = "artifacts") -> None:
    """Prepare a lab notebook's kernel (called from the notebooks' setup cell).

    * ``keras.datasets`` loaders read the local copies when ``CONVLAB_DATASETS`` is set;
    * ``Model.fit`` keeps trained models in ``artifacts_dir`` and does not retrain a model
      whose weights are already there (see :mod:`convlab.artifacts`).
    """
    from convlab import artifacts, datasets

    datasets.install()
    artifacts.enable(artifacts_dir)
