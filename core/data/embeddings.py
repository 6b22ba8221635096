"""Representations without images: named (N, d) matrices of the same N items, their ids and categories.

`read_representations` reads what an `embeddings:` dataset holds (core.data.datasets builds the
ImageSet): every .npy/.txt/.csv matrix of a folder or a list of files, each (N, d) or GWTune's
(1, N, d), named by its file stem. A one-hot category CSV in the folder (an id column and 0/1
columns, like THINGS' category_mat_manual_preprocessed.csv) or an id,category CSV is the
categories, not a matrix. The THINGS loader shares the embedding and category readers.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.tables import DatasetError, MissingPathError, listing, read_table, read_text

MATRIX_SUFFIXES = (".npy", ".txt", ".csv")
NO_CATEGORY = "uncategorised"
ITEM_ID_FORMAT = "item_{:04d}"  # ids of items that no file names


@dataclass(frozen=True, eq=False)
class Reference:
    """A named (N, d) float32 representation of a dataset's N items (a human embedding, a model's features)."""

    name: str
    embedding: np.ndarray


@dataclass(frozen=True, eq=False)
class Representations:
    """What an `embeddings:` dataset holds: (N,) item ids, optional (N,) primary and ';'-joined categories,
    and references of N rows each, in the items' order."""

    name: str
    root: Path
    ids: list[str]
    categories: tuple[list[str], list[str]] | None
    references: tuple[Reference, ...]


def read_representations(location: str | Path, *, categories: str | Path | None = None,
                         ids: str | Path | None = None) -> Representations:
    """A folder or comma-separated files of (N, d) / (1, N, d) matrices -> Representations of N items."""
    name, root, files, found_category_files = _matrix_files(str(location))
    matrices = {path: read_matrix(path) for path in files}
    sizes = {path: len(matrix) for path, (matrix, _) in matrices.items()}
    if len(set(sizes.values())) > 1:
        raise DatasetError("the representation files hold different numbers of items: "
                           + ", ".join(f"{path.name}: {n}" for path, n in sizes.items())
                           + "; every file needs one row per item, the same N items in each.")
    n_items = next(iter(sizes.values()))
    category_file = Path(categories).expanduser() if categories is not None else None
    if category_file is None and len(found_category_files) > 1:
        raise DatasetError(f"{root} holds several category files ({listing([p.name for p in found_category_files])}); "
                           f"name the one to use with |categories=<file>.")
    if category_file is None and found_category_files:
        category_file = found_category_files[0]
    if category_file is not None and not category_file.is_file():
        raise DatasetError(f"category file {category_file} not found; give a one-hot CSV (id column + 0/1 columns) "
                           f"or an id,category CSV.")
    item_ids = _item_ids(ids, category_file, matrices, n_items)
    references = tuple(Reference(path.stem, _in_item_order(matrix, row_ids, item_ids, path))
                       for path, (matrix, row_ids) in matrices.items())
    labels = None if category_file is None else read_categories(category_file, item_ids)
    return Representations(name, root, item_ids, labels, references)


def read_matrix(path: Path) -> tuple[np.ndarray, list[str] | None]:
    """.npy, whitespace .txt or numeric .csv (optional id first column, optional header) ->
    ((N, d) float32, (N,) row ids or None); (1, N, d) arrays are squeezed to (N, d)."""
    row_ids = None
    try:
        if path.suffix.lower() == ".npy":
            array = np.load(path, allow_pickle=False)
        elif path.suffix.lower() == ".csv":
            array, row_ids = _read_matrix_csv(path)
        else:
            array = np.loadtxt(path, ndmin=2)
    except (ValueError, OSError, EOFError) as error:  # FileNotFoundError included
        raise DatasetError(f"cannot read embedding {path} ({error}); give a .npy array, a whitespace-separated "
                           f"text matrix or a numeric CSV (item id first column allowed).") from error
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise DatasetError(f"embedding {path} holds {array.dtype} values, not numbers; save a float array.")
    array = array[0] if array.ndim == 3 and array.shape[0] == 1 else array
    if array.ndim != 2 or 0 in array.shape:
        raise DatasetError(f"embedding {path} has shape {array.shape}; expected (N, d) or (1, N, d) with N, d ≥ 1.")
    if not np.isfinite(array).all():
        raise DatasetError(f"embedding {path} contains NaN or infinite values (row(s) "
                           f"{listing(np.flatnonzero(~np.isfinite(array).all(axis=1)))}); fix or replace the file.")
    return array.astype(np.float32), row_ids


def load_embedding(path: Path, rows: int) -> np.ndarray:
    """.npy (N, d) / (1, N, d), whitespace .txt or numeric .csv -> (N, d) float32, N checked against `rows`."""
    matrix, _ = read_matrix(path)
    if matrix.shape[0] != rows:
        raise DatasetError(f"embedding {path} has {matrix.shape[0]} rows but the dataset has {rows} images; "
                           f"rows must follow the dataset's image order one to one.")
    return matrix


def read_categories(path: Path, item_ids: list[str]) -> tuple[list[str], list[str]]:
    """One-hot CSV / THINGS TSV (see things_categories) or an id,category CSV -> (N,) first, (N,) ';'-joined."""
    table = read_table(path)
    if len(table.columns) != 2 or _binary_columns(table.iloc[:, 1:]):
        return things_categories(path, item_ids)
    keys, values = (table.iloc[:, column].astype(str).str.strip() for column in (0, 1))
    category_of = dict(zip(keys, values.where(table.iloc[:, 1].notna() & (values != ""), NO_CATEGORY)))
    missing = [item for item in item_ids if item not in category_of]
    if missing:
        raise DatasetError(f"category file {path} has no row for {len(missing)} item(s): {listing(missing)}; "
                           f"add them or use the category file that matches these ids.")
    primary = [category_of[item] for item in item_ids]
    return primary, primary


def things_categories(path: Path, concept_ids: list[str]) -> tuple[list[str], list[str]]:
    """Category file (one-hot CSV by unique id, or THINGS TSV by Word) -> (N,) first category, (N,) ';'-joined all."""
    if not path.is_file():
        raise DatasetError(f"category file {path} not found; give a one-hot CSV indexed by unique id or a THINGS "
                           f"category TSV.")
    table = read_table(path)
    key_column = next((column for column in table.columns if column.lower() == "word"), table.columns[0])
    table = table[table[key_column].notna() & (table[key_column].astype(str).str.strip() != "")]
    # Definitions and other text columns are not categories; 0/1 columns (blank = 0) are.
    flags = table.drop(columns=[key_column]).apply(pd.to_numeric, errors="coerce")
    category_columns = [column for column in flags.columns if table[column].notna().any()
                        and flags[column].fillna(0).isin((0, 1)).all() and flags[column].notna().sum()
                        == table[column].notna().sum()]
    if not category_columns:
        raise DatasetError(f"category file {path} has no 0/1 category columns; found {list(table.columns)}.")
    keys = _homonym_keys(table[key_column].astype(str))
    row_of = {key: row for row, key in enumerate(keys)}
    matched = [row_of.get(_normalise_concept(concept)) for concept in concept_ids]
    missing = [concept for concept, row in zip(concept_ids, matched) if row is None]
    if missing:
        raise DatasetError(f"category file {path} has no row for {len(missing)} concept(s): {listing(missing)}; "
                           f"use the category file that matches these unique ids.")
    memberships = flags[category_columns].fillna(0).to_numpy()[matched] == 1
    listed = [[name for name, member in zip(category_columns, row) if member] for row in memberships]
    return [names[0] if names else NO_CATEGORY for names in listed], [";".join(names) for names in listed]


def _matrix_files(location: str) -> tuple[str, Path, list[Path], list[Path]]:
    """Spec argument -> (dataset name, root folder, matrix files, category files found in the folder)."""
    parts = [Path(part.strip()).expanduser().resolve() for part in location.split(",") if part.strip()]
    if not parts:
        raise DatasetError("the embeddings spec names no folder or file; write embeddings:<folder> or "
                           "embeddings:<file1>,<file2>.")
    if len(parts) == 1 and parts[0].is_dir():
        folder = parts[0]
        candidates = sorted((path for path in folder.iterdir() if path.is_file() and not path.name.startswith(".")
                             and path.suffix.lower() in MATRIX_SUFFIXES), key=lambda path: path.name)
        if not candidates:
            raise DatasetError(f"folder {folder} holds no {'/'.join(MATRIX_SUFFIXES)} files; put one matrix per "
                               f"representation there, (N, d) or (1, N, d).")
        name = f"embeddings:{folder.name}"
    else:
        absent = [path for path in parts if not path.is_file()]
        if absent:
            message = (f"representation file(s) {listing(absent)} not found; give an existing folder or "
                       f"comma-separated {'/'.join(MATRIX_SUFFIXES)} files.")
            gone = [path for path in absent if not path.exists()]
            raise MissingPathError(message, gone[0]) if gone else DatasetError(message)
        wrong = [path.name for path in parts if path.suffix.lower() not in MATRIX_SUFFIXES]
        if wrong:
            raise DatasetError(f"{listing(wrong)}: not a {'/'.join(MATRIX_SUFFIXES)} file; representations are "
                               f".npy arrays, whitespace .txt or numeric .csv matrices.")
        folder, candidates = parts[0].parent, parts
        name = "embeddings:" + ",".join(path.stem for path in parts)
    category_files = [path for path in candidates if _is_category_file(path)]
    files = [path for path in candidates if path not in category_files]
    if not files:
        raise DatasetError(f"{folder} holds no representation matrix, only the category file(s) "
                           f"{listing([path.name for path in category_files])}; add a (N, d) .npy/.txt/.csv matrix.")
    stems = pd.Series([path.stem for path in files])
    clashing = stems[stems.duplicated(keep=False)]
    if len(clashing):
        raise DatasetError(f"files {listing([files[row].name for row in clashing.index])} share the name "
                           f"{clashing.iloc[0]!r}; representations are named by file stem, so rename one.")
    return name, folder, files, category_files


def _is_category_file(path: Path) -> bool:
    """A CSV with a header, a non-numeric id column and 0/1 columns (one-hot) or one text column (id,category)."""
    if path.suffix.lower() != ".csv":
        return False
    try:
        table = read_table(path)
    except DatasetError:
        return False
    if len(table.columns) < 2 or not len(table) or _numbers(table.iloc[:, 0]).notna().all():
        return False
    rest = table.iloc[:, 1:]
    return _binary_columns(rest) or (len(rest.columns) == 1 and _numbers(rest.iloc[:, 0]).isna().all())


def _binary_columns(table: pd.DataFrame) -> bool:
    """True when every column holds only 0 and 1 (blank = 0)."""
    flags = table.apply(pd.to_numeric, errors="coerce")
    return bool((flags.notna() | table.isna()).all().all() and flags.fillna(0).isin((0, 1)).all().all())


def _numbers(column: pd.Series) -> pd.Series:
    return pd.to_numeric(column, errors="coerce")


def _read_matrix_csv(path: Path) -> tuple[np.ndarray, list[str] | None]:
    """Numeric CSV -> ((rows, columns) float64, (rows,) ids when the first column is not numeric)."""
    cells = pd.read_csv(io.StringIO(read_text(path)), header=None, dtype=str, keep_default_na=False)
    cells = cells.apply(lambda column: column.str.strip())
    # A header row: names over the columns, or pandas' `to_csv` header (an empty first cell over the index).
    if cells.shape[1] > 1 and (_numbers(cells.iloc[0, 1:]).isna().all() or cells.iat[0, 0] == ""):
        cells = cells.iloc[1:].reset_index(drop=True)
    row_ids = None
    if len(cells) and _numbers(cells.iloc[:, 0]).isna().any():
        row_ids, cells = cells.iloc[:, 0].tolist(), cells.iloc[:, 1:]
    values = cells.apply(_numbers)
    bad = (values.isna() & (cells != "")).to_numpy()
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise ValueError(f"{cells.iat[row, column]!r} in row {row + 1}, column {column + 1} is not a number")
    return values.to_numpy(dtype=np.float64), row_ids


def _item_ids(ids: str | Path | None, category_file: Path | None, matrices: dict, n_items: int) -> list[str]:
    """(N,) item ids: the ids file, else the category file's first column, else a CSV matrix's ids, else item_0000…"""
    if ids is not None:
        source = Path(ids).expanduser()
        if not source.is_file():
            raise DatasetError(f"id file {source} not found; give a text file with one item id per line.")
        found = [line.strip() for line in read_text(source).splitlines() if line.strip()]
    elif category_file is not None:
        source, table = category_file, read_table(category_file)
        column = table.iloc[:, 0]
        blank = np.flatnonzero(column.isna() | (column.astype(str).str.strip() == ""))
        if len(blank):
            raise DatasetError(f"category file {source}: line(s) {listing(blank + 2)} have no item id in the first "
                               f"column; fill them in, or give the ids with |ids=<file>.")
        found = column.astype(str).str.strip().tolist()
    else:
        source, found = next(((path, row_ids) for path, (_, row_ids) in matrices.items() if row_ids is not None),
                             (None, [ITEM_ID_FORMAT.format(row) for row in range(n_items)]))
    if source is not None:
        _require_unique(found, source)
    if len(found) != n_items:
        raise DatasetError(f"{source} lists {len(found)} item ids but every representation has {n_items} rows; "
                           f"it needs one id per item, in the matrices' row order.")
    return found


def _in_item_order(matrix: np.ndarray, row_ids: list[str] | None, item_ids: list[str], path: Path) -> np.ndarray:
    """(N, d) rows of a matrix reordered to `item_ids` when its CSV names each row's id, else as they are."""
    if row_ids is None or row_ids == item_ids:
        return matrix
    _require_unique(row_ids, path)
    row_of = {item: row for row, item in enumerate(row_ids)}
    missing = [item for item in item_ids if item not in row_of]
    if missing:
        raise DatasetError(f"embedding {path} has no row for {len(missing)} item id(s): {listing(missing)}; its first "
                           f"column must hold the same ids as the dataset's items.")
    return matrix[[row_of[item] for item in item_ids]]


def _require_unique(ids: list[str], source: Path) -> None:
    duplicated = pd.Series(ids)[pd.Series(ids).duplicated()].unique().tolist()
    if duplicated:
        raise DatasetError(f"{source}: duplicate item ids {listing(duplicated)}; every item needs a unique id.")


def _normalise_concept(name: str) -> str:
    """'Air_Conditioner', 'flip-flop ' -> 'air conditioner', 'flip flop': THINGS ids vs category-file words."""
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


def _homonym_keys(words: pd.Series) -> list[str]:
    """Normalised words; a word listed k times becomes word1..wordk, the THINGS unique-id rule ("bat1", "bat2")."""
    normalised = pd.Series([_normalise_concept(word) for word in words])
    occurrence = (normalised.groupby(normalised).cumcount() + 1).astype(str)
    return normalised.where(~normalised.duplicated(keep=False), normalised + occurrence).tolist()
