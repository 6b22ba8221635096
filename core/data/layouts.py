"""The on-disk layouts (OASIS, THINGS, category folders, manifest CSVs) read into image paths and metadata, without
opening any image.

`core.data.datasets` assembles them into an `ImageSet`; every bad input raises `DatasetError` naming the file, line
or concept and what to do.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from core.data.embeddings import Reference, load_embedding, things_categories
from core.data.roots import DataRoots
from core.data.tables import (DatasetError, MissingPathError, absolute, listing, numeric, plain_name, read_table,
                              read_text, require_columns, require_files, require_filled)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
OASIS_CSV = "OASIS.csv"
OASIS_REQUIRED = ("Theme", "Category", "Valence_mean", "Arousal_mean")
THINGS_UNIQUE_IDS = "unique_id.txt"
THINGS_IMAGE_FOLDERS = ("object_images", "images")
AFFECT_COLUMNS = ("valence", "arousal")
DEFAULT_CATEGORY = "all"


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


def read_things(folder: Path, unique_ids: str | Path | None = None, embedding: str | Path | None = None,
                categories: str | Path | None = None) -> tuple[tuple[Path, ...], pd.DataFrame, tuple[Reference, ...]]:
    """THINGS root -> (N concepts' first image paths, N-row metadata, the optional (N, d) embedding as a Reference)."""
    image_root = next((folder / name for name in THINGS_IMAGE_FOLDERS if (folder / name).is_dir()), None)
    if image_root is None:
        raise DatasetError(f"{folder} has no {' or '.join(n + '/' for n in THINGS_IMAGE_FOLDERS)} folder; "
                           f"expected the THINGS layout {folder}/object_images/<concept>/<image>.jpg.")
    concept_ids = things_concept_ids(folder, image_root, unique_ids)
    paths = first_image_per_concept(image_root, concept_ids)
    metadata = pd.DataFrame({"image_id": concept_ids, "category": DEFAULT_CATEGORY, "group": concept_ids})
    if categories is not None:
        primary, listed = things_categories(Path(categories).expanduser(), concept_ids)
        metadata["category"] = primary
        metadata["categories"] = listed
    references = ()
    if embedding is not None:
        embedding_path = Path(embedding).expanduser()
        references = (Reference(embedding_path.stem, load_embedding(embedding_path, len(concept_ids))),)
    return paths, metadata, references


def read_image_folder(folder: Path) -> tuple[tuple[Path, ...], pd.DataFrame]:
    """folder/<category>/<image> tree -> (N paths, N-row metadata: image_id = relative path without extension,
    group = category)."""
    relative = sorted((path.relative_to(folder) for path in folder.rglob("*")
                       if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
                       and not any(part.startswith(".") for part in path.relative_to(folder).parts)),
                      key=lambda path: path.as_posix())
    if not relative:
        raise DatasetError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) found under {folder}; "
                           f"expected {folder}/<category>/<image>.")
    category = [path.parts[0] if len(path.parts) > 1 else DEFAULT_CATEGORY for path in relative]
    metadata = pd.DataFrame({"image_id": [path.with_suffix("").as_posix() for path in relative],
                             "category": category, "group": category})
    return tuple(folder / path for path in relative), metadata


def read_manifest(csv_file: Path, roots: DataRoots) -> tuple[tuple[Path, ...], pd.DataFrame]:
    """Manifest CSV (absolute path) -> (N paths, N-row metadata); every row's path checked against `roots` before
    any image is looked at."""
    if not csv_file.is_file():
        message = f"manifest {csv_file} not found; give the path of a CSV with a `path` column."
        raise DatasetError(message) if csv_file.exists() else MissingPathError(message, csv_file)
    table = read_table(csv_file)
    require_columns(table, ("path",), csv_file.name)
    require_filled(table, "path", csv_file.name)
    paths = tuple(absolute(csv_file.parent, value) for value in table["path"].astype(str).str.strip())
    for line, path in enumerate(paths, start=2):
        roots.check(path, f"{csv_file.name} line {line}: path")
    require_files(paths, [f"line {row + 2}" for row in range(len(paths))], csv_file.name,
                  "fix the `path` values (relative to the CSV's folder or absolute)")
    metadata = table.copy()
    defaults = {"category": lambda: DEFAULT_CATEGORY, "group": lambda: metadata["category"],
                "image_id": lambda: [path.stem for path in paths]}
    for column, default in defaults.items():
        if column in table.columns:
            require_filled(table, column, csv_file.name)
        else:
            metadata[column] = default()
    for column in AFFECT_COLUMNS:
        if column in table.columns:
            metadata[column] = numeric(table, column, csv_file.name, table["path"].astype(str))
    return paths, metadata
