"""Dataset fingerprints from the images' bytes, and the migration of caches keyed by the earlier, mtime-based ones.

A dataset's fingerprint (the `dataset` part of every feature key, result key and thumbnail folder) hashes each
image's path relative to the dataset root, its size and a blake2b digest of its bytes, then the metadata table
and the reference embeddings. A copy of the data without preserved timestamps (`cp`, `rsync` without `-t`, a
fresh download, another machine) therefore keeps its fingerprint, its features and its results; one changed byte
in one image gives a new one. Digests are remembered per process by (path, size, mtime, ctime, inode), so loading the
same set again costs a `stat` per image (OASIS, 900 images, 85 MB: 0.33-0.38 s the first time, 0.04 s again;
the mtime fingerprint took 0.04 s).

Before, an image counted by (path, size, mtime_ns). A cache made then holds features, results and thumbnails
under those fingerprints; `ImageIdentity.at(cache)` keeps them reachable instead of recomputing everything:

- once per cache, it lists the dataset fingerprints the cache holds (the feature index's `dataset` fields and the
  thumbnail folders) into `<cache>/fingerprints.json` (`legacy`);
- loading a dataset whose mtime-based fingerprint is listed there records, for each of its images,
  (path, size, digest) -> mtime_ns (`tokens`), and from then on such an image counts by that recorded mtime:
  the set keeps its earlier fingerprint wherever its bytes are copied. An image whose bytes change has a new
  digest, no recorded mtime, and counts by its content: never mixed with the old one.

A dataset that was copied before the first load by this version has no listed fingerprint and is computed again
once (under its content fingerprint). Nothing is renamed or deleted; the file only grows when such a set loads.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from filelock import FileLock

from core.data.tables import DatasetError
from core.paths import atomic_write

FINGERPRINT_CHARS = 16
REGISTRY_FILE = "fingerprints.json"
_HEX = frozenset("0123456789abcdef")
_BLOCK = 1 << 20


@dataclass(frozen=True)
class ImageStat:
    """One image as the fingerprint sees it: path relative to the root (posix), size, mtime and content digest."""

    label: str
    size: int
    mtime_ns: int
    digest: str  # 32 hex digits of blake2b over the file's bytes

    @property
    def content_line(self) -> str:
        return f"{self.label}\0{self.size}\0blake2b:{self.digest}\n"

    @property
    def legacy_line(self) -> str:
        """The line the earlier, mtime-based fingerprint hashed for this image."""
        return f"{self.label}\0{self.size}\0{self.mtime_ns}\n"

    @property
    def token(self) -> str:
        """The registry key of this image's bytes at this path."""
        return f"{self.label}\0{self.size}\0{self.digest}"


def image_stats(root: Path, paths: Sequence[Path]) -> tuple[ImageStat, ...]:
    """(N,) ImageStat of `paths`; DatasetError naming the first file that cannot be read."""
    stats = []
    for path in paths:
        try:
            stat = path.stat()
            digest = _content_digest(str(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
        except OSError as error:
            raise DatasetError(f"image file {path} cannot be read ({error}); restore it or reload the dataset.") \
                from error
        stats.append(ImageStat(relative_label(root, path), stat.st_size, stat.st_mtime_ns, digest))
    return tuple(stats)


def relative_label(root: Path, path: Path) -> str:
    """The path relative to the dataset root (posix), or the whole path when it lies outside (manifests)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


@functools.lru_cache(maxsize=1 << 18)
def _content_digest(path: str, size: int, mtime_ns: int, ctime_ns: int, inode: int) -> str:
    """blake2b of the file's bytes; the stat fields only key the memo (any write changes ctime: read again)."""
    hasher = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            hasher.update(block)
    return hasher.hexdigest()


def fingerprint_of(lines: Sequence[str], tail: bytes) -> str:
    """16 hex digits of sha256 over the image lines, then `tail` (metadata CSV, references, skipped images)."""
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode())
    digest.update(tail)
    return digest.hexdigest()[:FINGERPRINT_CHARS]


@dataclass(frozen=True, eq=False)
class ImageIdentity:
    """How images count in a fingerprint: by content, or by a recorded mtime for images of a migrated cache.

    `ImageIdentity()` (no registry) counts every image by its content; `ImageIdentity.at(cache)` also keeps the
    fingerprints of datasets the cache held before fingerprints hashed content (see the module doc)."""

    file: Path | None = None
    legacy: frozenset[str] = frozenset()
    tokens: dict[str, int] = field(default_factory=dict)  # ImageStat.token -> recorded mtime_ns; grows on adopt

    @classmethod
    def at(cls, cache_root: str | Path) -> ImageIdentity:
        """The registry of `cache_root`, made once (listing the cache's earlier fingerprints) when it is missing."""
        file = Path(cache_root) / REGISTRY_FILE
        if not file.is_file():
            file.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(file) + ".lock"):
                if not file.is_file():
                    _write(file, {"legacy": sorted(earlier_fingerprints(cache_root)), "tokens": {}})
        registry = _read(file)
        return cls(file, frozenset(registry["legacy"]), dict(registry["tokens"]))

    @property
    def by_content(self) -> bool:
        """True when every image counts by its content alone (no earlier fingerprint to keep)."""
        return not self.legacy and not self.tokens

    def fingerprint(self, stats: Sequence[ImageStat], tail: bytes) -> str:
        """The fingerprint of images `stats` followed by `tail`; adopts the earlier one when the cache holds it."""
        if self.legacy and any(stat.token not in self.tokens for stat in stats):
            if fingerprint_of([stat.legacy_line for stat in stats], tail) in self.legacy:
                self._adopt(stats)
        lines = [f"{stat.label}\0{stat.size}\0{self.tokens[stat.token]}\n" if stat.token in self.tokens
                 else stat.content_line for stat in stats]
        return fingerprint_of(lines, tail)

    def _adopt(self, stats: Sequence[ImageStat]) -> None:
        """Record each image's current mtime under its (path, size, digest), in memory and on disk (merged)."""
        adopted = {stat.token: stat.mtime_ns for stat in stats if stat.token not in self.tokens}
        self.tokens.update(adopted)
        if self.file is None:
            return
        with FileLock(str(self.file) + ".lock"):
            registry = _read(self.file)
            registry["tokens"] = {**adopted, **registry["tokens"]}  # a token recorded first stays
            _write(self.file, registry)
        self.tokens.update(registry["tokens"])


def earlier_fingerprints(cache_root: str | Path) -> set[str]:
    """Dataset fingerprints the cache holds: the feature index's `dataset` fields and the thumbnail folders."""
    root = Path(cache_root)
    found = {path.name for path in (root / "thumbnails").glob("*") if path.is_dir() and _is_fingerprint(path.name)}
    index = root / "features" / "index"
    if (index / "cache.db").is_file():
        import diskcache  # only a cache with features needs it

        with diskcache.Cache(str(index), disk=diskcache.JSONDisk) as cache:
            for key in cache.iterkeys():
                entry = cache.get(key)
                if isinstance(entry, dict) and _is_fingerprint(str(entry.get("dataset", ""))):
                    found.add(entry["dataset"])
    return found


def _is_fingerprint(text: str) -> bool:
    return len(text) == FINGERPRINT_CHARS and set(text) <= _HEX


def _read(file: Path) -> dict:
    try:
        registry = json.loads(file.read_text())
        if isinstance(registry.get("legacy"), list) and isinstance(registry.get("tokens"), dict):
            return registry
    except (OSError, ValueError, AttributeError):
        pass
    raise DatasetError(f"{file} is not a fingerprint registry (JSON with `legacy` and `tokens`); delete it to "
                       f"start one afresh (features cached before fingerprints hashed content are then computed "
                       f"again).")


def _write(file: Path, registry: dict) -> None:
    atomic_write(file, lambda temporary: temporary.write_text(json.dumps(registry, sort_keys=True)))
    os.chmod(file, 0o600)
