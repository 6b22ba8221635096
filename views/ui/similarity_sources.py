"""Where the Similarity page's representations come from: extracted encoder layers, the dataset's reference
embeddings, uploads; and the depth table a curve draws."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import streamlit as st

from core.analyses.rdm import load_matrix
from core.analyses.similarity import MATRICES_FOLDER, SimilarityMatrix, SimilarityStore, fingerprint, percentile_interval
from core.data.datasets import ImageSet
from core.encoders.specs import ModelLayer
from core.features.extract import feature_keys
from core.features.store import FeatureKey
from core.paths import cache_root
from views.ui import resources
from views.ui.extraction import extraction_panel
from views.ui.sidebar import Selection, effective_pooling


@dataclass(frozen=True)
class SimilaritySource:
    """One representation of the dataset's items: an encoder layer, a reference embedding or an upload."""

    label: str
    fingerprint: str  # a layer: its feature key's digest; else the array's sha256
    encoder: str = ""  # an encoder layer: its spec
    layer: str = ""
    depth: float = float("nan")  # 0 = the encoder's first selected layer, 1 = its last
    pooling: str = ""
    feature_key: FeatureKey | None = None
    matrix: np.ndarray | None = field(default=None, compare=False, repr=False)  # a reference or an upload: (N, d)


def layer_sources(image_set: ImageSet, selection: Selection, statuses) -> dict[str, SimilaritySource]:
    """Every cached encoder × layer of the sidebar's selection, in model order."""
    sources = {}
    for spec in selection.encoders:
        pooling = effective_pooling(spec, selection.pooling)
        cached = [status.layer for status in statuses if status.encoder == spec and status.state == "cached"]
        encoder = resources.encoder_info(spec)
        keys = feature_keys(image_set, encoder, cached, pooling) if cached else {}
        for index, layer in enumerate(cached):
            label = ModelLayer(spec, layer).label
            sources[label] = SimilaritySource(label, keys[layer].digest, spec, layer,
                                              index / max(len(cached) - 1, 1), pooling, keys[layer])
    return sources


def dataset_sources(image_set: ImageSet, selection: Selection) -> dict[str, SimilaritySource]:
    """Every representation of the dataset's items the page can use: the extracted encoder layers of the sidebar's
    selection (a collapsed Features panel extracts the missing ones), then the dataset's reference embeddings."""
    sources = {}
    if image_set.has_images:
        with st.expander("Features", expanded=False):
            statuses = extraction_panel(image_set, selection)
        sources |= layer_sources(image_set, selection, statuses)
    return sources | reference_sources(image_set)


def reference_sources(image_set: ImageSet) -> dict[str, SimilaritySource]:
    """The dataset's reference (human) embeddings, `human · <name>`."""
    return {f"human · {reference.name}": SimilaritySource(f"human · {reference.name}",
                                                          fingerprint(reference.embedding),
                                                          matrix=reference.embedding)
            for reference in image_set.references}


def upload_source(filename: str, data: bytes, items: Sequence[str]) -> dict[str, SimilaritySource]:
    """An uploaded N × d matrix of the (N,) items (rows in dataset order, or labelled in a CSV's first column)."""
    matrix, ids = load_matrix(data, filename)
    if matrix.ndim != 2:
        raise ValueError(f"{filename}: expected an N × d matrix; got shape {matrix.shape}.")
    if ids is not None:
        position = {item: row for row, item in enumerate(ids)}
        missing = [item for item in items if item not in position]
        if missing:
            raise ValueError(f"{filename}: no row for {len(missing)} item(s), e.g. {missing[0]!r}; label every item.")
        matrix = matrix[[position[item] for item in items]]
    if len(matrix) != len(items):
        raise ValueError(f"{filename}: {len(matrix)} rows but the dataset has {len(items)} items; one row per item, "
                         "in the dataset's order.")
    label = f"upload · {filename}"
    return {label: SimilaritySource(label, hashlib.sha256(data).hexdigest()[:16], matrix=matrix)}


def load_features(image_set: ImageSet, source: SimilaritySource) -> np.ndarray:
    """(N, d) array of a source (a layer's stored features are read from the feature store)."""
    if source.matrix is not None:
        return source.matrix
    return np.asarray(resources.feature_set(image_set, resources.encoder_info(source.encoder), source.layer,
                                            source.pooling).features)


@st.cache_resource
def similarity_store() -> SimilarityStore:
    """Similarity matrices on disk, shared by every session."""
    root = cache_root() / "results" / MATRICES_FOLDER
    earlier = cache_root() / "similarity"  # where matrices were kept before studies shared them: moved, not lost
    if earlier.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        for path in earlier.glob("*.npz"):
            path.replace(root / path.name)
    return SimilarityStore(root)


def depth_table(matrix: SimilarityMatrix, measure: str, sources: Mapping[str, SimilaritySource],
                references: Sequence[str]) -> pd.DataFrame:
    """encoder, layer, depth, value, ci_low, ci_high per row: the mean over the reference columns (its CI from
    the same resamples' means)."""
    m = matrix.measures.index(measure)
    columns = [matrix.columns.index(name) for name in references]
    records = []
    for r, row in enumerate(matrix.rows):
        low = high = float("nan")
        if matrix.resamples is not None:
            low, high = percentile_interval(matrix.resamples[m, r, columns].mean(axis=0))
        source = sources[row]
        records.append({"encoder": source.encoder, "layer": source.layer, "depth": source.depth,
                        "value": float(matrix.values[m, r, columns].mean()), "ci_low": low, "ci_high": high})
    return pd.DataFrame(records)
