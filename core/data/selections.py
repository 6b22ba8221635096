"""A selection of items saved as a manifest CSV that the sidebar opens as a dataset of its own."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from core.data.datasets import SELECTIONS_FOLDER, ImageSet
from core.paths import atomic_write

__all__ = ["SELECTIONS_FOLDER", "per_class_subset", "save_selection", "selection_manifest"]


def selection_manifest(image_set: ImageSet, rows: Sequence[int]) -> pd.DataFrame:
    """The items `rows` (n,) as manifest rows: an absolute `path`, then every metadata column (image_id, category,
    group, ratings, extras)."""
    if not image_set.has_images:
        raise ValueError(f"{image_set.name} has no images: a manifest dataset needs image files.")
    rows = [int(row) for row in rows]
    if not rows:
        raise ValueError("The selection is empty: select items on a map or in a table first.")
    metadata = image_set.metadata.iloc[rows].reset_index(drop=True)
    paths = [str(Path(image_set.paths[row]).resolve()) for row in rows]
    return pd.concat([pd.DataFrame({"path": paths}), metadata.drop(columns=["path"], errors="ignore")], axis=1)


def save_selection(table: pd.DataFrame, folder: str | Path, name: str) -> Path:
    """Write a manifest table to `<folder>/<safe name>.csv` atomically; returns its path (for `manifest:<path>`).

    A different selection already saved under the name (another user on a shared server) is kept: this one gets
    the name plus a digest of its content."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "selection"
    text = table.to_csv(index=False)
    target = Path(folder) / f"{stem}.csv"
    if target.is_file() and target.read_text() != text:
        target = Path(folder) / f"{stem}_{hashlib.sha256(text.encode()).hexdigest()[:8]}.csv"
    atomic_write(target, lambda temporary: temporary.write_text(text))
    return target


def per_class_subset(image_set: ImageSet, images_per_class: int | None, seed: int = 0) -> np.ndarray:
    """(n,) sorted row indices: at most `images_per_class` random images of each category (all when None)."""
    categories = image_set.metadata["category"].astype(str).to_numpy()
    rng = np.random.default_rng(seed)
    rows = []
    for category in sorted(set(categories)):
        members = np.flatnonzero(categories == category)
        take = len(members) if images_per_class is None else min(images_per_class, len(members))
        rows.extend(rng.choice(members, size=take, replace=False))
    return np.sort(np.array(rows, dtype=int))
