"""Provenance: what produced a figure or table, so that every export can say it and a rerun can reproduce it.

A `Provenance` names the dataset, the stored feature sets behind a result (built from the `FeatureKey`s
they were looked up by: encoder spec, weight identity, layer, pooling, preprocessing, input view and the
fingerprint of the images), the analysis parameters and the library versions. Exports carry it as
columns of a table (`with_columns`) or as provenance.json beside the data (`to_json`).
"""
from __future__ import annotations

import functools
import json
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from core.features.store import FeatureKey, FeatureStore

PROVENANCE_FILE = "provenance.json"
COLUMN_PREFIX = "provenance_"
# Distributions whose versions can change the numbers (read with importlib.metadata: nothing is imported).
PACKAGES = ("numpy", "scipy", "scikit-learn", "POT", "torch", "torchvision", "timm", "open_clip_torch", "pillow",
            "umap-learn", "pandas", "streamlit")
RECORD_COLUMNS = ("encoder", "weights", "layer", "pooling", "resolution", "crop", "normalisation", "interpolation",
                  "view", "images_fingerprint", "device")
# Table columns that name each row's feature set, tried in order, and the record fields they hold.
ROW_KEYS = ((("encoder", "layer"), ("encoder", "layer")), (("model",), ("label",)), (("encoder",), ("label",)))
OPEN_CLIP_RESIZE = {"shortest": "shorter side resized, centre crop", "longest": "longer side resized, padded",
                    "squash": "squashed to size, no crop"}


@dataclass(frozen=True)
class FeatureRecord:
    """What produced one stored (N, D) feature array: its FeatureKey, with the preprocessing parsed."""

    label: str  # how the page's tables name this feature set, e.g. "pixels:32 · final"
    encoder: str  # canonical spec
    weights: str  # weight identity: tag, package file, seed or file hash
    layer: str
    pooling: str
    preprocess: dict = field(hash=False)  # the encoder's config: input size, crop, normalisation, interpolation
    view: str  # input transform before preprocessing: clean, a corruption, augmented views
    images_fingerprint: str  # FeatureKey.dataset: of the dataset, a subset of it or its augmented views
    device: str = ""  # where the array was extracted (CUDA: bf16/fp16 autocast), from the store's index

    @classmethod
    def from_key(cls, key: FeatureKey, label: str = "{encoder} · {layer}",
                 store: FeatureStore | None = None) -> FeatureRecord:
        """The record of `key`; `label` is formatted with the key's fields; `store` tells the extraction device."""
        info = store.info(key) if store is not None else None
        return cls(label.format(**asdict(key)), key.encoder, key.weights, key.layer, key.pooling,
                   json.loads(key.preprocess), key.view, key.dataset, (info or {}).get("device", ""))

    def row(self) -> dict[str, str]:
        """The record as one table row (RECORD_COLUMNS), its preprocessing readable."""
        return {"encoder": self.encoder, "weights": self.weights, "layer": self.layer, "pooling": self.pooling,
                **readable_preprocess(self.preprocess), "view": self.view,
                "images_fingerprint": self.images_fingerprint, "device": self.device}


@dataclass(frozen=True)
class Provenance:
    """The dataset, the feature sets behind a result, the analysis parameters and the library versions."""

    dataset: str  # name
    dataset_fingerprint: str
    records: tuple[FeatureRecord, ...] = ()
    parameters: dict = field(default_factory=dict, hash=False)  # what the page's core call took
    versions: dict = field(default_factory=lambda: library_versions(), hash=False)
    skipped_images: tuple[str, ...] = ()  # unreadable images left out of the dataset ("<path> (<why>)")

    def to_json(self) -> str:
        """Everything, as indented JSON with sorted keys (provenance.json; PNG/SVG/PDF/HTML metadata);
        `skipped_images` only where the dataset left images out."""
        skipped = {"skipped_images": list(self.skipped_images)} if self.skipped_images else {}
        return json.dumps({"dataset": self.dataset, "dataset_fingerprint": self.dataset_fingerprint, **skipped,
                           "features": [asdict(record) for record in self.records], "parameters": self.parameters,
                           "versions": self.versions}, indent=2, sort_keys=True, default=_plain)

    def to_dict(self) -> dict:
        """`to_json` parsed back: plain JSON types only."""
        return json.loads(self.to_json())

    def table(self) -> pd.DataFrame:
        """One row per feature set, columns RECORD_COLUMNS (for the pages' Provenance expander)."""
        return pd.DataFrame([record.row() for record in self.records], columns=list(RECORD_COLUMNS))

    def with_columns(self, table: pd.DataFrame) -> pd.DataFrame | None:
        """`table` plus `provenance_*` columns, or None when its rows cannot carry them (export provenance.json then).

        Each row gets the columns of its own feature set where the table's encoder and layer (or model)
        columns name the records, else those of the only record; the dataset, parameters and versions go
        on every row. None when several records cannot be told apart by row, or a parameter is a mapping.
        """
        rows = self._record_rows(table)
        if rows is None or self._nested_parameters:
            return None
        shared = {"dataset": self.dataset, "dataset_fingerprint": self.dataset_fingerprint,
                  **({"skipped_images": "; ".join(self.skipped_images)} if self.skipped_images else {}),
                  **{f"parameter_{name}": _cell(value) for name, value in self.parameters.items()},
                  **{f"version_{name}": version for name, version in self.versions.items()}}
        per_row = self.table().iloc[rows].set_axis(table.index) if self.records else pd.DataFrame(index=table.index)
        return pd.concat([table, per_row.assign(**shared).add_prefix(COLUMN_PREFIX)], axis=1)

    def carries_columns(self, table: pd.DataFrame) -> bool:
        """True when `with_columns(table)` gives columns; cheap, it builds none (export buttons ask on every rerun)."""
        return self._record_rows(table) is not None and not self._nested_parameters

    @property
    def _nested_parameters(self) -> bool:
        return any(isinstance(value, Mapping) for value in self.parameters.values())

    def _record_rows(self, table: pd.DataFrame) -> list[int] | None:
        """Position in `records` of each row's feature set ([] without records), None when rows match no single one."""
        if len(self.records) <= 1:
            return [0] * len(table) if self.records else []
        for columns, fields in ROW_KEYS:
            names = pd.MultiIndex.from_tuples([tuple(getattr(record, name) for name in fields)
                                               for record in self.records])
            if not set(columns) <= set(table.columns) or names.has_duplicates:
                continue
            rows = names.get_indexer(pd.MultiIndex.from_frame(table[list(columns)].astype(str)))
            if (rows >= 0).all():
                return rows.tolist()
        return None


def provenance_from_keys(keys: Iterable[FeatureKey], parameters: Mapping[str, Any] | None = None, *, dataset: str,
                         dataset_fingerprint: str, label: str = "{encoder} · {layer}",
                         store: FeatureStore | None = None, skipped_images: Iterable[str] = ()) -> Provenance:
    """The provenance of a result computed from the features stored under `keys` (each once, in order).

    `label` formats how the page's tables name a feature set from its key's fields (the Affect page:
    "{encoder} [{layer}]"); it lets `with_columns` match a table's `model` column to the records. With the
    `store` that holds the features, each record also names the device they were extracted on. `skipped_images`:
    the dataset's unreadable images left out (`ImageSet.skipped_labels`).
    """
    records = tuple(FeatureRecord.from_key(key, label, store) for key in dict.fromkeys(keys))
    return Provenance(dataset, dataset_fingerprint, records, dict(parameters or {}),
                      skipped_images=tuple(skipped_images))


def readable_preprocess(preprocess: Mapping[str, Any]) -> dict[str, str]:
    """Resolution, crop, normalisation and interpolation of a timm, open_clip or pixels preprocessing config."""
    size = list(preprocess.get("input_size", []))[1:] or preprocess.get("size") or preprocess.get("resize") or []
    if "crop_pct" in preprocess:
        crop = f"{preprocess.get('crop_mode', 'center')} crop, crop_pct {preprocess['crop_pct']:g}"
    elif "resize_mode" in preprocess:
        crop = OPEN_CLIP_RESIZE.get(preprocess["resize_mode"], f"resize_mode {preprocess['resize_mode']}")
    else:
        crop = "none (whole image resized)"
    if "mean" in preprocess:
        normalisation = f"mean {_numbers(preprocess['mean'])}, std {_numbers(preprocess['std'])}"
    else:
        normalisation = f"scaled to {preprocess['scale']}" if "scale" in preprocess else "none"
    return {"resolution": "x".join(str(side) for side in size) or "unknown", "crop": crop,
            "normalisation": normalisation, "interpolation": str(preprocess.get("interpolation", "unknown"))}


def library_versions() -> dict[str, str]:
    """repscope (its git commit, "-dirty" with local changes, else "unknown"), python and PACKAGES' versions."""
    return dict(_versions())


@functools.cache  # the packages a process has loaded do not change under it, and git runs once
def _versions() -> tuple[tuple[str, str], ...]:
    versions = {"repscope": _git_commit(), "python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return tuple(versions.items())


def _git_commit() -> str:
    try:
        described = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=40"], capture_output=True,
                                   text=True, timeout=5, cwd=Path(__file__).resolve().parents[1])
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return described.stdout.strip() if described.returncode == 0 and described.stdout.strip() else "unknown"


def _numbers(values) -> str:
    return ", ".join(str(value) for value in values)


def _cell(value: Any) -> Any:
    """A parameter as one CSV cell: scalars as they are, anything else as JSON."""
    return value if value is None or isinstance(value, (str, int, float, bool)) else json.dumps(value, default=_plain)


def _plain(value: Any) -> Any:
    """JSON for numpy scalars and arrays, anything else by its str."""
    return value.tolist() if hasattr(value, "tolist") else str(value)
