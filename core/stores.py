"""Every store under one cache root, each in a folder of its own: `Stores.at(cache_root)`.

The app, the studies, the CLI and the benches open the same bundle, so a result one of them stores is found by
the others under the same key:

- `features`: feature arrays (`<root>/features`, `core.features.store.FeatureStore`);
- `results`: analysis results, JSON + NPY per kind and key (`<root>/results`, `core.features.results.ResultStore`);
- `scores`: small JSON results such as per-layer probe scores, a matrix's controls and noise ceiling
  (`<root>/scores`, `core.features.store.ResultCache`);
- `similarity`: similarity matrices (`<root>/results/similarity_matrices`, `core.analyses.similarity.SimilarityStore`).

Scores were kept in `<root>/results` beside the results before, and matrices in `<root>/similarity` before studies
shared them; `Stores.at` moves them where they belong, once.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from core.analyses.similarity import MATRICES_FOLDER, SimilarityStore
from core.features.results import ResultStore
from core.features.store import FeatureStore, ResultCache

_SCORE_FILES = re.compile(r"^(cache\.db(-wal|-shm)?|[0-9a-f]{2})$")  # a diskcache's database and value folders


@dataclass(frozen=True, eq=False)
class Stores:
    """The stores under one cache root (see module doc)."""

    root: Path
    features: FeatureStore
    results: ResultStore
    scores: ResultCache
    similarity: SimilarityStore

    @classmethod
    def at(cls, root: str | Path) -> "Stores":
        root = Path(root)
        _move_scores(root)
        _move_matrices(root)
        return cls(root, FeatureStore(root / "features"), ResultStore(root / "results"), ResultCache(root / "scores"),
                   SimilarityStore(root / "results" / MATRICES_FOLDER))


def _move_scores(root: Path) -> None:
    """Move a diskcache of scores kept in `<root>/results` (before scores had a folder) to `<root>/scores`, once."""
    earlier, scores = root / "results", root / "scores"
    if scores.exists() or not (earlier / "cache.db").is_file():
        return
    moving = scores.with_name(f".scores.moving.{os.getpid()}")
    moving.mkdir(parents=True)
    for path in earlier.iterdir():
        if _SCORE_FILES.match(path.name):
            path.replace(moving / path.name)
    moving.replace(scores)  # the folder appears whole, or not at all


def _move_matrices(root: Path) -> None:
    """Move similarity matrices of `<root>/similarity` (their folder before studies shared them) to the store's."""
    earlier = root / "similarity"
    if earlier.is_dir():
        folder = root / "results" / MATRICES_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        for path in earlier.glob("*.npz"):
            path.replace(folder / path.name)
