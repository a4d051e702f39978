"""Shared test fixtures: paths to the repo, its specs, and the optional ../shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path | None:
    configured = os.environ.get("FAIRSPEC_SHARED")
    candidate = Path(configured) if configured else REPO_ROOT.parent / "shared"
    return candidate if (candidate / "data").is_dir() else None


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real benchmark copies and the authors' records); skip when absent."""
    shared = _shared_dir()
    if shared is None:
        pytest.skip("../shared/data is not present (a user's fresh clone has none)")
    return shared / "data"
