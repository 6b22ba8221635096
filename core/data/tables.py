"""Reading users' tables and files, with errors that name the file, line, column or value and say what to do."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

LISTED_AT_MOST = 5  # a message lists this many bad rows, then "(and K more)"


class DatasetError(ValueError):
    """Bad dataset input; the message names the file, row or column and says what to do."""


class MissingPathError(DatasetError):
    """A dataset's folder or file that does not exist on this machine; `path` is where it was looked for."""

    def __init__(self, message: str, path: Path):
        super().__init__(message)
        self.path = path


def read_text(path: Path) -> str:
    """File -> text with '\\n' line endings, whatever the original endings (old Mac CR, CRLF) and encoding."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError:  # legacy spreadsheets export Latin-1
        return raw.decode("latin-1").replace("\r\n", "\n").replace("\r", "\n")


def read_table(path: Path) -> pd.DataFrame:
    """CSV (or .tsv / .txt tab-separated) -> DataFrame with whitespace-stripped column names."""
    separator = "\t" if path.suffix.lower() in (".tsv", ".txt") else ","
    try:
        table = pd.read_csv(io.StringIO(read_text(path)), sep=separator)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DatasetError(f"cannot parse {path} ({error}); check that it is a "
                           f"{'tab' if separator == chr(9) else 'comma'}-separated table with a header row.") from error
    table.columns = [str(column).strip() for column in table.columns]
    return table


def require_columns(table: pd.DataFrame, required: Sequence[str], source: str) -> None:
    """Raise naming the first missing column and listing the columns found."""
    for column in required:
        if column not in table.columns:
            raise DatasetError(f"{source}: required column {column!r} is missing; columns found: "
                               f"{list(table.columns)}. Add or rename the column.")


def require_filled(table: pd.DataFrame, column: str, source: str) -> None:
    """Raise naming the lines where `column` is blank."""
    blank = np.flatnonzero(table[column].isna() | (table[column].astype(str).str.strip() == ""))
    if len(blank):
        raise DatasetError(f"{source}: column {column!r} is empty in line(s) {listing(blank + 2)}; fill it in or "
                           f"remove the row(s).")


def require_files(paths: Sequence[Path], labels: Sequence[str], source: str, remedy: str) -> None:
    """Raise naming the rows (labels) whose image file does not exist, with the path each expects."""
    missing = [f"{labels[row]} expects {path}" for row, path in enumerate(paths) if not path.is_file()]
    if missing:
        raise DatasetError(f"{source}: image file(s) missing: {listing(missing)}; {remedy}.")


def numeric(table: pd.DataFrame, column: str, source: str, labels: pd.Series) -> np.ndarray:
    """(N,) float64 values of `column`; raise naming the rows (line + label) that are empty or not numbers."""
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = [f"line {row + 2} ({labels.iloc[row]})" for row in np.flatnonzero(~np.isfinite(values))]
    if bad:
        raise DatasetError(f"{source}: {column} is empty or not a number in {listing(bad)}; fill in the value or "
                           f"remove the row(s).")
    return values


def listing(items: Sequence) -> str:
    """The first LISTED_AT_MOST items joined by ', ', plus ' (and K more)' when cut."""
    shown = ", ".join(str(item) for item in list(items)[:LISTED_AT_MOST])
    return shown + (f" (and {len(items) - LISTED_AT_MOST} more)" if len(items) > LISTED_AT_MOST else "")


def absolute(base: Path, value: str) -> Path:
    """A path from a table, relative to `base` unless absolute, as an absolute path."""
    path = Path(value).expanduser()
    return (path if path.is_absolute() else base / path).resolve()


def existing_folder(root: str | Path, what: str) -> Path:
    """Absolute folder path; MissingPathError when nothing is there, DatasetError when it is not a folder."""
    folder = Path(root).expanduser().resolve()
    if not folder.is_dir():
        message = f"{what} {folder} is not an existing folder; check the path."
        raise DatasetError(message) if folder.exists() else MissingPathError(message, folder)
    return folder


def plain_name(name: str, what: str) -> str:
    """A file or folder name from a table, refused when it would leave its folder (`..`, a separator)."""
    if name in ("", ".", "..") or "/" in name or "\\" in name:
        raise DatasetError(f"{what} {name!r} is not a plain file name (no '/', '\\' or '..'); fix the table.")
    return name
