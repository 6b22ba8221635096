"""Shared fixtures: an isolated cache folder per test session, the real data folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.paths import SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session writes features and the demo into its own cache, never the user's."""
    cache = tmp_path_factory.mktemp("repscope-cache")
    previous = os.environ.get("REPSCOPE_CACHE")
    os.environ["REPSCOPE_CACHE"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("REPSCOPE_CACHE", None)
    else:
        os.environ["REPSCOPE_CACHE"] = previous


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def oasis_root(shared_data: Path) -> Path:
    root = shared_data / "oasis"
    if not (root / "OASIS.csv").is_file():
        pytest.skip(f"{root}/OASIS.csv absent")
    return root
