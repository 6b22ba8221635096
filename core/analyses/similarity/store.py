"""Similarity matrices on disk: one `.npz` per matrix, keyed by its inputs' fingerprints and every setting.

A page or a headless run that asks for the same matrix again reads it instead of recomputing it. The file is
written atomically (core.paths.atomic_write) and holds only arrays and a JSON header: nothing is unpickled.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Mapping

import numpy as np

from core.analyses.similarity.matrices import SimilarityMatrix
from core.analyses.similarity.measures import SimilaritySettings
from core.paths import atomic_write

MATRICES_FOLDER = "similarity_matrices"  # under cache/results: the page's and the studies' stored matrices


def matrix_key(rows: Mapping[str, str], columns: Mapping[str, str], measures, settings: SimilaritySettings,
               n_bootstrap: int, seed: int) -> str:
    """24 hex digits over (name, fingerprint) of rows and columns, measures and settings: same inputs, same key.

    Its JSON keeps the fields' order rather than sorting them as `core.keys.digest` does: stored matrices, their
    controls and ceilings, and the study steps that name them keep the keys they were stored under."""
    parts = json.dumps({"rows": list(rows.items()), "columns": list(columns.items()), "measures": list(measures),
                        "settings": asdict(settings), "n_bootstrap": n_bootstrap, "seed": seed})
    return hashlib.sha256(parts.encode()).hexdigest()[:24]


class SimilarityStore:
    """`root/<key>.npz` files of SimilarityMatrix results."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.npz"

    def get(self, key: str) -> SimilarityMatrix | None:
        """The stored matrix, or None when there is none (or it cannot be read: then it is recomputed)."""
        try:
            with np.load(self.path(key), allow_pickle=False) as stored:
                header = json.loads(str(stored["header"]))
                resamples = stored["resamples"] if "resamples" in stored.files else None
                values = stored["values"]
        except (OSError, KeyError, ValueError):
            return None
        return SimilarityMatrix(tuple(header["measures"]), tuple(header["rows"]), tuple(header["columns"]), values,
                                SimilaritySettings(**header["settings"]), header["n_items"], header["fingerprints"],
                                header["n_bootstrap"], header["seed"], resamples, tuple(header["warnings"]),
                                tuple(header.get("rdm_only", ())))

    def put(self, key: str, matrix: SimilarityMatrix) -> None:
        header = {"measures": matrix.measures, "rows": matrix.rows, "columns": matrix.columns,
                  "settings": asdict(matrix.settings), "n_items": matrix.n_items,
                  "fingerprints": dict(matrix.fingerprints), "n_bootstrap": matrix.n_bootstrap, "seed": matrix.seed,
                  "warnings": matrix.warnings, "rdm_only": matrix.rdm_only}
        arrays = {"header": np.array(json.dumps(header)), "values": matrix.values}
        if matrix.resamples is not None:
            arrays["resamples"] = matrix.resamples
        atomic_write(self.path(key), lambda temporary: np.savez(temporary, **arrays))
