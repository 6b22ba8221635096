"""The one progress type: every piece of work in `core` that reports progress calls a `Report` with a `Progress`.

A background job's report stores it (core.jobs), a command line draws it as a bar, a page's job line shows
done/total, the message, the elapsed time and one ETA computed from them. Raising from a report stops the work
(a job's cancellation does that).

Work whose units cost differently runs in stages (a Layer probes run extracts images, then fits cross-validation
folds): each stage counts its own units from 0 to its own total under its own `stage` name, so a bar never mixes an
image with a fold and a job's ETA extrapolates the rate of the stage it is in, measured from that stage's first report.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Progress:
    """Where a piece of work stands: `done` of `total` units, what it is doing now, how many of `done` cost
    nothing — resumed rows, cached results — so rates and ETAs leave them out, and which stage it is in ("" for work
    of one stage; a new name starts a new count and a new rate)."""

    done: int
    total: int
    message: str = ""
    skipped: int = 0
    stage: str = ""


Report = Callable[[Progress], None]
