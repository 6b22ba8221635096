"""The Alignment page's representations (the dataset's reference embeddings, its extracted encoder layers, an
upload), their RDMs, and what an alignment of them used (provenance)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import streamlit as st

from core.analyses.representation import (Representation, layer_representation, rdm_group_representation,
                                          reference_representation, upload_representation)
from core.data.datasets import ImageSet
from core.encoders.specs import ModelLayer
from core.features.extract import feature_keys
from core.features.store import FeatureKey
from views.ui import resources
from views.ui.extraction import extraction_panel
from views.ui.sidebar import Selection


def page_representations(image_set: ImageSet, selection: Selection) -> dict[str, Representation]:
    """By label: the dataset's reference embeddings and RDM groups (each group's mean RDM), then the extracted encoder
    layers of the sidebar's selection (a collapsed Features panel extracts the missing ones), then an uploaded
    matrix."""
    items = image_set.metadata["image_id"].astype(str).to_numpy()
    statuses = []  # a set of representations only has no images to extract from
    if image_set.has_images:
        with st.expander("Features", expanded=False):
            statuses = extraction_panel(image_set, selection)
    representations = [reference_representation(reference.name, reference.embedding)
                       for reference in image_set.references]
    representations += [rdm_group_representation(group.name, group.mean) for group in image_set.rdm_references]
    representations += [layer_representation(ModelLayer(status.encoder, status.layer),
                                             selection.pooling_of(status.encoder))
                        for status in statuses if status.state == "cached"]
    upload = st.file_uploader(
        "Add a source: an N × d embedding or an N × N RDM", type=["npy", "txt", "csv"], key="alignment.upload",
        help=f"Rows are the {len(items)} items of {image_set.name} in the dataset's order (its image_id column: for "
             "OASIS and the demo, the rows of OASIS.csv), or, in a CSV, put each row's image_id in the first column "
             "and the order is checked and restored. "
             "A symmetric matrix with a zero diagonal is used as an RDM; anything else as an embedding.")
    if upload is not None:
        try:
            representations.append(upload_representation(upload.name, upload.getvalue(), items))
        except ValueError as error:
            st.error(str(error))
    return {representation.label: representation for representation in representations}


def layer_features(image_set: ImageSet, representation: Representation) -> np.ndarray:
    """(N, d) stored features of an encoder-layer representation at its pooling."""
    layer = representation.layer
    return resources.feature_set(image_set, resources.encoder_info(layer.spec), layer.layer,
                                 representation.pooling).features


@st.cache_resource(max_entries=16, show_spinner="Computing RDM…",
                   hash_funcs={ImageSet: lambda s: s.fingerprint, Representation: lambda r: r.key})
def cached_rdm(image_set: ImageSet, representation: Representation, metric: str, normalise: bool) -> np.ndarray:
    """(N, N) float32 RDM of a representation; every input is an argument (a layer's pooling is part of its key)."""
    features = layer_features(image_set, representation) if representation.kind == "encoder_layer" else None
    return representation.rdm(image_set.metadata["image_id"].astype(str).to_numpy(), metric, normalise=normalise,
                              features=features)


def layer_feature_keys(image_set: ImageSet, representations: Sequence[Representation]) -> list[FeatureKey]:
    """The feature keys of the encoder-layer representations among `representations`."""
    return [feature_keys(image_set, resources.encoder_info(representation.encoder), [representation.layer.layer],
                         representation.pooling)[representation.layer.layer]
            for representation in representations if representation.kind == "encoder_layer"]
