"""Feature store: float32 arrays as .npy under a cache folder, a JSON index in diskcache.

Every write is atomic (unique temporary file in the same folder, then `os.replace`), so a
killed run never leaves a half-written array that later reads as valid. Extraction writes
row chunks under `partial/<key>/` and `finalize` stitches them once all rows are there,
which makes an interrupted extraction resumable. The index holds only JSON (never
pickles: diskcache advisory CVE-2025-69872).
"""
from __future__ import annotations

import os
import shutil
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator, Sequence

import diskcache
import numpy as np
from filelock import FileLock

from core.keys import digest
from core.paths import atomic_write


@dataclass(frozen=True)
class FeatureKey:
    """Everything that determines a feature array; any change gives a new digest."""

    encoder: str  # canonical spec string
    weights: str  # weight identity: tag, package file, seed or file hash
    layer: str
    pooling: str  # cls | mean | gap | flat:<dim>/<projection> | model (the encoder's own pooled "final" embedding)
    preprocess: str  # JSON of the preprocessing config
    dataset: str  # ImageSet fingerprint
    view: str = "clean"  # input transform applied before preprocessing (corruption, augmentation)

    @property
    def digest(self) -> str:
        return digest(asdict(self), 32)


class FeatureStore:
    """Read/write feature arrays by FeatureKey; safe across threads and processes."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        for folder in (self.root, self.root / "partial", self.root / "locks"):
            folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)  # features of private image sets stay private
        self._index = diskcache.Cache(str(self.root / "index"), disk=diskcache.JSONDisk)

    def path(self, key: FeatureKey) -> Path:
        return self.root / f"{key.digest}.npy"

    def has(self, key: FeatureKey) -> bool:
        return self.path(key).is_file() and key.digest in self._index

    def load(self, key: FeatureKey) -> np.ndarray:
        """(N, D) float32, memory-mapped read-only."""
        return np.load(self.path(key), mmap_mode="r")

    def info(self, key: FeatureKey) -> dict | None:
        return self._index.get(key.digest)

    def entries(self) -> list[dict]:
        """Index records of every stored array (key fields, shape, timing)."""
        return [self._index[digest] for digest in self._index.iterkeys() if digest in self._index]

    def save(self, key: FeatureKey, features: np.ndarray, meta: dict | None = None) -> None:
        """Store a whole (N, D) array at once."""
        _atomic_save(self.path(key), np.asarray(features, dtype=np.float32))
        self._record(key, features.shape, meta)

    def delete(self, key: FeatureKey) -> None:
        self._index.delete(key.digest)
        self.path(key).unlink(missing_ok=True)
        shutil.rmtree(self._chunk_dir(key), ignore_errors=True)

    @contextmanager
    def lock(self, keys: Sequence[FeatureKey]) -> Iterator[None]:
        """Exclusive hold on some keys across processes (sorted, so two jobs cannot deadlock)."""
        locks = [FileLock(str(self.root / "locks" / f"{digest}.lock"))
                 for digest in sorted({key.digest for key in keys})]
        acquired = []
        try:
            for file_lock in locks:
                file_lock.acquire()
                acquired.append(file_lock)
            yield
        finally:
            for file_lock in reversed(acquired):
                file_lock.release()

    # --- resumable, chunked writes ----------------------------------------------------

    def save_chunk(self, key: FeatureKey, start: int, rows: np.ndarray) -> None:
        """Store rows [start, start + len(rows)) of a feature array still being extracted."""
        folder = self._chunk_dir(key)
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_save(folder / f"{start:09d}-{start + len(rows):09d}.npy", np.asarray(rows, dtype=np.float32))

    def rows_done(self, key: FeatureKey) -> int:
        """Number of leading rows already stored as contiguous chunks."""
        done = 0
        for start, stop, _ in self._chunks(key):
            if start > done:
                break
            done = max(done, stop)
        return done

    def finalize(self, key: FeatureKey, n_rows: int, meta: dict | None = None) -> np.ndarray:
        """Stitch the chunks of `key` into one (n_rows, D) array, index it, drop the chunks."""
        chunks = [(start, stop, path) for start, stop, path in self._chunks(key) if start < n_rows]
        if self.rows_done(key) < n_rows:
            raise RuntimeError(f"Feature chunks for {key.encoder} / {key.layer} cover {self.rows_done(key)} of "
                               f"{n_rows} rows; run the extraction again to resume.")
        width = np.load(chunks[0][2], mmap_mode="r").shape[1]

        def stitch(temporary: Path) -> None:
            # Written through a memmap so the whole array never sits in RAM twice.
            stitched = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.float32, shape=(n_rows, width))
            for start, stop, path in chunks:
                stitched[start:stop] = np.load(path)
            stitched.flush()
            del stitched

        atomic_write(self.path(key), stitch)
        self._record(key, (n_rows, width), meta)
        shutil.rmtree(self._chunk_dir(key), ignore_errors=True)
        return self.load(key)

    def _chunk_dir(self, key: FeatureKey) -> Path:
        return self.root / "partial" / key.digest

    def _chunks(self, key: FeatureKey) -> list[tuple[int, int, Path]]:
        folder = self._chunk_dir(key)
        if not folder.is_dir():
            return []
        found = []
        for path in folder.glob("*.npy"):
            start, _, stop = path.stem.partition("-")
            if start.isdigit() and stop.isdigit():
                found.append((int(start), int(stop), path))
        return sorted(found)

    def _record(self, key: FeatureKey, shape: Sequence[int], meta: dict | None) -> None:
        self._index.set(key.digest, {**asdict(key), "digest": key.digest, "shape": list(shape),
                                     "stored_at": time.time(), **(meta or {})})


class ResultCache:
    """JSON results of analyses (probe scores, ...) keyed by a string that starts with a feature digest.

    Lets a rerun skip work already done, across sessions and processes. SQLite transactions
    make each write atomic; values must be JSON (no pickles, as for the feature index).
    """

    def __init__(self, root: str | Path):
        Path(root).mkdir(parents=True, exist_ok=True)
        self._cache = diskcache.Cache(str(root), disk=diskcache.JSONDisk)

    def get(self, key: str):
        return self._cache.get(key)

    def set(self, key: str, value) -> None:
        self._cache.set(key, value)

    def __contains__(self, key: str) -> bool:
        return key in self._cache

    def get_or_compute(self, key: str, compute: Callable[[], Any]) -> Any:
        """The stored value of `key`, else `compute()`, stored first (as `Memo.get_or_compute`, but on disk)."""
        value = self._cache.get(key)
        if value is None:
            value = compute()
            self._cache.set(key, value)
        return value


class Memo:
    """A bounded in-process memo (least recently used out first) for results too large or unJSONable for ResultCache.

    Keys should start with a feature digest, so a new dataset or layer never hits a stale entry.
    """

    def __init__(self, max_entries: int = 256):
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The memoised value of `key`, else `compute()` (None results are not kept: "not ready yet")."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        value = compute()
        if value is not None:
            with self._lock:
                self._entries[key] = value
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return value


def _atomic_save(target: Path, array: np.ndarray) -> None:
    atomic_write(target, lambda temporary: np.save(temporary, array))
