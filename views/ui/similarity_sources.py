"""The representations of a dataset's items that the Similarity and Explore pages offer: the extracted encoder layers
of the sidebar's selection, the dataset's reference embeddings and (Similarity) uploads, each a `Representation`."""
from __future__ import annotations

from typing import Mapping

import numpy as np
import streamlit as st

from core.analyses.representation import Representation, layer_representation, reference_representation
from core.data.datasets import ImageSet
from core.encoders.specs import ModelLayer
from core.features.extract import feature_keys
from views.ui import resources
from views.ui.extraction import extraction_panel
from views.ui.sidebar import Selection


def layer_representations(image_set: ImageSet, selection: Selection, statuses) -> dict[str, Representation]:
    """Every cached encoder × layer of the sidebar's selection, in model order (depth 0 = its first, 1 = its last)."""
    found = {}
    for spec in selection.encoders:
        pooling = selection.pooling_of(spec)
        cached = [status.layer for status in statuses if status.encoder == spec and status.state == "cached"]
        keys = feature_keys(image_set, resources.encoder_info(spec), cached, pooling) if cached else {}
        for index, layer in enumerate(cached):
            found[ModelLayer(spec, layer).label] = layer_representation(
                ModelLayer(spec, layer), pooling, keys[layer], index / max(len(cached) - 1, 1))
    return found


def dataset_sources(image_set: ImageSet, selection: Selection) -> dict[str, Representation]:
    """Every representation of the dataset's items the page can use: the extracted encoder layers of the sidebar's
    selection (a collapsed Features panel extracts the missing ones), then the dataset's reference embeddings."""
    sources = {}
    if image_set.has_images:
        with st.expander("Features", expanded=False):
            statuses = extraction_panel(image_set, selection)
        sources |= layer_representations(image_set, selection, statuses)
    return sources | {f"human · {reference.name}": reference_representation(reference.name, reference.embedding)
                      for reference in image_set.references}


def item_ids(image_set: ImageSet) -> np.ndarray:
    """(N,) the dataset's item ids, in its order: what an upload's rows are matched to."""
    return image_set.metadata["image_id"].astype(str).to_numpy()


def load_features(image_set: ImageSet, representation: Representation) -> np.ndarray:
    """(N, d) array of a representation in the dataset's item order (a layer's features from the feature store)."""
    if representation.kind != "encoder_layer":
        return representation.rows(item_ids(image_set))
    return np.asarray(resources.feature_set(image_set, resources.encoder_info(representation.encoder),
                                            representation.layer.layer, representation.pooling).features)


def layer_features(image_set: ImageSet, layers: Mapping[str, Representation]
                   ) -> tuple[dict[tuple[str, str], np.ndarray], dict[str, list[str]]]:
    """((spec, layer) -> (N, d) features, spec -> its layers in the order given) of encoder-layer representations."""
    features, order = {}, {}
    for source in layers.values():
        features[source.encoder, source.layer.layer] = load_features(image_set, source)
        order.setdefault(source.encoder, []).append(source.layer.layer)
    return features, order
