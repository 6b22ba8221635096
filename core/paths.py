"""Where RepScope keeps its cache: features, results, the demo, Objective lab runs."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """`$REPSCOPE_CACHE`, else `cache/` beside the code (git-ignored)."""
    return Path(os.environ.get("REPSCOPE_CACHE", Path(__file__).resolve().parents[1] / "cache"))
