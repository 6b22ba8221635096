"""Manifolds: augmentation sub-manifolds (CLAMP), uniformity and class structure, the eigenspectrum."""

import numpy as np
import streamlit as st

from core.analyses.manifolds import MANIFOLD_PRESETS, ManifoldAnalysis, compare_manifolds
from core.encoders.specs import ModelLayer
from core.figures.manifolds import (centroid_map_figure, class_distance_figure, eigenspectrum_figure,
                                    pair_histograms_figure, radii_figure, uniformity_figure)
from core.provenance import provenance_from_keys
from core.studies import analyses
from core.studies.analyses.manifolds import ManifoldSettings, analyse, view_subset
from views.ui import resources
from views.ui.background import estimates_caption, job_outcomes, job_progress
from views.ui.export_row import figure_block, table_block
from views.ui.items import item_panel, selected_rows
from views.ui.manifolds_views import CLAMP, JOBS, PageViews, pipeline_input
from views.ui.presets import preset_buttons
from views.ui.settings import in_url, setting_input, settings_from
from views.ui.sidebar import page_start
from views.ui.studies import add_to_study

ENTRY = analyses.get("manifolds")

selection, image_set = page_start(
    "Manifolds",
    "Each image becomes a cloud of m augmented views (CLAMP's pipeline); its centroid, radius, principal "
    "axis and neighbours describe how the encoder packs images, and uniformity, view alignment and the "
    "eigenspectrum how it spreads them (docs/science.md §6).")
model_layers = [ModelLayer(spec, layer) for spec in selection.encoders for layer in selection.layers.get(spec, ())]
if not model_layers:
    st.info("Pick at least one encoder and layer in the sidebar.")
    st.stop()

preset_buttons("manifolds", {
    name: (f"{title}: {preset.m} views, {preset.per_class} per class",
           {"manifolds.m": preset.m, "manifolds.images_per_class": preset.per_class},
           f"Sets views per image and images per class to {purpose}; other widgets keep their values.")
    for (name, preset), title, purpose in zip(MANIFOLD_PRESETS.items(), ("Quick", "Full (CLAMP)"),
                                              ("about a minute on the demo, two CPU cores", "the CLAMP paper's setting"))})
controls = st.columns(5)
chosen = controls[0].multiselect("Encoder · layer", [layer.label for layer in model_layers],
                                 **in_url("manifolds.layers", default=[layer.label for layer in model_layers][:2]),
                                 help="Each is analysed on the same images and views; figures show them side by side.")
m = setting_input(ENTRY, "m", "Views per image (m)", container=controls[1])
per_class = setting_input(ENTRY, "images_per_class", "Images per class", container=controls[2])
radius_scale = setting_input(ENTRY, "radius_scale", "r_s", container=controls[3], step=0.5)
method = setting_input(ENTRY, "map", "Map", container=controls[4])
parameter = setting_input(ENTRY, "map_parameter", "Perplexity" if method == "t-SNE" else "UMAP neighbours",
                          widget="slider")
pipeline = pipeline_input()
settings: ManifoldSettings = settings_from(ENTRY, m=m, images_per_class=per_class, radius_scale=radius_scale,
                                           map=method, map_parameter=parameter)
subset = view_subset(image_set, settings)
views = PageViews(subset, settings.m, pipeline, selection)
selected = [layer for layer in model_layers if layer.label in chosen]
if not selected:
    st.stop()

views_by_layer = {layer: views.stored(layer) for layer in selected}
missing = [layer for layer, found in views_by_layer.items() if found is None]
action = st.columns([2, 3], vertical_alignment="center")
action[0].button(f"Extract views ({len(subset)} images × {settings.m} views, {len(missing)} encoder layer(s))"
                 if missing else "All views extracted", type="primary", disabled=not missing,
                 on_click=views.start_extraction, args=(selected,),
                 help="Runs in the background and is cached on disk per encoder, layer, images, m and pipeline; "
                      "changing other widgets does not stop it.")
study_notes = [note for differs, note in (
    (pipeline != CLAMP, "A study step uses CLAMP's default augmentation pipeline, not the jitter and crop set "
                              "under **Augmentation pipeline** here: its views, and so its results, will differ from "
                              "this page's."),
    (len(selected) < len(model_layers), "A study step analyses every encoder · layer of the sidebar, not only those "
                                        "picked here.")) if differs]
add_to_study(ENTRY.name, settings, selection, notes=study_notes)
if missing:
    action[1].caption(estimates_caption({layer.label: (views.rate_key(layer), len(subset) * settings.m)
                                         for layer in missing}, "views"))
job_progress(JOBS, "views", "Stops after the current batch; the views extracted so far stay cached and the next run "
                            "resumes from them.")
job_outcomes([views.job_key(layer) for layer in missing],
             "cancelled. The views extracted so far are kept; Extract views resumes.")
if missing:
    st.info("Press **Extract views** to compute the augmented views.")
    st.stop()


@st.cache_resource(max_entries=32, show_spinner="Analysing sub-manifolds…")  # immutable: no copy per rerun
def analysis(views_key: str, settings: ManifoldSettings, _views: np.ndarray, _subset) -> ManifoldAnalysis:
    """Cached per (views, settings): `views_key` names the images, encoder layer, m, pipeline and pooling."""
    return analyse(_views, _subset, settings)


results = {layer.label: analysis(views.job_key(layer), settings, views_by_layer[layer], subset) for layer in selected}
comparison = compare_manifolds(results)
provenance = provenance_from_keys(
    [views.feature_key(layer) for layer in selected],
    {"views_per_image": settings.m, "images_per_class": settings.images_per_class,
     "subset_fingerprint": subset.fingerprint, "radius_scale": settings.radius_scale, "map": settings.map,
     "map_parameter": settings.map_parameter},
    dataset=image_set.name, dataset_fingerprint=image_set.fingerprint,
    skipped_images=image_set.skipped_labels, store=resources.feature_store())
label = ",".join(layer.spec for layer in selected)
figure_kwargs = {"page": "manifolds", "dataset": image_set.name, "encoder": label, "provenance": provenance}

tabs = st.tabs(list(results))
for tab, (name, result) in zip(tabs, results.items()):
    with tab:
        clicked = selected_rows(figure_block(
            centroid_map_figure(result.per_image, result.map_scale, settings.map), result.per_image,
            figure=f"map_{name}", **figure_kwargs, select_key=f"manifolds.map_click.{name}",
            selection_mode=("points",), how_to_read=(
                f"Each dot is an image's centroid (mean of its {settings.m} CLAMP-normalised views), placed by "
                f"{settings.map}; the circle's radius is r_i × {result.map_scale:.3g}, the median ratio of 2-D "
                "to feature-space distance between each point and its nearest map neighbour (a map "
                "distorts distances, so read circles as relative sizes). Hover: image, radius, "
                "neighbours (other images within 0.99 · r_s · (ρ_i + ρ_j)). Click a dot: the image, and its "
                "nearest images by the centroids of each encoder · layer (raw features, mean over views).")),
            len(subset))  # per_image rows are the subset's rows
        if clicked:
            item_panel(subset, clicked[0], {layer.label: views_by_layer[layer].mean(axis=1) for layer in selected})
        figure_block(class_distance_figure(result.class_names, result.class_distances, name), None,
                     figure=f"class_distances_{name}", **figure_kwargs, how_to_read=(
                         "E‖f(x₀) − f(x₁)‖² over views of class i and class j: off-diagonal = how far classes are "
                         "apart, diagonal = twice the intra-class variance. Supervised training shrinks the diagonal."))
figure_block(pair_histograms_figure(comparison.pairs), None, figure="pair_histograms", **figure_kwargs, how_to_read=(
    "Every pair of images, same class (intra) vs different class (inter): distance and cosine of their centroids, "
    "and cos² between their sub-manifolds' principal axes (1 = parallel). Separated intra/inter histograms mean "
    "class structure."))
figure_block(radii_figure(comparison.per_image), comparison.per_image, figure="radii", **figure_kwargs, how_to_read=(
    "r_i = r_s · √(T_i / min(D, m)), T_i the views' summed squared deviation from the centroid / (m − 1), in the "
    "CLAMP-normalised space (mean-centred, unit norm). Neighbours use the same radius without r_s (CLAMP's "
    "analysis code)."))
figure_block(uniformity_figure(comparison.metrics), comparison.metrics, figure="uniformity", **figure_kwargs, how_to_read=(
    "Uniformity −log mean exp(−2‖x_i − x_j‖²) over all views (L2-normalised): higher = features spread over the "
    "sphere. Class-wise: the same within each class, averaged. Alignment: mean ‖x − x⁺‖² between views of one "
    "image: lower = invariant to the augmentations."))
figure_block(eigenspectrum_figure(comparison.spectra, comparison.fits), comparison.spectra, figure="eigenspectrum", **figure_kwargs, how_to_read=(
    "Eigenvalues of the covariance of the image centroids (raw features), log-log. α: weighted least-squares slope "
    "of log λ_n on −log n, weights 1/n, ranks 11 … min(500, N − 2) (Stringer et al. 2019); α ≈ 1 is the "
    "critical decay seen in visual cortex."))
table_block(comparison.metrics, title="Metrics", page="manifolds", name="metrics", dataset=image_set.name, encoder=label,
            provenance=provenance,
            help="One row per encoder · layer: CLAMP loss, mean radius, neighbours, view accuracy, uniformity, "
                 "class-wise uniformity, view alignment (Wang & Isola), α, effective dimensionality.")
