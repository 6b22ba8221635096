"""Response-pattern references: per group (e.g. 'V4', 'IT') one array of responses per subject to a dataset's N
items, what an encoding model (core.analyses.encoding) predicts from a layer's features.

A subject's array is (N, U) (N items × U units: neurons, voxels, channels) or (R, N, U) with R >= 2 repetitions
(sessions, trials; the split-half reliability of their mean is each unit's ceiling). The layout mirrors the RDMs'
(core.data.neural), in a `patterns/` folder of a `neural:<folder>` dataset or named by `|patterns=<file or folder>`
on any dataset:

    patterns/<group>.npy              one subject (named s01): (N, U) or (R, N, U); a 4-D (S, R, N, U) file is S
                                      subjects with R repetitions each
    patterns/<group>/<subject>.npy    a group given as one file per subject (named by its stem): (N, U) or (R, N, U)
    (.txt whitespace and .csv comma-separated matrices work for (N, U); `_subjects`, `_sessions`, … at the end of
    a stem are dropped from the group's name, as for RDMs)

Every array must be finite, over the dataset's N items in its order, and the subjects of one group must have the
same N and U (the same units); a bad file raises DatasetError naming the file and the fault.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from core.data.neural import PATTERN_FOLDER, RDM_SUFFIXES, STIMULI_FILE, group_name, split_files_option
from core.data.tables import DatasetError, MissingPathError, listing, read_text

PATTERNS_OPTION = "patterns"  # spec option |patterns=<file or folder>[,…]: pattern groups attached to any dataset
SHAPES = "(N, U) one subject, (R, N, U) one subject with R >= 2 repetitions, or (S, R, N, U) S subjects"


@dataclass(frozen=True, eq=False)
class PatternReference:
    """A named group of per-subject response patterns over a dataset's N items: `patterns` one (R, N, U) float64
    array per subject (R = 1: no repetitions), `subjects` their names, the files they came from."""

    name: str
    patterns: tuple[np.ndarray, ...]
    subjects: tuple[str, ...]
    sources: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        shapes = {array.shape[1:] for array in self.patterns}
        if (not self.patterns or len(shapes) != 1 or len(self.subjects) != len(self.patterns)
                or any(array.ndim != 3 for array in self.patterns)):
            raise DatasetError(f"pattern group {self.name}: {len(self.patterns)} arrays of shapes "
                               f"{[array.shape for array in self.patterns]} and {len(self.subjects)} subject names; "
                               f"need one (R, N, U) array of the same N and U per subject.")

    @property
    def n_subjects(self) -> int:
        return len(self.patterns)

    @property
    def n_items(self) -> int:
        return int(self.patterns[0].shape[1])

    @property
    def n_units(self) -> int:
        return int(self.patterns[0].shape[2])

    def responses(self, subject: int) -> np.ndarray:
        """Subject `subject`'s (R, N, U) repetitions when R >= 2, else its (N, U) responses."""
        array = self.patterns[subject]
        return array if len(array) >= 2 else array[0]

    def repetitions(self, subject: int) -> int:
        return int(len(self.patterns[subject]))

    def subset(self, rows: Sequence[int]) -> PatternReference:
        """The group over items `rows` (n,), in that order."""
        index = np.asarray(rows, dtype=int)
        return PatternReference(self.name, tuple(array[:, index] for array in self.patterns), self.subjects,
                                self.sources)

    def fingerprint_bytes(self) -> bytes:
        """What a dataset fingerprint hashes of this group: name, subjects, shapes and values."""
        head = f"patterns\0{self.name}\0{','.join(self.subjects)}\0{[a.shape for a in self.patterns]}\n".encode()
        return head + b"".join(np.ascontiguousarray(array, dtype=np.float64).tobytes() for array in self.patterns)


def read_pattern_file(path: str | Path, n_items: int | None = None, *, subjects: bool = False) -> np.ndarray:
    """A pattern file -> (S, R, N, U) float64 (S = 1 unless `subjects` allows a 4-D file); DatasetError naming the
    file: wrong number of dimensions, fewer than 2 repetitions in a 3-D file, NaN / infinite values, N not
    `n_items` (the dataset's)."""
    file = Path(path).expanduser()
    array = _load(file)
    allowed = (2, 3, 4) if subjects else (2, 3)
    if array.ndim not in allowed or 0 in array.shape:
        raise DatasetError(f"pattern file {file} has shape {array.shape}; expected "
                           f"{SHAPES if subjects else SHAPES.rsplit(', or', 1)[0]} (N items, U units).")
    if array.ndim >= 3 and array.shape[-3] < 2:
        raise DatasetError(f"pattern file {file} has shape {array.shape}: a 3-D array declares repetitions "
                           f"(R, N, U) but holds R = {array.shape[-3]}; give R >= 2 repetitions or save the (N, U) "
                           f"responses as a 2-D array.")
    bad = np.argwhere(~np.isfinite(array))
    if len(bad):
        raise DatasetError(f"pattern file {file} has {len(bad)} NaN or infinite value(s), the first at index "
                           f"{tuple(int(i) for i in bad[0])} (counted from 0); fill them in or leave those units out.")
    if n_items is not None and array.shape[-2] != n_items:
        raise DatasetError(f"pattern file {file} is over {array.shape[-2]} items (shape {array.shape}, items on the "
                           f"second-last axis) but the dataset has {n_items}; its rows must be the dataset's items, "
                           f"in the same order.")
    while array.ndim < 4:  # (N, U) -> (1, 1, N, U); (R, N, U) -> (1, R, N, U)
        array = array[None]
    return np.ascontiguousarray(array, dtype=np.float64)


def read_pattern_group(path: str | Path, n_items: int | None = None) -> PatternReference:
    """A group file or a folder of one file per subject -> PatternReference; DatasetError when its subjects differ
    in N or U."""
    location = Path(path).expanduser()
    name, _ = group_name(location)
    if location.is_dir():
        files = _pattern_files(location)
        if not files:
            raise DatasetError(f"pattern folder {location} holds no {'/'.join(RDM_SUFFIXES)} file; put one file per "
                               f"subject there ({SHAPES.rsplit(', or', 1)[0]}).")
        arrays = [read_pattern_file(file, n_items)[0] for file in files]
        shapes = {file.name: array.shape[1:] for file, array in zip(files, arrays)}
        if len(set(shapes.values())) > 1:
            raise DatasetError(f"the subjects of pattern folder {location} differ in (N items, U units): "
                               + ", ".join(f"{file}: {shape}" for file, shape in shapes.items())
                               + "; every subject must have the same items and units.")
        return PatternReference(name, tuple(arrays), tuple(file.stem for file in files), tuple(files))
    stacked = read_pattern_file(location, n_items, subjects=True)
    return PatternReference(name, tuple(stacked), tuple(f"s{index + 1:02d}" for index in range(len(stacked))),
                            (location,))


def read_pattern_groups(paths: Sequence[str | Path], n_items: int | None = None) -> tuple[PatternReference, ...]:
    """Files or per-subject folders -> pattern groups over the same `n_items`; DatasetError when two share a name."""
    groups = []
    for path in paths:
        location = Path(path).expanduser()
        if not location.exists():
            raise MissingPathError(f"pattern file {location} not found; give an existing {'/'.join(RDM_SUFFIXES)} "
                                   f"file or a folder of per-subject files.", location)
        groups.append(read_pattern_group(location, n_items))
    names = pd.Series([group.name for group in groups], dtype=object)
    if names.duplicated().any():
        clash = names[names.duplicated()].iloc[0]
        raise DatasetError(f"two files give the pattern group {clash!r}: "
                           f"{listing([str(g.sources[0]) for g in groups if g.name == clash])}; rename one.")
    return tuple(groups)


def read_pattern_folder(folder: Path, n_items: int) -> tuple[PatternReference, ...]:
    """The groups of a `neural:` folder's `patterns/` (none when it has no such folder)."""
    location = folder / PATTERN_FOLDER
    if not location.is_dir():
        return ()
    entries = _pattern_files(location) + sorted(path for path in location.iterdir()
                                                if path.is_dir() and not path.name.startswith("."))
    if not entries:
        raise DatasetError(f"{location} holds no pattern files; put them there as <group>.npy or "
                           f"<group>/<subject>.npy ({SHAPES}), or remove the folder.")
    return read_pattern_groups(entries, n_items)


def split_patterns_option(spec: str) -> tuple[str, tuple[str, ...]]:
    """(the spec without `|patterns=<file>[,<file>]`, the files and folders it names)."""
    return split_files_option(spec, PATTERNS_OPTION)


def describe_patterns(groups: Sequence[PatternReference]) -> str:
    """'IT (4 subjects, 120 units, 2 repetitions)' for captions and provenance."""
    def repetitions(group: PatternReference) -> str:
        counts = sorted({group.repetitions(index) for index in range(group.n_subjects)})
        return "no repetitions" if counts == [1] else f"{'/'.join(map(str, counts))} repetitions"

    return ", ".join(f"{group.name} ({group.n_subjects} subject{'s' if group.n_subjects != 1 else ''}, "
                     f"{group.n_units} units, {repetitions(group)})" for group in groups)


def _pattern_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.is_file() and not path.name.startswith(".")
                  and path.suffix.lower() in RDM_SUFFIXES and path.name != STIMULI_FILE)


def _load(file: Path) -> np.ndarray:
    """The file's numbers as float64 (.npy any shape; .txt / .csv a 2-D matrix)."""
    if not file.is_file():
        raise DatasetError(f"pattern file {file} is not a file; give a {'/'.join(RDM_SUFFIXES)} file.")
    try:
        if file.suffix.lower() == ".npy":
            array = np.load(file, allow_pickle=False)
        else:
            delimiter = "," if file.suffix.lower() == ".csv" else None
            array = np.loadtxt(io.StringIO(read_text(file)), delimiter=delimiter, ndmin=2)
    except (ValueError, OSError, EOFError) as error:
        raise DatasetError(f"cannot read pattern file {file} ({error}); give a .npy array or a whitespace (.txt) / "
                           f"comma-separated (.csv) matrix of numbers without a header.") from error
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise DatasetError(f"pattern file {file} holds {array.dtype} values, not numbers; save a float array.")
    return array.astype(np.float64)
