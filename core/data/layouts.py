"""The OASIS and THINGS folder layouts read into image paths and metadata, without opening any image.

`core.data.datasets` assembles them into an `ImageSet`; every bad input raises `DatasetError` naming the file, line
or concept and what to do.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from core.data.tables import (DatasetError, listing, numeric, plain_name, read_table, read_text, require_columns,
                              require_files, require_filled)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
OASIS_CSV = "OASIS.csv"
OASIS_REQUIRED = ("Theme", "Category", "Valence_mean", "Arousal_mean")
THINGS_UNIQUE_IDS = "unique_id.txt"


def read_oasis(folder: Path) -> tuple[tuple[Path, ...], pd.DataFrame]:
    """OASIS folder -> (N image paths, N-row metadata) without opening any image."""
    csv_file = folder / OASIS_CSV
    if not csv_file.is_file():
        raise DatasetError(f"{csv_file} not found; an OASIS root must contain {OASIS_CSV} and an images/ folder.")
    table = read_table(csv_file)
    require_columns(table, OASIS_REQUIRED, csv_file.name)
    for column in ("Theme", "Category"):
        require_filled(table, column, csv_file.name)
    themes = table["Theme"].astype(str).str.strip()
    duplicated = themes[themes.duplicated()].unique().tolist()
    if duplicated:
        raise DatasetError(f"{csv_file.name}: duplicate Theme(s) {listing(duplicated)}; each row must name its "
                           f"own image.")
    image_dir = folder / "images"
    if not image_dir.is_dir():
        raise DatasetError(f"{image_dir} not found; OASIS images must sit in images/<Theme>.jpg next to {OASIS_CSV}.")
    for row, theme in enumerate(themes):
        plain_name(theme, f"{csv_file.name} line {row + 2}: Theme")
    paths = tuple(image_dir / f"{theme}.jpg" for theme in themes)
    require_files(paths, [f"Theme {theme!r} (line {row + 2})" for row, theme in enumerate(themes)], csv_file.name,
                   "restore the files or remove those rows")
    # The real file's first column has no header; pandas calls it "Unnamed: 0".
    unnamed_id = {table.columns[0]: "oasis_id"} if table.columns[0].startswith("Unnamed:") else {}
    extras = table.drop(columns=list(OASIS_REQUIRED)).rename(columns=unnamed_id)
    metadata = pd.DataFrame({
        "image_id": themes,
        "category": table["Category"].astype(str).str.strip(),
        # "Acorns 1" -> "Acorns": OASIS numbers the images of one theme.
        "group": [re.sub(r"\s*\d+$", "", theme) or theme for theme in themes],
        "valence": numeric(table, "Valence_mean", csv_file.name, themes.map(lambda theme: f"Theme {theme!r}")),
        "arousal": numeric(table, "Arousal_mean", csv_file.name, themes.map(lambda theme: f"Theme {theme!r}")),
    })
    return paths, pd.concat([metadata, extras], axis=1)


def things_concept_ids(folder: Path, image_root: Path, unique_ids: str | Path | None) -> list[str]:
    """Concept ids in embedding row order: the unique-id file (given or root/unique_id.txt) or sorted folders."""
    id_file = Path(unique_ids).expanduser() if unique_ids is not None else folder / THINGS_UNIQUE_IDS
    if unique_ids is not None and not id_file.is_file():
        raise DatasetError(f"unique-id file {id_file} not found; give a text file with one concept id per line.")
    if id_file.is_file():
        ids = [line.strip() for line in read_text(id_file).splitlines() if line.strip()]
        if not ids:
            raise DatasetError(f"unique-id file {id_file} is empty; it needs one concept id per line.")
        return ids
    return sorted(path.name for path in image_root.iterdir() if path.is_dir() and not path.name.startswith("."))


def first_image_per_concept(image_root: Path, concept_ids: list[str]) -> tuple[Path, ...]:
    """(N,) first image file (sorted by name) inside image_root/<concept id>/ for every concept."""
    first_files = {}
    for concept in concept_ids:
        folder = image_root / plain_name(concept, "THINGS concept id")
        files = sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_EXTENSIONS
                       and not path.name.startswith(".")) if folder.is_dir() else []
        first_files[concept] = files[0] if files else None
    missing = [concept for concept, path in first_files.items() if path is None]
    if missing:
        raise DatasetError(f"{len(missing)} concept(s) have no image folder (or an empty one) under {image_root}: "
                           f"{listing(missing)}; add <concept>/<image>.jpg or drop the ids from the unique-id list.")
    return tuple(first_files[concept] for concept in concept_ids)
