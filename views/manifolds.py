"""Manifolds: augmentation sub-manifolds (CLAMP), uniformity and class structure, the eigenspectrum."""

import numpy as np
import streamlit as st

from core.analyses.manifolds import (IMAGENET_RADIUS_SCALE, MANIFOLD_PRESETS, MAP_METHODS, ManifoldAnalysis,
                                     analyse_manifolds, compare_manifolds)
from core.data.datasets import per_class_subset
from core.data.transforms import AugmentationPipeline, augmentation_views
from core.encoders.specs import ModelLayer
from core.features.extract import cached_view_features, feature_keys, view_features
from core.features.store import FeatureKey
from core.figures.manifolds import (centroid_map_figure, class_distance_figure, eigenspectrum_figure,
                                    pair_histograms_figure, radii_figure, uniformity_figure)
from core.jobs import job_key
from core.provenance import provenance_from_keys
from views.ui import resources
from views.ui.background import estimates_caption, job_outcomes, job_progress, submit_job
from views.ui.export_row import figure_block, table_block
from views.ui.items import item_panel, selected_rows
from views.ui.presets import preset_buttons
from views.ui.sidebar import effective_pooling, page_start
from views.ui.studies import add_to_study

selection, image_set = page_start(
    "Manifolds",
    "Each image becomes a cloud of m augmented views (CLAMP's pipeline); its centroid, radius, principal "
    "axis and neighbours describe how the encoder packs images, and uniformity, view alignment and the "
    "eigenspectrum how it spreads them (docs/science.md §6).")
model_layers = [ModelLayer(spec, layer) for spec in selection.encoders for layer in selection.layers.get(spec, ())]
if not model_layers:
    st.info("Pick at least one encoder and layer in the sidebar.")
    st.stop()

preset_buttons("manifold_preset", {
    name: (f"{title}: {preset.m} views, {preset.per_class} per class",
           {"manifold_m": preset.m, "manifold_per_class": preset.per_class},
           f"Sets views per image and images per class to {purpose}; other widgets keep their values.")
    for (name, preset), title, purpose in zip(MANIFOLD_PRESETS.items(), ("Quick", "Full (CLAMP)"),
                                              ("about a minute on the demo, two CPU cores", "the CLAMP paper's setting"))})
controls = st.columns(5)
chosen = controls[0].multiselect("Encoder · layer", [layer.label for layer in model_layers],
                                 default=[layer.label for layer in model_layers][:2], key="manifold_pairs", persist_state="session",
                                 help="Each is analysed on the same images and views; figures show them side by side.")
m = controls[1].number_input("Views per image (m)", 2, 64, key="manifold_m", persist_state="session",
                             help="Augmented views per image (CLAMP uses 16). Extraction cost grows with m.")
per_class = controls[2].number_input("Images per class", 2, 10_000, key="manifold_per_class", persist_state="session",
                                     help="A random subset of each category (seed 0), for speed: images × m views "
                                          "go through the encoder.")
radius_scale = controls[3].number_input("r_s", 0.1, 50.0, IMAGENET_RADIUS_SCALE, step=0.5, key="manifold_rs", persist_state="session",
                                        help="CLAMP's radius scale: 8.5 for ImageNet models, 7 for CIFAR. Scales the "
                                             "radii, the CLAMP loss's range and the neighbour threshold.")
method = controls[4].selectbox("Map", MAP_METHODS, key="manifold_map", persist_state="session",
                               help="2-D map of the centroids. UMAP compiles itself on first use in a server "
                                    "(tens of seconds, once); results are cached.")
parameter = st.slider("Perplexity" if method == "t-SNE" else "UMAP neighbours", 2, 100, 30, key="manifold_map_param", persist_state="session",
                      help="t-SNE: perplexity (capped at (N − 1)/3). UMAP: n_neighbors. Larger = more global layout.")
with st.expander("Augmentation pipeline (CLAMP defaults)"):
    jitter = st.columns(4)
    brightness = jitter[0].number_input("Brightness", 0.0, 1.0, 0.4, key="manifold_brightness", persist_state="session",
                                        help="Colour jitter strength (applied with p = 0.8).")
    contrast = jitter[1].number_input("Contrast", 0.0, 1.0, 0.4, key="manifold_contrast", persist_state="session", help="Colour jitter.")
    saturation = jitter[2].number_input("Saturation", 0.0, 1.0, 0.2, key="manifold_saturation", persist_state="session", help="Colour jitter.")
    hue = jitter[3].number_input("Hue", 0.0, 0.5, 0.1, key="manifold_hue", persist_state="session", help="Colour jitter.")
    crop_min = st.slider("Smallest crop (share of the image area)", 0.01, 1.0, 0.08, key="manifold_crop", persist_state="session",
                         help="Random resized crop scale [this, 1]; then flip p = 0.5, grayscale p = 0.2, blur p = 0.5.")
pipeline = AugmentationPipeline(crop_scale=(crop_min, 1.0), brightness=brightness, contrast=contrast,
                                saturation=saturation, hue=hue)
rows = per_class_subset(image_set, int(per_class))
subset = image_set.subset(rows)
selected = [layer for layer in model_layers if layer.label in chosen]
if not selected:
    st.stop()


def pooling_of(layer: ModelLayer) -> str:
    return effective_pooling(layer.spec, selection.pooling)


def manifold_job_key(layer: ModelLayer) -> str:
    return job_key("views", subset.fingerprint, layer.spec, layer.layer, str(m), pipeline.name, pooling_of(layer))


def rate_key(layer: ModelLayer) -> str:
    """What one view costs: the encoder layer, pooling and device (views are 224-pixel crops of any dataset)."""
    return "|".join(["manifold-views", layer.spec, layer.layer, pooling_of(layer), selection.device])


def start_extraction() -> None:
    store = resources.feature_store()
    for layer in selected:
        def work(report, layer=layer, encoder=resources.encoder_info(layer.spec)):
            return view_features(subset, encoder, layer.layer, store, m=int(m), pipeline=pipeline,
                                 pooling=pooling_of(layer), device=selection.device, batch_size=selection.batch_size,
                                 progress=lambda p: report(p.done, p.total, p.message.replace("images", "views"), p.resumed))
        submit_job("manifold_jobs", manifold_job_key(layer), layer.label, work, rate_key=rate_key(layer))


def stored_views(layer: ModelLayer) -> np.ndarray | None:
    """The cached (N, m, D) views, memoised per process once found (building their cache key hashes N·m files)."""
    return resources.result_memo().get_or_compute(  # None (not extracted yet) is not memoised
        manifold_job_key(layer),
        lambda: cached_view_features(subset, resources.encoder_info(layer.spec), layer.layer, resources.feature_store(),
                                     m=int(m), pipeline=pipeline, pooling=pooling_of(layer)))


def views_key(layer: ModelLayer) -> FeatureKey:
    """The feature key of a layer's cached views, memoised like the views (it hashes N·m file stats)."""
    def key() -> FeatureKey:
        views, input_transform = augmentation_views(subset, int(m), pipeline)
        return feature_keys(views, resources.encoder_info(layer.spec), [layer.layer], pooling_of(layer),
                            input_transform)[layer.layer]
    return resources.result_memo().get_or_compute(("key", manifold_job_key(layer)), key)


views_by_layer = {layer: stored_views(layer) for layer in selected}
missing = [layer for layer, views in views_by_layer.items() if views is None]
action = st.columns([2, 3], vertical_alignment="center")
action[0].button(f"Extract views ({len(rows)} images × {m} views, {len(missing)} encoder layer(s))" if missing
                 else "All views extracted", type="primary", disabled=not missing, on_click=start_extraction,
                 help="Runs in the background and is cached on disk per encoder, layer, images, m and pipeline; "
                      "changing other widgets does not stop it.")
study_notes = [note for differs, note in (
    (pipeline != AugmentationPipeline(), "A study step uses CLAMP's default augmentation pipeline, not the jitter and "
                                         "crop set under **Augmentation pipeline** here: its views, and so its "
                                         "results, will differ from this page's."),
    (len(selected) < len(model_layers), "A study step analyses every encoder · layer of the sidebar, not only those "
                                        "picked here.")) if differs]
add_to_study("manifolds", dict(m=int(m), images_per_class=int(per_class), radius_scale=float(radius_scale), map=method,
                               map_parameter=int(parameter)), selection, notes=study_notes)
if missing:
    action[1].caption(estimates_caption({layer.label: (rate_key(layer), len(rows) * int(m)) for layer in missing},
                                        "views"))
job_progress("manifold_jobs", "views", "Stops after the current batch; the views extracted so far stay cached "
                                       "and the next run resumes from them.")
job_outcomes([manifold_job_key(layer) for layer in missing],
             "cancelled. The views extracted so far are kept; Extract views resumes.")
if missing:
    st.info("Press **Extract views** to compute the augmented views.")
    st.stop()


@st.cache_resource(max_entries=32, show_spinner="Analysing sub-manifolds…")  # immutable: no copy per rerun
def analysis(views_key: str, _views: np.ndarray, _categories: np.ndarray, _image_ids: np.ndarray, radius_scale: float,
             method: str, parameter: int) -> ManifoldAnalysis:
    """Cached per (views, r_s, map): `views_key` names the images, encoder layer, m, pipeline and pooling."""
    return analyse_manifolds(_views, _categories, _image_ids, radius_scale=radius_scale, map_method=method,
                             map_parameter=parameter)


results = {layer.label: analysis(manifold_job_key(layer), views_by_layer[layer], subset.metadata["category"].to_numpy(),
                                 subset.metadata["image_id"].to_numpy(), float(radius_scale), method, int(parameter))
           for layer in selected}
comparison = compare_manifolds(results)
provenance = provenance_from_keys(
    [views_key(layer) for layer in selected],
    {"views_per_image": int(m), "images_per_class": int(per_class), "subset_fingerprint": subset.fingerprint,
     "radius_scale": float(radius_scale), "map": method, "map_parameter": int(parameter)},
    dataset=image_set.name, dataset_fingerprint=image_set.fingerprint, store=resources.feature_store())
label = ",".join(layer.spec for layer in selected)
figure_kwargs = {"page": "manifolds", "dataset": image_set.name, "encoder": label, "provenance": provenance}

tabs = st.tabs(list(results))
for tab, (name, result) in zip(tabs, results.items()):
    with tab:
        clicked = selected_rows(figure_block(
            centroid_map_figure(result.per_image, result.map_scale, method), result.per_image,
            figure=f"map_{name}", **figure_kwargs, select_key=f"manifold_map_click_{name}",
            selection_mode=("points",), how_to_read=(
                f"Each dot is an image's centroid (mean of its {m} CLAMP-normalised views), placed by "
                f"{method}; the circle's radius is r_i × {result.map_scale:.3g}, the median ratio of 2-D "
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
