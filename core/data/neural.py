"""Neural and behavioural references given as RDMs: per group (e.g. 'hIT', 'mIT', 'behaviour') one N × N RDM per
subject, beside the images of the same N items or without images; and model RDMs shipped with such data.

`read_rdm_file` reads and checks one file (a dataset's RDM groups, `python -m core rsa`'s data and models): (N, N)
one subject, a condensed N(N-1)/2 vector (the upper triangle row by row, scipy's `squareform` order) one subject,
(S, N(N-1)/2) S condensed subjects, (S, N, N) S subjects, (S, R, N, N) R repeated sessions per subject
(averaged per subject, and the note says so). Every RDM must be square, free of NaN / infinite entries, symmetric
(within 1e-8) with a zero diagonal (within 1e-8); a bad file raises DatasetError naming the file, the subject /
session and the entries at fault.

A `neural:<folder>` dataset reads `read_neural_folder`'s layout (the 92-image folder of Kriegeskorte et al. 2008 is
one):

    <folder>/stimuli.csv               optional; one row per item, in the RDMs' row order: `path` (image, relative to
                                       the folder; without it the set has no images), `image_id`, `category`, `group`
                                       and any other columns
    <folder>/images/                   without stimuli.csv: the images, sorted by file name, are the items
    <folder>/rdms/<group>.npy          a reference group; `_subjects`, `_sessions`, `_subjects_sessions` at the end
                                       of the stem are dropped from the group's name (hIT_subjects_sessions -> hIT)
    <folder>/rdms/<group>/<subject>.npy  a group given as one file per subject (named by its stem); a 3-D file there
                                       is (R, N, N) sessions of that subject, averaged
    <folder>/rdms/model_<name>.npy     a model RDM (one N × N, e.g. a categorical model), not a reference
    (.txt whitespace and .csv comma-separated matrices work too; without rdms/ the folder itself is searched)
    <folder>/patterns/                 response patterns (core.data.patterns); a folder with images and patterns/
                                       needs no RDMs

Without stimuli.csv and images/ the folder is RDM-only: N items named item_0000, item_0001, … (`has_images` False).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from core.data.embeddings import ITEM_ID_FORMAT
from core.data.tables import (LISTED_AT_MOST, DatasetError, MissingPathError, absolute, existing_folder, listing,
                              read_text, require_files, require_filled)

RDM_SUFFIXES = (".npy", ".txt", ".csv")
TOLERANCE = 1e-8  # symmetry and zero diagonal, absolute
RDM_FOLDER = "rdms"
PATTERN_FOLDER = "patterns"  # response patterns (core.data.patterns), read beside the RDMs
STIMULI_FILE = "stimuli.csv"
IMAGE_FOLDER = "images"
MODEL_PREFIX = "model_"
DESCRIPTORS = ("_subjects_sessions", "_sessions_subjects", "_subjects", "_sessions")  # dropped from group names
RDMS_OPTION = "rdms"  # spec option |rdms=<file>[,<file>]: RDM groups attached to any dataset
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SHAPES = ("(N, N), a condensed N(N-1)/2 vector, (S, N(N-1)/2) condensed subjects, (S, N, N) subjects or "
          "(S, R, N, N) subjects x sessions")


@dataclass(frozen=True, eq=False)
class RdmFile:
    """One checked RDM file: (S, N, N) float64 subjects' RDMs (sessions already averaged) and how it was read."""

    path: Path
    rdms: np.ndarray
    note: str = ""  # e.g. "2 sessions averaged per subject", "condensed vector"


@dataclass(frozen=True, eq=False)
class RdmReference:
    """A named group of per-subject RDMs of a dataset's N items: `rdms` (S, N, N) float64, `subjects` (S,) names,
    `note` (how the files were read, e.g. "2 sessions averaged per subject") and the files it came from."""

    name: str
    rdms: np.ndarray
    subjects: tuple[str, ...]
    note: str = ""
    sources: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        if self.rdms.ndim != 3 or self.rdms.shape[1] != self.rdms.shape[2] or len(self.subjects) != len(self.rdms):
            raise DatasetError(f"RDM group {self.name}: rdms of shape {self.rdms.shape} and {len(self.subjects)} "
                               f"subject names; need (S, N, N) and S names.")

    @property
    def n_subjects(self) -> int:
        return int(self.rdms.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.rdms.shape[1])

    @property
    def mean(self) -> np.ndarray:
        """(N, N) float64 mean over subjects."""
        return self.rdms.mean(axis=0)

    def subset(self, rows: Sequence[int]) -> RdmReference:
        """The group over items `rows` (n,): (S, n, n), rows and columns in that order."""
        index = np.asarray(rows, dtype=int)
        return RdmReference(self.name, self.rdms[:, index][:, :, index], self.subjects, self.note, self.sources)

    def fingerprint_bytes(self) -> bytes:
        """What a dataset fingerprint hashes of this group: name, subjects, note, shape and values."""
        head = f"rdm\0{self.name}\0{','.join(self.subjects)}\0{self.note}\0{self.rdms.shape}\n".encode()
        return head + np.ascontiguousarray(self.rdms, dtype=np.float64).tobytes()


@dataclass(frozen=True, eq=False)
class NeuralFolder:
    """What a `neural:` folder holds: (N,) image paths (empty when RDM-only), an N-row metadata table,
    reference groups and model RDMs (each S = 1), all over the same N items in the same order."""

    name: str
    root: Path
    paths: tuple[Path, ...]
    metadata: pd.DataFrame
    references: tuple[RdmReference, ...]
    models: tuple[RdmReference, ...]


def read_rdm_file(path: str | Path, n_items: int | None = None, *, sessions: bool = False,
                  n_items_of: str = "the dataset") -> RdmFile:
    """An RDM file (see the module doc for the shapes) -> RdmFile with (S, N, N) float64 checked RDMs.

    `n_items`: the N the file must have, that of `n_items_of` (the dataset's images, the first data file);
    `sessions`: a 3-D file is (R, N, N) sessions of one subject (a file of a per-subject folder), averaged into
    (1, N, N). DatasetError names the file and the fault."""
    file = Path(path).expanduser()
    array = _load_array(file)
    shape, notes = array.shape, []
    if array.ndim == 1:
        array, notes = _from_condensed(array, file)[None], ["condensed vector"]
    elif array.ndim == 2 and array.shape[0] != array.shape[1] and _triangular(array.shape[1]):
        array, notes = np.stack([_from_condensed(row, file) for row in array]), ["condensed vectors"]
    if array.ndim == 2:
        array = array[None]
    if array.ndim == 3 and sessions:
        array = array[None]
    if array.ndim not in (3, 4) or 0 in array.shape:
        raise DatasetError(f"RDM file {file} has shape {shape}; expected {SHAPES}.")
    if array.shape[-1] != array.shape[-2]:
        raise DatasetError(f"RDM file {file} is not square: its RDMs are {array.shape[-2]} x {array.shape[-1]} "
                           f"(shape {shape}); expected {SHAPES}.")
    _check_entries(array, file)
    if array.ndim == 4:
        if array.shape[1] > 1:
            notes.append(f"{array.shape[1]} sessions averaged per subject")
        array = array.mean(axis=1)
    if n_items is not None and array.shape[-1] != n_items:
        raise DatasetError(f"RDM file {file} is over {array.shape[-1]} items but {n_items_of} has {n_items}; its "
                           f"rows and columns must be the same items, in the same order.")
    return RdmFile(file, np.ascontiguousarray(array, dtype=np.float64), "; ".join(notes))


def group_name(path: Path) -> tuple[str, bool]:
    """(the group's name, whether it is a model RDM) of an RDM file or per-subject folder."""
    stem = path.name if path.is_dir() or path.suffix.lower() not in RDM_SUFFIXES else path.stem
    if stem.startswith(MODEL_PREFIX) and len(stem) > len(MODEL_PREFIX):
        return stem[len(MODEL_PREFIX):], True
    for descriptor in DESCRIPTORS:
        if stem.endswith(descriptor) and len(stem) > len(descriptor):
            return stem[:-len(descriptor)], False
    return stem, False


def read_rdm_group(path: str | Path, n_items: int | None = None) -> RdmReference:
    """A group file ((S, N, N) & co.) or a folder of one file per subject -> RdmReference (S, N, N)."""
    location = Path(path).expanduser()
    name, _ = group_name(location)
    if location.is_dir():
        files = _rdm_files(location)
        if not files:
            raise DatasetError(f"RDM folder {location} holds no {'/'.join(RDM_SUFFIXES)} file; put one RDM file per "
                               f"subject there.")
        read = [read_rdm_file(file, n_items, sessions=True) for file in files]
        sizes = {file.path.name: file.rdms.shape[-1] for file in read}
        if len(set(sizes.values())) > 1:
            raise DatasetError(f"the subjects of RDM folder {location} have different N: "
                               + ", ".join(f"{file}: {n}" for file, n in sizes.items())
                               + "; every subject's RDM must be over the same items.")
        notes = sorted({file.note for file in read if file.note})
        return RdmReference(name, np.concatenate([file.rdms for file in read]), tuple(file.stem for file in files),
                            "; ".join(notes), tuple(files))
    read = read_rdm_file(location, n_items)
    subjects = tuple(f"s{index + 1:02d}" for index in range(len(read.rdms)))
    return RdmReference(name, read.rdms, subjects, read.note, (location,))


def read_rdm_groups(paths: Sequence[str | Path], n_items: int | None = None
                    ) -> tuple[tuple[RdmReference, ...], tuple[RdmReference, ...]]:
    """Files or per-subject folders -> (reference groups, model RDMs), all over the same N items (`n_items` when
    given); DatasetError naming the files when their N differ or two share a name."""
    references, models = [], []
    for path in paths:
        location = Path(path).expanduser()
        if not location.exists():
            raise MissingPathError(f"RDM file {location} not found; give an existing {'/'.join(RDM_SUFFIXES)} file "
                                   f"or a folder of per-subject files.", location)
        group = read_rdm_group(location, n_items)
        if group_name(location)[1]:
            if group.n_subjects != 1:
                raise DatasetError(f"model RDM file {location} holds {group.n_subjects} RDMs; a model_<name> file is "
                                   f"one N x N RDM (rename it without `model_` if these are subjects).")
            models.append(group)
        else:
            references.append(group)
    found = references + models
    sizes = {group.sources[0].name if len(group.sources) == 1 else group.sources[0].parent.name: group.n_items
             for group in found}
    if len(set(sizes.values())) > 1:
        raise DatasetError("the RDM files are over different numbers of items: "
                           + ", ".join(f"{name}: N={n}" for name, n in sizes.items())
                           + "; every RDM must be over the same N items, in the same order.")
    for kind, groups in (("reference group", references), ("model RDM", models)):
        names = pd.Series([group.name for group in groups])
        if names.duplicated().any():
            clash = names[names.duplicated()].iloc[0]
            raise DatasetError(f"two files give the {kind} {clash!r}: "
                               f"{listing([str(g.sources[0]) for g in groups if g.name == clash])}; rename one.")
    return tuple(references), tuple(models)


def read_neural_folder(root: str | Path) -> NeuralFolder:
    """A folder in the `neural:` layout (module doc) -> NeuralFolder; RDMs checked against its N items."""
    folder = existing_folder(root, "neural data folder")
    rdm_folder = folder / RDM_FOLDER if (folder / RDM_FOLDER).is_dir() else folder
    entries = _rdm_files(rdm_folder) + sorted(path for path in rdm_folder.iterdir() if path.is_dir()
                                              and not path.name.startswith(".") and rdm_folder != folder)
    paths, metadata = _items(folder)
    if not entries and (folder / PATTERN_FOLDER).is_dir() and metadata is not None:
        return NeuralFolder(f"neural:{folder.name}", folder, paths, metadata, (), ())  # response patterns only
    if not entries:
        raise DatasetError(f"{folder} holds no RDM files; put them in {folder / RDM_FOLDER}/<group>.npy ((N, N), "
                           f"(S, N, N) or (S, R, N, N)) or {RDM_FOLDER}/<group>/<subject>.npy.")
    references, models = read_rdm_groups(entries, len(metadata) if metadata is not None else None)
    if not references:
        raise DatasetError(f"{rdm_folder} holds only model RDMs ({listing([m.name for m in models])}); add at least "
                           f"one reference group (a file not starting with `{MODEL_PREFIX}`).")
    if metadata is None:
        ids = [ITEM_ID_FORMAT.format(row) for row in range(references[0].n_items)]
        metadata = pd.DataFrame({"image_id": ids, "category": "all", "group": ids})
    return NeuralFolder(f"neural:{folder.name}", folder, paths, metadata, references, models)


def split_rdms_option(spec: str) -> tuple[str, tuple[str, ...]]:
    """(the spec without `|rdms=<file>[,<file>]`, the files it names); several `|rdms=` options add up."""
    return split_files_option(spec, RDMS_OPTION)


def split_files_option(spec: str, option: str) -> tuple[str, tuple[str, ...]]:
    """(the spec without `|<option>=<file>[,<file>]`, the files it names); several such options add up."""
    kept, files = [], []
    for part in spec.strip().split("|"):
        key, equals, value = (piece.strip() for piece in part.partition("="))
        if key == option and equals:
            named = [file.strip() for file in value.split(",") if file.strip()]
            if not named:
                raise DatasetError(f"dataset spec {spec!r}: `|{option}=` names no file; write "
                                   f"|{option}=<file>[,<file>].")
            files.extend(named)
        else:
            kept.append(part)
    return "|".join(kept).strip(), tuple(files)


def _items(folder: Path) -> tuple[tuple[Path, ...], pd.DataFrame | None]:
    """(N image paths or (), N-row metadata) from stimuli.csv or images/; (() , None) when neither is there."""
    csv_file = folder / STIMULI_FILE
    if csv_file.is_file():
        try:
            table = pd.read_csv(io.StringIO(read_text(csv_file)), dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
            raise DatasetError(f"cannot parse {csv_file} ({error}); it must be a comma-separated table with a header "
                               f"row, one row per item in the RDMs' order.") from error
        table.columns = [str(column).strip() for column in table.columns]
        if not len(table):
            raise DatasetError(f"{csv_file} has no rows; it needs one row per item, in the RDMs' order.")
        paths: tuple[Path, ...] = ()
        if "path" in table.columns:
            require_filled(table.replace("", np.nan), "path", csv_file.name)
            paths = tuple(absolute(folder, value.strip()) for value in table["path"])
            require_files(paths, [f"line {row + 2}" for row in range(len(paths))], str(csv_file),
                          "fix the `path` values (relative to the folder or absolute)")
        metadata = table.apply(lambda column: column.str.strip())
        for column in ("image_id", "category"):
            if column in metadata.columns:
                require_filled(metadata.replace("", np.nan), column, csv_file.name)
        if "image_id" not in metadata.columns:
            metadata["image_id"] = ([path.stem for path in paths] if paths
                                    else [ITEM_ID_FORMAT.format(row) for row in range(len(table))])
        metadata["category"] = metadata["category"] if "category" in metadata.columns else "all"
        metadata["group"] = metadata["group"] if "group" in metadata.columns else metadata["category"]
        for column in metadata.columns.difference(["image_id", "category", "group", "path"]):
            values = pd.to_numeric(metadata[column], errors="coerce")
            if values.notna().all():  # flags and numbers as numbers, like a manifest's columns
                metadata[column] = values
        return paths, metadata
    image_folder = folder / IMAGE_FOLDER
    if image_folder.is_dir():
        paths = tuple(sorted(path for path in image_folder.iterdir() if path.is_file()
                             and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")))
        if paths:
            ids = [path.stem for path in paths]
            return paths, pd.DataFrame({"image_id": ids, "category": "all", "group": ids})
    return (), None


def _rdm_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.is_file() and not path.name.startswith(".")
                  and path.suffix.lower() in RDM_SUFFIXES and path.name != STIMULI_FILE)


def _load_array(file: Path) -> np.ndarray:
    """The file's numbers as a float64 array (.npy any shape; .txt / .csv 1-D or 2-D)."""
    if not file.is_file():
        message = f"RDM file {file} not found; give an existing {'/'.join(RDM_SUFFIXES)} file."
        raise MissingPathError(message, file) if not file.exists() else DatasetError(message)
    try:
        if file.suffix.lower() == ".npy":
            array = np.load(file, allow_pickle=False)
        else:
            text = read_text(file)
            array = np.loadtxt(io.StringIO(text), delimiter="," if file.suffix.lower() == ".csv" else None)
    except (ValueError, OSError, EOFError) as error:
        raise DatasetError(f"cannot read RDM file {file} ({error}); give a .npy array or a whitespace (.txt) / "
                           f"comma-separated (.csv) matrix of numbers without a header.") from error
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise DatasetError(f"RDM file {file} holds {array.dtype} values, not numbers; save a float array.")
    return array.astype(np.float64)


def _triangular(k: int) -> bool:
    """Whether k = N(N-1)/2 for some N >= 2 (the length of a condensed RDM)."""
    n = int(round((1 + np.sqrt(1 + 8 * k)) / 2))
    return k > 0 and n * (n - 1) // 2 == k


def _from_condensed(vector: np.ndarray, file: Path) -> np.ndarray:
    """(N(N-1)/2,) upper triangle, row by row -> (N, N) symmetric with a zero diagonal."""
    k = len(vector)
    n = int(round((1 + np.sqrt(1 + 8 * k)) / 2))
    if k == 0 or n * (n - 1) // 2 != k:
        below = max(2, int((1 + np.sqrt(1 + 8 * k)) / 2))
        raise DatasetError(f"RDM file {file} is 1-D with {k} values, which is not N(N-1)/2 for any N (N={below}: "
                           f"{below * (below - 1) // 2}, N={below + 1}: {(below + 1) * below // 2}); a condensed RDM "
                           f"lists the N(N-1)/2 entries above the diagonal, row by row.")
    square = np.zeros((n, n))
    upper = np.triu_indices(n, 1)
    square[upper] = vector
    square[(upper[1], upper[0])] = vector
    return square


def _check_entries(array: np.ndarray, file: Path) -> None:
    """NaN / infinite entries, asymmetry and a non-zero diagonal of (S, N, N) or (S, R, N, N) RDMs, named."""
    stacked = array.reshape(-1, *array.shape[-2:])
    bad = np.argwhere(~np.isfinite(stacked))
    if len(bad):
        where = [_entry(array, index, row, column) for index, row, column in bad]
        raise DatasetError(f"RDM file {file} has {len(bad)} NaN or infinite entr{'y' if len(bad) == 1 else 'ies'} "
                           f"(row, column counted from 0): {_semicolons(where)}; fill them in (or leave those items "
                           f"or subjects out of the file).")
    diagonal = np.diagonal(stacked, axis1=1, axis2=2)
    off = np.argwhere(np.abs(diagonal) > TOLERANCE)
    if len(off):
        where = [f"{_entry(array, index, item, item)} = {diagonal[index, item]:.6g}" for index, item in off]
        raise DatasetError(f"RDM file {file} has a non-zero diagonal ({len(off)} entries, counted from 0): "
                           f"{_semicolons(where)}; an "
                           f"item's dissimilarity to itself is 0 (a similarity or correlation matrix? convert it, "
                           f"e.g. 1 - r).")
    gap = np.abs(stacked - stacked.transpose(0, 2, 1))
    if gap.max() > TOLERANCE:
        index, row, column = np.unravel_index(int(gap.argmax()), gap.shape)
        raise DatasetError(f"RDM file {file} is not symmetric: {_entry(array, index, row, column)} = "
                           f"{stacked[index, row, column]:.6g} but ({column}, {row}) = "
                           f"{stacked[index, column, row]:.6g} (counted from 0; "
                           f"{int((gap > TOLERANCE).sum() // 2)} pair(s) differ by more than {TOLERANCE:g}); an RDM "
                           f"must be symmetric.")


def _semicolons(items: Sequence[str]) -> str:
    """`listing` with '; ' between the items (an entry's own text holds commas)."""
    more = len(items) - LISTED_AT_MOST
    return "; ".join(list(items)[:LISTED_AT_MOST]) + (f" (and {more} more)" if more > 0 else "")


def _entry(array: np.ndarray, index: int, row: int, column: int) -> str:
    """'subject 2, session 1, (3, 5)' for the stacked RDM `index` of an (S, N, N) / (S, R, N, N) array (1-based
    subjects and sessions, 0-based items)."""
    cell = f"({row}, {column})"
    if array.ndim == 4:
        subject, session = divmod(int(index), array.shape[1])
        return f"subject {subject + 1}, session {session + 1}, {cell}"
    return f"subject {int(index) + 1}, {cell}" if array.shape[0] > 1 else cell


def describe_groups(references: Sequence[RdmReference]) -> str:
    """'hIT (4 subjects; 2 sessions averaged per subject), mIT (1 subject)' for captions and provenance."""
    return ", ".join(f"{group.name} ({group.n_subjects} subject{'s' if group.n_subjects != 1 else ''}"
                     + (f"; {group.note}" if group.note else "") + ")" for group in references)
