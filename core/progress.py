"""The one progress type: every piece of work in `core` that reports progress calls a `Report` with a `Progress`.

A background job's report stores it (core.jobs), a command line draws it as a bar, a page's job line shows
done/total, the message, the elapsed time and one ETA computed from them. Raising from a report stops the work
(a job's cancellation does that).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Progress:
    """Where a piece of work stands: `done` of `total` units, what it is doing now, and how many of `done` cost
    nothing — resumed rows, cached results — so rates and ETAs leave them out."""

    done: int
    total: int
    message: str = ""
    skipped: int = 0


Report = Callable[[Progress], None]
