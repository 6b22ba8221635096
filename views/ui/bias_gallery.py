"""The Inductive bias page's gallery: one image of the subset, clean and under every selected corruption."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import streamlit as st

from core.data.corruptions import CLEAN, Corruption
from core.data.datasets import ImageSet
from core.data.images import load_image
from core.figures.inductive_bias import gallery_figure
from core.provenance import Provenance
from views.ui.export_row import figure_block
from views.ui.settings import in_url


def corruption_gallery(image_set: ImageSet, subset: ImageSet, corruptions: list[Corruption],
                       parameters: Mapping[str, Any]) -> None:
    """An image picker (key `inductive_bias.gallery_image`) and the gallery figure; `parameters` go to provenance."""
    image_ids = subset.metadata["image_id"].tolist()
    image_id = st.selectbox("Image", image_ids, **in_url("inductive_bias.gallery_image"),
                            help="Any image of the subset; per-image permutations use its own seed, as in extraction.")
    row = image_ids.index(image_id)
    clean_image = load_image(subset.paths[row])
    gallery = [(corruption.name, np.asarray(corruption(clean_image, row))) for corruption in [CLEAN, *corruptions]]
    figure_block(gallery_figure(gallery, image_id), None, page="inductive_bias", figure="gallery",
                 dataset=image_set.name,
                 provenance=Provenance(image_set.name, image_set.fingerprint, parameters={
                     "image_id": image_id, "subset_fingerprint": subset.fingerprint, **parameters},
                     skipped_images=image_set.skipped_labels),
                 how_to_read=(
                     "The image as loaded, before the encoder's resize and crop, under every selected corruption. "
                     "Where a side is not a multiple of N, the last (side mod N) pixel rows/columns stay in place."))
