"""Analysis results on disk: `cache/results/<kind>/<key>/`, JSON for metadata and tables, NPY for arrays.

A result's key hashes its full settings and its inputs' fingerprints (`result_key`), so the same
analysis of the same inputs finds its result again, from a page, a headless study or another
process, also after a restart. Every file is written atomically and `result.json` goes last: a
result without it was never finished and reads as absent. Nothing is pickled: arrays load with
`allow_pickle=False`, tables are JSON. A failed computation leaves `failed.json` (its error) instead,
which the next success removes.
"""
from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from core.keys import digest
from core.paths import atomic_write

RESULT_FILE = "result.json"
FAILED_FILE = "failed.json"
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def result_key(kind: str, settings: Mapping[str, Any], inputs: Mapping[str, str]) -> str:
    """24 hex digits over the kind, every setting and every input's fingerprint: same analysis, same key."""
    return digest({"kind": kind, "settings": settings, "inputs": inputs})


@dataclass(frozen=True, eq=False)
class StoredResult:
    """One stored analysis result: `meta` (kind, key, label, settings, inputs, timings), tables and arrays."""

    kind: str
    key: str
    meta: dict
    folder: Path

    @property
    def table_names(self) -> tuple[str, ...]:
        return tuple(self.meta.get("tables", ()))

    @property
    def array_names(self) -> tuple[str, ...]:
        return tuple(self.meta.get("arrays", ()))

    def table(self, name: str) -> pd.DataFrame:
        return table_from_json((self.folder / f"{name}.table.json").read_text())

    def array(self, name: str) -> np.ndarray:
        """The array `name`, memory-mapped read-only."""
        return np.load(self.folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)


class ResultStore:
    """Every analysis result under one root, by kind and key; safe across threads and processes."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def folder(self, kind: str, key: str) -> Path:
        for part in (kind, key):
            if not _NAME.match(part):
                raise ValueError(f"Result kind and key must be plain names; got {part!r}.")
        return self.root / kind / key

    def has(self, kind: str, key: str) -> bool:
        return (self.folder(kind, key) / RESULT_FILE).is_file()

    def get(self, kind: str, key: str) -> StoredResult | None:
        """The finished result, or None (also when its files cannot be read: it is then computed again)."""
        folder = self.folder(kind, key)
        try:
            meta = json.loads((folder / RESULT_FILE).read_text())
        except (OSError, ValueError):
            return None
        files = [f"{name}.table.json" for name in meta.get("tables", ())] + [f"{name}.npy" for name in
                                                                          meta.get("arrays", ())]
        if not all((folder / name).is_file() for name in files):
            return None
        return StoredResult(kind, key, meta, folder)

    def put(self, kind: str, key: str, meta: Mapping[str, Any], *, tables: Mapping[str, pd.DataFrame] | None = None,
            arrays: Mapping[str, np.ndarray] | None = None) -> StoredResult:
        """Store a result: arrays and tables first, `result.json` (meta + their names) last."""
        folder = self.folder(kind, key)
        tables, arrays = dict(tables or {}), dict(arrays or {})
        for name in [*tables, *arrays]:
            if not _NAME.match(name):
                raise ValueError(f"Table and array names must be plain names; got {name!r}.")
        for name, table in tables.items():
            text = table_to_json(table)
            atomic_write(folder / f"{name}.table.json", lambda temporary, text=text: temporary.write_text(text))
        for name, array in arrays.items():
            atomic_write(folder / f"{name}.npy",
                         lambda temporary, array=array: np.save(temporary, np.asarray(array), allow_pickle=False))
        record = {**meta, "kind": kind, "key": key, "tables": list(tables), "arrays": list(arrays),
                  "stored_at": time.time()}
        text = json.dumps(record, indent=1, default=str)
        atomic_write(folder / RESULT_FILE, lambda temporary: temporary.write_text(text))
        (folder / FAILED_FILE).unlink(missing_ok=True)
        return StoredResult(kind, key, record, folder)

    def fail(self, kind: str, key: str, meta: Mapping[str, Any], error: str) -> None:
        """Record that computing this result failed, and why (kept until it succeeds)."""
        text = json.dumps({**meta, "kind": kind, "key": key, "error": error, "failed_at": time.time()}, default=str)
        atomic_write(self.folder(kind, key) / FAILED_FILE, lambda temporary: temporary.write_text(text))

    def failure(self, kind: str, key: str) -> dict | None:
        """The recorded failure of an unfinished result, else None."""
        folder = self.folder(kind, key)
        if (folder / RESULT_FILE).is_file():
            return None
        try:
            return json.loads((folder / FAILED_FILE).read_text())
        except (OSError, ValueError):
            return None

    def entries(self, kind: str | None = None) -> list[dict]:
        """The meta of every finished result (of one kind), newest first."""
        pattern = f"{kind}/*/{RESULT_FILE}" if kind else f"*/*/{RESULT_FILE}"
        found = []
        for path in self.root.glob(pattern):
            try:
                found.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        return sorted(found, key=lambda meta: -meta.get("stored_at", 0))

    def delete(self, kind: str, key: str) -> None:
        shutil.rmtree(self.folder(kind, key), ignore_errors=True)


def table_to_json(table: pd.DataFrame) -> str:
    """A table as standard JSON that reads back equal: columns, dtypes, values (floats exactly; NaN as null)."""
    data = {}
    for column in table.columns:
        values = table[column].tolist()
        data[str(column)] = [None if isinstance(value, float) and value != value else _plain(value) for value in values]
    return json.dumps({"columns": [str(column) for column in table.columns],
                       "dtypes": {str(column): str(dtype) for column, dtype in table.dtypes.items()}, "data": data})


def table_from_json(text: str) -> pd.DataFrame:
    """The table `table_to_json` wrote."""
    record = json.loads(text)
    table = pd.DataFrame({column: record["data"][column] for column in record["columns"]}, columns=record["columns"])
    for column, dtype in record["dtypes"].items():
        if dtype.startswith(("float", "int", "bool")):
            table[column] = table[column].astype(dtype)
    return table


def _plain(value: Any) -> Any:
    """numpy scalars as Python values (json cannot write them)."""
    return value.item() if isinstance(value, np.generic) else value
