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


def real_folder(shared_data: Path, name: str, marker: str) -> Path:
    """shared_data/name, skipping the test when its `marker` file is absent."""
    folder = shared_data / name
    if not (folder / marker).is_file():
        pytest.skip(f"{folder}/{marker} absent")
    return folder


@pytest.fixture(scope="session")
def oasis_root(shared_data: Path) -> Path:
    return real_folder(shared_data, "oasis", "OASIS.csv")


@pytest.fixture(scope="session")
def kriegeskorte92(shared_data: Path) -> Path:
    """The 92-image folder with human / monkey IT and behavioural RDMs (../shared/data/kriegeskorte92)."""
    return real_folder(shared_data, "kriegeskorte92", "stimuli.csv")
