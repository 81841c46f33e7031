"""Shared test setup: offline datasets, headless matplotlib, quiet TensorFlow."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    from convlab import datasets

    datasets.absolutize_env()


@pytest.fixture(scope="session")
def datasets_root() -> Path:
    """The offline datasets folder (``CONVLAB_DATASETS``); tests needing it skip without it."""
    from convlab import datasets

    root = datasets.datasets_root()
    if root is None:
        pytest.skip(f"{datasets.ENV_VAR} is not set (see README: Tests)")
    return root
