"""Inductive bias: frozen features and category probes under global/local patch shuffling and gamma distortion."""
from dataclasses import asdict

import pandas as pd
import streamlit as st

from core.analyses.cv import K_FOLD_SCHEMES, scheme_label
from core.analyses.inductive_bias import BIAS_PRESETS, SIMILARITY_BAND
from core.data.corruptions import DEFAULT_SEED, FAMILIES, FAMILY_LABELS
from core.encoders.specs import ModelLayer
from core.figures.inductive_bias import corruption_curves_figure, corruption_curves_table
from core.provenance import provenance_from_keys
from core.studies import analyses
from core.studies.analyses.inductive_bias import CorruptionSettings, corruption_names, corruption_subset, corruptions_of
from views.ui import resources
from views.ui.background import estimates_caption, has_jobs, job_outcomes, job_progress
from views.ui.bias_gallery import corruption_gallery
from views.ui.bias_inputs import corruption_presets, level_inputs
from views.ui.bias_runs import JOBS, BiasRuns
from views.ui.export_row import figure_block, table_block
from views.ui.settings import in_url, setting_input, settings_from
from views.ui.sidebar import page_start
from views.ui.studies import add_to_study

ENTRY = analyses.get("inductive_bias")

selection, image_set = page_start(
    "Inductive bias",
    "Destroy the global layout (glo_N: shuffle an N × N grid of patches), the local texture (loc_N: shuffle the "
    "pixels inside each patch) or the tones (gamma) of every image, and measure how much category information the "
    "frozen features keep (Zhong et al. 2023; docs/science.md §7). Contrastive models lose far more than supervised "
    "ones when the global structure goes.")
pairs = [ModelLayer(spec, layer) for spec in selection.encoders for layer in selection.layers.get(spec, ())]
if not pairs:
    st.info("Pick at least one encoder and layer in the sidebar.")
    st.stop()
if image_set.metadata["category"].nunique() < 2:
    st.info(f"{image_set.name} has one category; the k-NN and linear probes need at least two.")
    st.stop()

corruption_presets()
controls = st.columns([3, 2, 2])
by_label = {pair.label: pair for pair in pairs}  # the widget holds labels: the Objective lab page sets them too
chosen = controls[0].multiselect("Encoder · layer", list(by_label),
                                 **in_url("inductive_bias.layers", default=list(by_label)[:2]),
                                 help="Each is measured on the same images and corruptions; curves share the axes.")
families = controls[1].multiselect("Corruptions", FAMILIES, format_func=FAMILY_LABELS.get,
                                   **in_url("inductive_bias.families", default=list(BIAS_PRESETS["quick"].families)),
                                   help="glo_N: an N × N grid of patches changes places (one fixed permutation for "
                                        "every image). loc_N: the pixels inside every patch are permuted (one "
                                        "permutation for every patch). gamma: x' = 255 (x/255)^g.")
per_class = setting_input(ENTRY, "images_per_class", "Images per class", container=controls[2])
levels = level_inputs(families)
probe = st.columns(5)
k = setting_input(ENTRY, "k", "k (neighbours)", container=probe[0])
scheme = setting_input(ENTRY, "scheme", "Cross-validation", container=probe[1], format_func=scheme_label)
n_splits = setting_input(ENTRY, "n_splits", "K (folds)", container=probe[2], disabled=scheme not in K_FOLD_SCHEMES)
train_on = setting_input(ENTRY, "train_on", "Probes train on", container=probe[3], widget="radio", horizontal=True)
seed = probe[4].number_input("Permutation seed", 0, 2**31 - 1, **in_url("inductive_bias.seed", value=DEFAULT_SEED),
                             help="Seed of the fixed shuffle permutation (Zhong et al. use 42).")
per_image = st.toggle("A new permutation per image", **in_url("inductive_bias.per_image"),
                      help="Random-per-image variant: each image gets its own permutation (seeded by the seed and "
                           "its row), named glo_N_rand / loc_N_rand.")
settings: CorruptionSettings = settings_from(
    ENTRY, corruptions=corruption_names(families, levels, per_image), images_per_class=per_class, scheme=scheme,
    n_splits=n_splits, k=k, train_on=train_on)
selected = [by_label[label] for label in chosen]
if not selected or not settings.corruptions:
    st.info("Pick at least one encoder · layer, one corruption family and one level.")
    st.stop()
runs = BiasRuns(corruption_subset(image_set, settings), corruptions_of(settings, int(seed)), int(seed),
                settings.probe_settings, selection)
subset = runs.subset

st.subheader("1 · Gallery")
corruption_parameters = {"corruptions": list(settings.corruptions), "permutation_seed": int(seed),
                         "per_image_permutation": per_image}
corruption_gallery(image_set, subset, runs.corruptions, corruption_parameters)

registry = resources.job_registry()
todo = [pair for pair in selected if (status := registry.status(runs.job_key(pair))) is None or status.state != "done"]
conditions = len(runs.corruptions) + 1
action = st.columns([2, 3], vertical_alignment="center")
action[0].button(f"Run ({len(subset)} images × {conditions} conditions, {len(todo)} encoder · layer)" if todo
                 else "All selected runs are done", type="primary", disabled=not todo or has_jobs(JOBS),
                 on_click=runs.start, args=(selected,),
                 help="Extracts clean and corrupted features (cached on disk like any features), then runs both "
                      "probes; in the background, so other widgets stay usable.")
add_to_study(ENTRY.name, settings, selection,
             notes=["A study step measures every encoder · layer of the sidebar, not only those picked here."]
             if len(selected) < len(pairs) else [],
             unavailable="" if int(seed) == DEFAULT_SEED or not any(c.shuffles for c in runs.corruptions) else
             f"A study step shuffles with the permutation seed {DEFAULT_SEED} (Zhong et al.'s); it cannot take this "
             f"page's seed {int(seed)}. Set the seed back to {DEFAULT_SEED} to add this step.")
if todo:
    action[1].caption(estimates_caption({pair.label: (runs.rate_key(pair), runs.folds * conditions)
                                         for pair in todo}, "folds"))
job_progress(JOBS, "steps", "Stops after the current batch or fold; extracted features and finished probes stay "
                            "cached.")
job_outcomes([runs.job_key(pair) for pair in todo], "cancelled. Finished features are kept; Run resumes.")
if todo:
    st.info("Press **Run** to extract the corrupted features and probe them.")
    st.stop()

metrics = pd.concat([registry.result(runs.job_key(pair)) for pair in selected], ignore_index=True)
metrics.insert(0, "model", [ModelLayer(spec, layer).label for spec, layer in zip(metrics["encoder"], metrics["layer"])])
label = ",".join(pair.spec for pair in selected)
provenance = provenance_from_keys(
    [key for pair in selected for key in runs.condition_keys(pair)],
    {**asdict(runs.probes), **corruption_parameters, "images_per_class": settings.images_per_class,
     "subset_fingerprint": subset.fingerprint}, dataset=image_set.name, dataset_fingerprint=image_set.fingerprint,
    skipped_images=image_set.skipped_labels,
    store=resources.feature_store())
kwargs = dict(page="inductive_bias", dataset=image_set.name, encoder=label, provenance=provenance)
n_categories = subset.metadata["category"].nunique()
majority = subset.metadata["category"].value_counts(normalize=True).max()

st.subheader("2 · Category information vs corruption")
view = st.radio("Show", ("accuracy", "relative drop"), horizontal=True, **in_url("inductive_bias.view"),
                help="Relative drop = (clean − corrupted) / clean: 0 = unaffected, 1 = all above-zero accuracy lost.")
measures = ["knn_accuracy", "linear_balanced_accuracy"] if view == "accuracy" else ["knn_drop", "linear_drop"]
chance = {"knn_accuracy": majority, "linear_balanced_accuracy": 1 / n_categories} if view == "accuracy" else None
figure_block(corruption_curves_figure(metrics, measures, title="Category probes vs corruption level", chance=chance),
             corruption_curves_table(metrics, measures), figure="accuracy", **kwargs, how_to_read=(
                 f"k-NN accuracy: majority vote of the {settings.k} cosine-nearest training images; chance line = "
                 f"the majority class share ({majority:.2f}). Linear: balanced accuracy of the Layer probes page's "
                 f"logistic regression, error bars = bootstrap 95% CI over images; chance = 1/{n_categories}. "
                 f"Both out of fold under {scheme_label(settings.scheme)}, trained on {settings.train_on} features. "
                 "A curve that falls fast with glo_N says the encoder relies on where parts are; with loc_N, on local "
                 "texture. glo_N destroys more as N grows (smaller patches change places), loc_N less (pixels stay "
                 "inside smaller patches), so loc_2 is the harshest local shuffle."))
st.subheader("3 · Uniformity")
figure_block(corruption_curves_figure(metrics, ["uniformity"], title="Uniformity vs corruption level"),
             corruption_curves_table(metrics, ["uniformity"]), figure="uniformity", **kwargs, how_to_read=(
                 "−log mean exp(−2‖x_i − x_j‖²) over the L2-normalised features of all images: higher = spread over "
                 "the sphere. A corruption that collapses images onto a few directions lowers it."))
st.subheader("4 · Similarity to the clean features")
figure_block(corruption_curves_figure(metrics, ["clean_similarity"], title="Cosine between corrupted and clean "
                                      "features", floor="unrelated_similarity"),
             corruption_curves_table(metrics, ["clean_similarity"], floor="unrelated_similarity"), figure="clean_similarity",
             **kwargs, how_to_read=(
                 "Mean cosine between each image's corrupted and clean features; the bar spans the "
                 f"{SIMILARITY_BAND[0]:.0%}–{SIMILARITY_BAND[1]:.0%} quantiles over images (the metrics table also "
                 "has the SD). The "
                 "dashed line of the same colour is the encoder's floor: the mean cosine between different images' "
                 "clean features. At the floor the corrupted image is, to the encoder, just another image."))
table_block(metrics, title="Metrics", page="inductive_bias", name="metrics", dataset=image_set.name, encoder=label,
            provenance=provenance,
            help="One row per encoder · layer · corruption: both probes (with fold SD, CI), drops, uniformity, "
                 "clean similarity and its floor.")
