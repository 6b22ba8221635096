"""Dataset loaders (OASIS, THINGS, category folders, CSV manifests, the procedural demo, embeddings only).

Every loader returns an `ImageSet`: absolute image paths, a metadata table aligned with them (image_id, category,
group, optional valence/arousal, extras), optional named reference ("human") embeddings and a fingerprint for cache
keys (of the images' bytes: core.data.fingerprints). The layouts are read by core.data.layouts, images decoded by
core.data.images. An `embeddings:` set has references and no images at all (`has_images` False): nothing that decodes
images may be given one. Loading never decodes images, so even large sets load quickly; `check_images` finds every
unreadable image in one pass (about 1 ms per image) and `load_image` names the file it fails on. A spec ending in
`|unreadable=skip` decodes every image at load and leaves the unreadable ones out: the set lists them
(`ImageSet.skipped`), its fingerprint hashes them, and every export's provenance names them. Every bad input
raises `DatasetError` with a message naming the file, row or column and what to do about it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from core.data.demo import REFERENCE_FILE, ensure_demo
from core.data.embeddings import Reference, load_embedding, read_representations
from core.data.fingerprints import ImageIdentity, image_stats, relative_label
from core.data.images import unreadable_reason
from core.data.layouts import (AFFECT_COLUMNS, DEFAULT_CATEGORY, read_image_folder, read_manifest, read_oasis,
                               read_things)
from core.data.neural import RdmReference, read_neural_folder, read_rdm_groups, split_rdms_option
from core.data.patterns import PatternReference, read_pattern_folder, read_pattern_groups, split_patterns_option
from core.data.roots import DataRoots, data_roots
from core.data.tables import DatasetError, existing_folder, listing

CORE_COLUMNS = ("image_id", "category", "group")
THINGS_OPTIONS = ("unique_ids", "embedding", "categories")
EMBEDDINGS_OPTIONS = ("categories", "ids")
SKIP_UNREADABLE = "unreadable=skip"  # spec option: leave images that cannot be decoded out of the set
SELECTIONS_FOLDER = "selections"  # under the cache: item selections saved as manifests (core.data.selections)
SPEC_FORMS = ("demo", "oasis:<root>", "things:<root>", "folder:<root>", "manifest:<csv>",
              "embeddings:<folder | file1,file2,...>", "neural:<folder>")
SKIPPING_KINDS = ("oasis", "things", "folder", "manifest", "neural")

DATASET_SPEC_HELP = (
    "Dataset spec: `demo` (a procedural 384-image set with known valence/arousal, generated once in "
    "the cache); `oasis:<root>` (a folder holding OASIS.csv and images/<Theme>.jpg); "
    "`things:<root>` (THINGS layout root/object_images/<concept>/..., first image per concept, "
    "concept order from root/unique_id.txt; append `|embedding=<.txt|.npy>`, "
    "`|categories=<one-hot .csv | category .tsv>` or `|unique_ids=<file>` to attach a human "
    "embedding, categories or another concept order); `folder:<root>` (root/<category>/<image>); "
    "`manifest:<csv>` (a CSV with a `path` column, relative to the CSV or absolute, and optional "
    "category, group, image_id, valence, arousal and any other columns); `embeddings:<folder | file1,file2,...>` "
    "(representations without images: every .npy/.txt/.csv matrix, (N, d) or (1, N, d), is one representation of "
    "the same N items, named by its file stem; a one-hot category CSV in the folder gives the categories and item "
    "ids; append `|categories=<.csv>` or `|ids=<file, one id per line>` to name them); `neural:<folder>` (neural / "
    "behavioural RDMs per subject, e.g. the 92-image set: <folder>/stimuli.csv with `path` and `category` "
    "columns, <folder>/rdms/<group>.npy as (N, N), condensed, (S, N, N) or (S, R, N, N) with sessions averaged, "
    "rdms/model_<name>.npy model RDMs; without images the set is RDM-only). Append `|rdms=<file>[,<file>]` to any "
    "spec to attach RDM files of the same items (a group per file, named by its stem), `|patterns=<file or "
    "folder>` to attach response patterns ((N, U) or (R, N, U) repetitions per subject; <folder>/patterns/ of a "
    "neural folder likewise). Append `|unreadable=skip` "
    "to an oasis, things, folder, manifest or neural spec to leave out the images that cannot be decoded (each is "
    "decoded once at load; the skipped files are listed and named in every export's provenance)."
)


@dataclass(frozen=True)
class SkippedImage:
    """An image left out of a set loaded with `|unreadable=skip`: its path relative to the root, and why."""

    label: str
    reason: str


@dataclass(frozen=True, eq=False)
class ImageSet:
    """N items (images, or only representations when `paths` is empty) with aligned metadata rows and
    named (N, d) references."""

    name: str
    root: Path
    paths: tuple[Path, ...]
    metadata: pd.DataFrame
    fingerprint: str
    references: tuple[Reference, ...] = ()
    skipped: tuple[SkippedImage, ...] = ()  # unreadable images left out (`|unreadable=skip`), in path order
    identity: ImageIdentity = ImageIdentity()  # how images count in fingerprints (of this set and its subsets)
    rdm_references: tuple[RdmReference, ...] = ()  # neural / behavioural groups, (S, N, N) each (core.data.neural)
    model_rdms: tuple[RdmReference, ...] = ()  # model RDMs shipped with the data (S = 1 each), not references
    pattern_references: tuple[PatternReference, ...] = ()  # response patterns per subject (core.data.patterns)

    def __post_init__(self) -> None:
        rows = [len(reference.embedding) for reference in self.references]
        rows += [group.n_items for group in self.rdm_references + self.model_rdms + self.pattern_references]
        aligned = (not self.paths or len(self.paths) == len(self.metadata)) and set(rows) <= {len(self.metadata)}
        if not aligned or not set(CORE_COLUMNS) <= set(self.metadata.columns):
            raise DatasetError(f"{self.name}: {len(self.paths)} paths, {len(self.metadata)} metadata rows with "
                               f"columns {list(self.metadata.columns)} and {rows} reference / RDM rows; "
                               f"need one row per item and the columns {list(CORE_COLUMNS)}.")

    def __len__(self) -> int:
        return len(self.metadata)

    @property
    def has_images(self) -> bool:
        """False for a set of representations or RDMs only (`embeddings:`, an RDM-only `neural:` folder): no
        extraction, image check or training."""
        return bool(self.paths)

    @property
    def skipped_labels(self) -> tuple[str, ...]:
        """Each skipped image as "<path relative to the root> (<why>)", for provenance and the sidebar."""
        return tuple(f"{image.label} ({image.reason})" for image in self.skipped)

    @property
    def reference_embedding(self) -> np.ndarray | None:
        """(N, d) float32 first reference, or None."""
        return self.references[0].embedding if self.references else None

    @property
    def reference_name(self) -> str | None:
        """The first reference's name, or None."""
        return self.references[0].name if self.references else None

    def rdm_reference(self, name: str) -> RdmReference:
        """The RDM group (reference or model) called `name`; KeyError listing the names when there is none."""
        for group in self.rdm_references + self.model_rdms:
            if group.name == name:
                return group
        raise KeyError(f"{self.name} has no RDM group {name!r}; it has "
                       f"{[group.name for group in self.rdm_references + self.model_rdms]}.")

    @property
    def has_affect(self) -> bool:
        """True when both valence and arousal columns are present."""
        return all(column in self.metadata.columns for column in AFFECT_COLUMNS)

    @property
    def categories(self) -> list[str]:
        """Sorted unique category names."""
        return sorted(self.metadata["category"].unique().tolist())

    def subset(self, indices: Sequence[int]) -> ImageSet:
        """Rows `indices` (n,) as a new ImageSet re-indexed 0..n-1, reference rows and fingerprint included."""
        rows = [int(index) for index in indices]
        return _assemble(self.name, self.root, self._paths_of(rows), self.metadata.iloc[rows].reset_index(drop=True),
                         self._references_of(rows), self.skipped, self.identity, **self._rdms_of(rows))

    def repeated(self, m: int) -> ImageSet:
        """Each image m times in a row (N·m rows): ids `<id>#<k>`, with `source_id` and `view` (k) columns."""
        rows = np.repeat(np.arange(len(self)), m)
        metadata = self.metadata.iloc[rows].reset_index(drop=True)
        metadata["source_id"], metadata["view"] = metadata["image_id"], np.tile(np.arange(m), len(self))
        metadata["image_id"] = metadata["source_id"].astype(str) + "#" + metadata["view"].astype(str)
        return _assemble(self.name, self.root, self._paths_of(rows), metadata, self._references_of(rows),
                         self.skipped, self.identity, **self._rdms_of(rows))

    def _paths_of(self, rows: Sequence[int]) -> tuple[Path, ...]:
        return tuple(self.paths[row] for row in rows) if self.paths else ()

    def _references_of(self, rows: Sequence[int]) -> tuple[Reference, ...]:
        return tuple(Reference(reference.name, reference.embedding[rows]) for reference in self.references)

    def _rdms_of(self, rows: Sequence[int] | None = None) -> dict:
        """The RDM groups over items `rows` (all when None), as keywords of `_assemble`."""
        return {field: tuple(group if rows is None else group.subset(rows) for group in getattr(self, field))
                for field in ("rdm_references", "model_rdms", "pattern_references")}


def skip_unreadable(image_set: ImageSet) -> ImageSet:
    """The set without the images that cannot be decoded, which it lists (`skipped`); DatasetError when none is left."""
    reasons = [unreadable_reason(path) for path in image_set.paths]
    kept = [row for row, reason in enumerate(reasons) if reason is None]
    if len(kept) == len(reasons):
        return image_set
    if not kept:
        raise DatasetError(f"dataset {image_set.name} ({image_set.root}): none of its {len(reasons)} images can be "
                           f"read (first: {image_set.paths[0]}: {reasons[0]}); check the folder or pick another "
                           f"dataset.")
    skipped = tuple(SkippedImage(relative_label(image_set.root, path), reason)
                    for path, reason in zip(image_set.paths, reasons) if reason is not None)
    return _assemble(image_set.name, image_set.root, tuple(image_set.paths[row] for row in kept),
                     image_set.metadata.iloc[kept].reset_index(drop=True),
                     image_set._references_of(kept), image_set.skipped + skipped, image_set.identity,
                     **image_set._rdms_of(kept))


def oasis(root: str | Path) -> ImageSet:
    """OASIS folder (OASIS.csv + images/<Theme>.jpg) -> ImageSet of N images with valence/arousal (1-7)."""
    folder = existing_folder(root, "OASIS root")
    paths, metadata = read_oasis(folder)
    return _assemble("oasis", folder, paths, metadata)


def demo(cache_dir: str | Path) -> ImageSet:
    """Procedural demo (384 images, see core.data.demo) with its (384, 48) synthetic human embedding."""
    folder = ensure_demo(cache_dir)
    paths, metadata = read_oasis(folder)
    reference = Reference("demo human", load_embedding(folder / REFERENCE_FILE, len(paths)))
    return _assemble("demo", folder, paths, metadata, (reference,))


def things(root: str | Path, *, unique_ids: str | Path | None = None, embedding: str | Path | None = None,
           categories: str | Path | None = None) -> ImageSet:
    """THINGS concept folders -> ImageSet of N concepts (first image each), optional (N, d) embedding."""
    folder = existing_folder(root, "THINGS root")
    paths, metadata, references = read_things(folder, unique_ids, embedding, categories)
    return _assemble("things", folder, paths, metadata, references)


def embeddings(location: str | Path, *, categories: str | Path | None = None,
               ids: str | Path | None = None) -> ImageSet:
    """Matrices of the same N items without images (core.data.embeddings) -> ImageSet of N items, no paths."""
    held = read_representations(location, categories=categories, ids=ids)
    metadata = pd.DataFrame({"image_id": held.ids, "category": DEFAULT_CATEGORY, "group": held.ids})
    if held.categories is not None:
        metadata["category"], metadata["categories"] = held.categories
    return _assemble(held.name, held.root, (), metadata, held.references)


def neural(root: str | Path) -> ImageSet:
    """A folder of per-subject RDMs (core.data.neural's layout, e.g. the 92-image set) -> ImageSet of N items with
    `rdm_references` and `model_rdms`; images from stimuli.csv's `path` column or images/, else RDM-only."""
    held = read_neural_folder(root)
    return _assemble(held.name, held.root, held.paths, held.metadata, rdm_references=held.references,
                     model_rdms=held.models, pattern_references=read_pattern_folder(held.root, len(held.metadata)))


def with_rdms(image_set: ImageSet, files: Sequence[str | Path]) -> ImageSet:
    """The set with the RDM files (core.data.neural: a group per file or per-subject folder, `model_<name>` a
    model RDM) added; each checked to be over the set's N items."""
    references, models = read_rdm_groups(files, len(image_set))
    return _assemble(image_set.name, image_set.root, image_set.paths, image_set.metadata, image_set.references,
                     image_set.skipped, image_set.identity, rdm_references=image_set.rdm_references + references,
                     model_rdms=image_set.model_rdms + models, pattern_references=image_set.pattern_references)


def with_patterns(image_set: ImageSet, files: Sequence[str | Path]) -> ImageSet:
    """The set with the response-pattern files or per-subject folders (core.data.patterns) of its items added."""
    groups = image_set.pattern_references + read_pattern_groups(files, len(image_set))
    return _assemble(image_set.name, image_set.root, image_set.paths, image_set.metadata, image_set.references,
                     image_set.skipped, image_set.identity, **(image_set._rdms_of() | {"pattern_references": groups}))


def image_folder(root: str | Path) -> ImageSet:
    """root/<category>/<image> tree -> ImageSet; image_id = relative path without extension, group = category."""
    folder = existing_folder(root, "image folder")
    paths, metadata = read_image_folder(folder)
    return _assemble(f"folder:{folder.name}", folder, paths, metadata)


def manifest(csv_path: str | Path, roots: DataRoots = DataRoots()) -> ImageSet:
    """CSV with a `path` column (+ optional category, group, image_id, valence, arousal, extras) -> ImageSet;
    every row's path must lie inside `roots` (checked before any image is looked at)."""
    csv_file = Path(csv_path).expanduser().resolve()
    paths, metadata = read_manifest(csv_file, roots)
    return _assemble(f"manifest:{csv_file.stem}", csv_file.parent, paths, metadata)


def load_dataset(spec: str, cache_dir: str | Path, roots: DataRoots | None = None) -> ImageSet:
    """Spec string (see DATASET_SPEC_HELP) -> ImageSet; cache_dir holds generated data (the demo) and the
    fingerprint registry (core.data.fingerprints: features cached under earlier fingerprints stay found).

    `roots` (default: the server's, core.data.roots.data_roots()) confine every path the spec names, every
    symlink below a named folder and every manifest row; a path outside is refused before it is opened.
    `|unreadable=skip` (oasis, things, folder, manifest, neural) leaves out the images that cannot be decoded;
    `|rdms=<file>[,<file>]` (any spec) attaches RDM files of the same items (core.data.neural), `|patterns=<file or
    folder>[,…]` response patterns (core.data.patterns)."""
    text, skipping = split_skip_option(spec)
    text, rdm_files = split_rdms_option(text)
    text, pattern_files = split_patterns_option(text)
    identity = ImageIdentity.at(cache_dir)
    if text == "demo":
        if skipping:
            raise DatasetError(f"dataset spec {spec!r}: `|{SKIP_UNREADABLE}` applies to "
                               f"{', '.join(SKIPPING_KINDS)} specs; the demo's images are always readable.")
        loaded = demo(cache_dir)
    else:
        loaded = _load(text, spec, cache_dir, roots)
    if rdm_files:
        for file in rdm_files:
            (data_roots() if roots is None else roots).check_tree(file, "RDM file")  # a per-subject folder too
        loaded = with_rdms(loaded, rdm_files)
    if pattern_files:
        for file in pattern_files:
            (data_roots() if roots is None else roots).check_tree(file, "pattern file")
        loaded = with_patterns(loaded, pattern_files)
    if skipping and not loaded.has_images:
        raise DatasetError(f"dataset spec {spec!r}: a set without images (embeddings, RDM-only) has no images to "
                           f"skip; drop `|{SKIP_UNREADABLE}`.")
    loaded = _with_identity(loaded, identity)
    return skip_unreadable(loaded) if skipping else loaded


def split_skip_option(spec: str) -> tuple[str, bool]:
    """(the spec without `|unreadable=skip`, whether it had it)."""
    parts = spec.strip().split("|")
    kept = [part for part in parts if part.strip().replace(" ", "") != SKIP_UNREADABLE]
    return "|".join(kept).strip(), len(kept) < len(parts)


def with_skip_option(spec: str, skipping: bool) -> str:
    """`spec` with `|unreadable=skip` appended (skipping) or removed."""
    text, _ = split_skip_option(spec)
    return f"{text}|{SKIP_UNREADABLE}" if skipping else text


def _with_identity(image_set: ImageSet, identity: ImageIdentity) -> ImageSet:
    """The set fingerprinted under `identity` (recomputed only where it may keep an earlier fingerprint)."""
    if identity.by_content and image_set.identity.by_content:
        return dataclasses.replace(image_set, identity=identity)
    return _assemble(image_set.name, image_set.root, image_set.paths, image_set.metadata, image_set.references,
                     image_set.skipped, identity, **image_set._rdms_of())


def _load(text: str, spec: str, cache_dir: str | Path, roots: DataRoots | None) -> ImageSet:
    """The set a spec without `|unreadable=skip` names (load_dataset)."""
    roots = data_roots() if roots is None else roots
    kind, separator, argument = text.partition(":")
    argument = argument.strip()
    loaders = {"oasis": oasis, "folder": image_folder, "manifest": lambda path: manifest(path, roots), "neural": neural}
    with_options = {"things": (things, "THINGS", THINGS_OPTIONS), "embeddings": (embeddings, "embeddings",
                                                                                  EMBEDDINGS_OPTIONS)}
    if not separator or (kind not in loaders and kind not in with_options):
        raise DatasetError(f"unknown dataset spec {spec!r}; valid forms: {', '.join(SPEC_FORMS)}.")
    if not argument:
        raise DatasetError(f"dataset spec {spec!r} names no path; write it as {kind}:<path>.")
    if kind in loaders:
        if not (kind == "manifest" and _saved_selection(argument, cache_dir)):  # its rows are still checked
            (roots.check if kind == "manifest" else roots.check_tree)(argument, f"{kind} path")
        return _confined(loaders[kind](argument), roots)
    loader, label, allowed = with_options[kind]
    root, *options = argument.split("|")
    keywords = {}
    for option in options:
        key, equals, value = (part.strip() for part in option.partition("="))
        if key not in allowed or not equals or not value:
            raise DatasetError(f"bad {label} option {option!r} in {spec!r}; use "
                               + ", ".join(f"|{name}=<file>" for name in allowed) + ".")
        keywords[key] = value
    for location in root.split(",") if kind == "embeddings" else [root]:
        if location.strip():
            roots.check_tree(location.strip(), f"{kind} path")
    for key, value in keywords.items():
        roots.check(value, f"{label} {key} file")
    return _confined(loader(root.strip(), **keywords), roots)


def _saved_selection(path: str, cache_dir: str | Path) -> bool:
    """A manifest the Explore page saved into the cache (`<cache>/selections/`, no symlink): it opens on a
    confined server too, since every row it lists is checked against the roots like any manifest's."""
    folder = (Path(cache_dir) / SELECTIONS_FOLDER).resolve()
    candidate = Path(path).expanduser()
    return not candidate.is_symlink() and candidate.resolve().parent == folder


def _confined(image_set: ImageSet, roots: DataRoots) -> ImageSet:
    """The loaded set, once every image path is checked against the roots (found files included)."""
    roots.check_all(image_set.paths, f"{image_set.name} image")
    return image_set


def _assemble(name: str, root: Path, paths: tuple[Path, ...], metadata: pd.DataFrame,
              references: tuple[Reference, ...] = (), skipped: tuple[SkippedImage, ...] = (),
              identity: ImageIdentity = ImageIdentity(), *, rdm_references: tuple[RdmReference, ...] = (),
              model_rdms: tuple[RdmReference, ...] = (),
              pattern_references: tuple[PatternReference, ...] = ()) -> ImageSet:
    """Validate metadata (N rows), order its columns, fingerprint, and build the ImageSet."""
    if not paths and (not (references or rdm_references) or not len(metadata)):
        raise DatasetError(f"dataset {name} ({root}) contains no {'items' if references else 'images'}; add "
                           f"{'rows' if references else 'images'} or pick another dataset.")
    table = metadata.reset_index(drop=True)
    for column in CORE_COLUMNS:
        table[column] = table[column].astype(str)
    duplicated = table["image_id"][table["image_id"].duplicated()].unique().tolist()
    if duplicated:
        raise DatasetError(f"dataset {name}: duplicate image ids {listing(duplicated)}; every image needs a "
                           f"unique id (rename or remove the duplicates).")
    for column in AFFECT_COLUMNS:
        if column in table.columns:
            table[column] = table[column].astype(np.float64)
    extras = [column for column in table.columns if column not in CORE_COLUMNS + AFFECT_COLUMNS]
    table = table[[c for c in CORE_COLUMNS + AFFECT_COLUMNS if c in table.columns] + extras]
    references = tuple(Reference(reference.name, np.ascontiguousarray(reference.embedding, dtype=np.float32))
                       for reference in references)
    rdms = tuple(("reference", group) for group in rdm_references) + tuple(("model", group) for group in model_rdms)
    rdms += tuple(("patterns", group) for group in pattern_references)
    return ImageSet(name=name, root=root, paths=paths, metadata=table,
                    fingerprint=_fingerprint(root, paths, table, references, skipped, identity, rdms),
                    references=references, skipped=skipped, identity=identity, rdm_references=tuple(rdm_references),
                    model_rdms=tuple(model_rdms), pattern_references=tuple(pattern_references))


def _fingerprint(root: Path, paths: tuple[Path, ...], metadata: pd.DataFrame, references: tuple[Reference, ...],
                 skipped: tuple[SkippedImage, ...], identity: ImageIdentity,
                 rdms: tuple[tuple[str, RdmReference | PatternReference], ...] = ()) -> str:
    """sha256 over every image's (relative path, size, content digest), the metadata CSV, every reference's bytes,
    when images were skipped their paths, and every RDM group's name, subjects and values (core.data.fingerprints;
    `identity` keeps earlier fingerprints)."""
    tail = metadata.to_csv().encode()
    for reference in references:  # names left out: one reference hashes as before references had names
        tail += f"{reference.embedding.shape}".encode() + reference.embedding.tobytes()
    if skipped:  # a set without skips hashes as before skipping existed
        tail += "".join(f"skipped\0{image.label}\n" for image in skipped).encode()
    for role, group in rdms:  # a set without RDMs hashes as before RDMs existed
        tail += role.encode() + b"\0" + group.fingerprint_bytes()
    return identity.fingerprint(image_stats(root, paths), tail)


def per_class_subset(image_set: ImageSet, images_per_class: int | None, seed: int = 0) -> np.ndarray:
    """(n,) sorted row indices: at most `images_per_class` random images of each category (all when None)."""
    categories = image_set.metadata["category"].astype(str).to_numpy()
    rng = np.random.default_rng(seed)
    rows = []
    for category in sorted(set(categories)):
        members = np.flatnonzero(categories == category)
        take = len(members) if images_per_class is None else min(images_per_class, len(members))
        rows.extend(rng.choice(members, size=take, replace=False))
    return np.sort(np.array(rows, dtype=int))
