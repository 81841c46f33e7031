"""The graded batch of ``review_batch.py`` as a fixture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from review_batch import make_batch


@pytest.fixture
def graded(tmp_path: Path) -> dict[str, Any]:
    return make_batch(tmp_path / "batch")
