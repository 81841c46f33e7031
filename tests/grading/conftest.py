"""Fixtures shared by the grading tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def base() -> Iterator[Path]:
    """A base for sandboxes that the sandbox user can pass through (pytest's tmp_path is 0o700)."""
    path = Path(tempfile.mkdtemp(prefix="convlab-sandbox-test-", dir="/tmp"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)
