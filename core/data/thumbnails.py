"""Small JPEG thumbnails of a dataset's images, made once into the cache and keyed by the dataset fingerprint."""
from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

from core.data.datasets import DatasetError, ImageSet
from core.data.images import load_image
from core.paths import atomic_write
from core.progress import Progress, Report

THUMBNAIL_SIZE = 96  # pixels, the longer side
JPEG_QUALITY = 85


class ThumbnailStore:
    """`<root>/<dataset fingerprint>/<size>/<row>.jpg`: a changed image changes the fingerprint, so never stale."""

    def __init__(self, root: str | Path, size: int = THUMBNAIL_SIZE):
        self.root = Path(root)
        self.size = int(size)

    def path(self, image_set: ImageSet, row: int) -> Path:
        return self.root / image_set.fingerprint / str(self.size) / f"{int(row):06d}.jpg"

    def get(self, image_set: ImageSet, row: int) -> bytes | None:
        """The JPEG bytes of item `row` (made now if missing); None for a set without images or an unreadable file."""
        if not image_set.has_images:
            return None
        path = self.path(image_set, row)
        try:
            return path.read_bytes()
        except OSError:
            pass
        try:
            data = make_thumbnail(image_set.paths[int(row)], self.size)
        except DatasetError:
            return None
        atomic_write(path, lambda temporary: temporary.write_bytes(data))
        return data

    def build(self, image_set: ImageSet, rows: Sequence[int] | None = None, *, workers: int = 2,
              progress: Report | None = None) -> int:
        """Make every missing thumbnail of `rows` (all by default) with `workers` threads; returns how many exist."""
        rows = list(range(len(image_set))) if rows is None else [int(row) for row in rows]
        missing = [row for row in rows if not self.path(image_set, row).is_file()]
        done = len(rows) - len(missing)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # PIL decodes with the GIL released
            for index, made in enumerate(pool.map(lambda row: self.get(image_set, row) is not None, missing), 1):
                done += made
                if progress is not None:
                    progress(Progress(index, len(missing)))
        return done


def make_thumbnail(path: Path, size: int = THUMBNAIL_SIZE) -> bytes:
    """An image file -> JPEG bytes, the longer side `size` pixels (DatasetError if unreadable)."""
    image = load_image(path, draft_size=size)
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return buffer.getvalue()


def data_url(jpeg: bytes | None) -> str | None:
    """JPEG bytes -> a `data:image/jpeg;base64,...` URL (table image columns), or None."""
    return None if jpeg is None else "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
