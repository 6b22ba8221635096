"""Where RepScope keeps its cache (features, results, the demo, Objective lab runs), and the one atomic writer."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


def cache_root() -> Path:
    """`$REPSCOPE_CACHE`, else `cache/` beside the code (git-ignored)."""
    return Path(os.environ.get("REPSCOPE_CACHE", Path(__file__).resolve().parents[1] / "cache"))


@contextmanager
def temporary_cache(active: bool = True) -> Iterator[Path]:
    """Within the block, REPSCOPE_CACHE names a new temporary folder (removed after; children inherit it), so a
    bench's quick mode never writes into the user's cache; `active=False` leaves the cache as it is."""
    if not active:
        yield cache_root()
        return
    previous = os.environ.get("REPSCOPE_CACHE")
    with tempfile.TemporaryDirectory(prefix="repscope-bench-") as folder:
        os.environ["REPSCOPE_CACHE"] = folder
        try:
            yield Path(folder)
        finally:
            if previous is None:
                os.environ.pop("REPSCOPE_CACHE", None)
            else:
                os.environ["REPSCOPE_CACHE"] = previous


def private_folder(folder: str | Path) -> Path:
    """Create `folder` (and parents) if missing and make it owner-only (0700): on a shared host no other user
    reads the cache's features, results or uploads' derivatives."""
    folder = Path(folder)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_uid == os.getuid():  # a cache someone else set up (a group's) keeps its permissions
        os.chmod(folder, 0o700)
    return folder


def atomic_write(target: str | Path, write: Callable[[Path], None]) -> None:
    """Call `write(temporary)` on a unique file beside `target`, fsync it, then `os.replace` it onto `target`.

    A killed process leaves either the old file or the new one, never half of one; the temporary
    keeps the target's suffix (`np.save` would otherwise append `.npy`).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}")
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        with temporary.open("rb+") as written:
            os.fsync(written.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
