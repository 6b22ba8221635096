"""Find every unreadable image of a dataset at once, before extraction trips over the first one."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from core.data.datasets import ImageSet, unreadable_reason
from core.progress import Progress, Report


@dataclass(frozen=True)
class ImageProblem:
    """One image file that cannot be decoded: its row in the ImageSet, its path and why."""

    row: int
    path: Path
    reason: str


def check_images(image_set: ImageSet, progress: Report | None = None) -> list[ImageProblem]:
    """Every image of the set that would fail to load, in row order ([] when all N decode).

    PIL's `verify()` passes a truncated JPEG, so each file is decoded instead, JPEGs at 1/8
    scale (DCT scaling reads the whole stream at a fraction of the cost). `progress` counts the
    files checked, after each one (e.g. a background job's report).
    """
    problems = []
    for row, path in enumerate(image_set.paths):
        reason = unreadable_reason(path)
        if reason is not None:
            problems.append(ImageProblem(row, path, reason))
        if progress is not None:
            progress(Progress(row + 1, len(image_set.paths)))
    return problems


def image_problems_message(problems: Sequence[ImageProblem]) -> str:
    """One message naming every bad file and its reason, and what to do."""
    listed = "; ".join(f"{problem.path} ({problem.reason})" for problem in problems)
    return (f"{len(problems)} image file(s) cannot be read: {listed}. Replace them with valid images, remove "
            f"them from the dataset, or leave them out (append `|unreadable=skip` to the dataset spec).")
