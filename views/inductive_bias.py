"""Inductive bias: frozen features and category probes under global/local patch shuffling and gamma distortion."""
from dataclasses import asdict

import numpy as np
import pandas as pd
import streamlit as st

from core.analyses.cv import CATEGORY_SCHEMES, K_FOLD_SCHEMES, scheme_label
from core.analyses.inductive_bias import (BIAS_PRESETS, SIMILARITY_BAND, TRAIN_ON, BiasPreset, BiasSettings,
                                          corruption_metrics)
from core.data.corruptions import CLEAN, DEFAULT_SEED, FAMILIES, FAMILY_LABELS, Corruption
from core.data.datasets import load_image, per_class_subset
from core.encoders.specs import ModelLayer
from core.features.extract import feature_keys
from core.features.store import FeatureKey
from core.figures.inductive_bias import corruption_curves_figure, corruption_curves_table, gallery_figure
from core.jobs import job_key
from core.provenance import Provenance, provenance_from_keys
from views.ui import resources
from views.ui.background import estimates_caption, has_jobs, job_outcomes, job_progress, submit_job
from views.ui.export_row import figure_block, table_block
from views.ui.presets import preset_buttons
from views.ui.sidebar import effective_pooling, page_start
from views.ui.studies import add_to_study

GRID_SIZES = (2, 3, 4, 6, 7, 8, 14, 16, 28)
GAMMAS = (0.2, 0.33, 0.5, 0.67, 1.5, 2.0, 2.5, 3.0)
QUICK, FULL = BIAS_PRESETS["quick"], BIAS_PRESETS["full"]

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


def preset_state(preset: BiasPreset) -> dict:
    """The widget values a preset sets, by session-state key (the levels of every family, selected or not)."""
    return {"bias_per_class": preset.per_class, "bias_families": list(preset.families), "bias_n_splits": preset.n_splits,
            **{f"bias_levels_{family}": list(preset.levels[family]) for family in FAMILIES}}


def levels_text(preset: BiasPreset) -> str:
    return "; ".join(f"{family} {', '.join(f'{level:g}' for level in preset.levels[family])}"
                     for family in preset.families)


preset_buttons("bias_preset", {
    name.lower(): (f"{name}: {preset.per_class} per class, {levels_text(preset)}", preset_state(preset),
                   f"Sets images per class, corruptions, their levels and K to the {name.lower()} setting "
                   f"({purpose}); other widgets keep their values.")
    for name, preset, purpose in (("Quick", QUICK, "about a minute on the demo, two CPU cores"),
                                  ("Full", FULL, "Zhong et al.'s grid sizes N = 2, 4, 8"))})

controls = st.columns([3, 2, 2])
by_label = {pair.label: pair for pair in pairs}  # the widget holds labels: the Objective lab page sets them too
chosen = controls[0].multiselect("Encoder · layer", list(by_label), default=list(by_label)[:2], key="bias_pairs",
                                 persist_state="session",
                                 help="Each is measured on the same images and corruptions; curves share the axes.")
families = controls[1].multiselect("Corruptions", FAMILIES, format_func=FAMILY_LABELS.get,
                                   key="bias_families", persist_state="session",
                                   help="glo_N: an N × N grid of patches changes places (one fixed permutation for "
                                        "every image). loc_N: the pixels inside every patch are permuted (one "
                                        "permutation for every patch). gamma: x' = 255 (x/255)^g.")
per_class = controls[2].number_input("Images per class", 2, 100_000, key="bias_per_class", persist_state="session",
                                     help="A random subset of each category (seed 0): every image goes through the "
                                          "encoder once per corruption level.")
levels = {}
level_columns = st.columns(3)
for column, family in zip(level_columns, FAMILIES):
    if family in families:
        options = GAMMAS if family == "gamma" else GRID_SIZES
        levels[family] = column.multiselect(
            f"{FAMILY_LABELS[family]} levels", options, key=f"bias_levels_{family}", persist_state="session",
            help="Gamma exponents g (< 1 brightens, > 1 darkens)." if family == "gamma" else
                 "Grid sizes N. Level 1 is the clean image, drawn as every curve's first point.")
probe = st.columns(5)
k = probe[0].number_input("k (neighbours)", 1, 200, BiasSettings().k, key="bias_k", persist_state="session",
                          help="k-NN probe: majority vote of the k cosine-nearest training images.")
scheme = probe[1].selectbox("Cross-validation", CATEGORY_SCHEMES, index=CATEGORY_SCHEMES.index(BiasSettings().scheme),
                            format_func=scheme_label, key="bias_scheme", persist_state="session",
                            help="For both probes. Grouped K-fold keeps each theme group in one fold (default: a "
                                 "tenth of LOTO's refits on OASIS); LOTO holds out one theme at a time; K-fold "
                                 "shuffles images (near-duplicates of a theme then help the k-NN probe).")
n_splits = probe[2].number_input("K (folds)", 2, 20, key="bias_n_splits", persist_state="session", disabled=scheme not in K_FOLD_SCHEMES,
                                 help="Folds of the K-fold schemes (seed 0).")
train_on = probe[3].radio("Probes train on", TRAIN_ON, key="bias_train_on", persist_state="session", horizontal=True,
                          help="corrupted: each fold trains and tests on corrupted features (how much category "
                               "information survives). clean: trains on clean images, tests corrupted held-out "
                               "ones (does a clean readout still work).")
seed = probe[4].number_input("Permutation seed", 0, 2**31 - 1, DEFAULT_SEED, key="bias_seed", persist_state="session",
                             help="Seed of the fixed shuffle permutation (Zhong et al. use 42).")
per_image = st.toggle("A new permutation per image", key="bias_per_image", persist_state="session",
                      help="Random-per-image variant: each image gets its own permutation (seeded by the seed and "
                           "its row), named glo_N_rand / loc_N_rand.")

corruptions = [Corruption(family, float(level), int(seed), per_image) for family in families
               for level in sorted(levels.get(family, []))]
selected = [by_label[label] for label in chosen]
if not selected or not corruptions:
    st.info("Pick at least one encoder · layer, one corruption family and one level.")
    st.stop()
subset = image_set.subset(per_class_subset(image_set, int(per_class)))
settings = BiasSettings(k=int(k), scheme=scheme, n_splits=int(n_splits), train_on=train_on)

st.subheader("1 · Gallery")
image_id = st.selectbox("Image", subset.metadata["image_id"].tolist(), key="bias_gallery_image", persist_state="session",
                        help="Any image of the subset; per-image permutations use its own seed, as in extraction.")
row = subset.metadata["image_id"].tolist().index(image_id)
clean_image = load_image(subset.paths[row])
gallery = [(corruption.name, corruption(clean_image, row)) for corruption in [CLEAN, *corruptions]]
corruption_parameters = {"corruptions": [corruption.name for corruption in corruptions], "permutation_seed": int(seed),
                         "per_image_permutation": per_image}
figure_block(gallery_figure([(name, np.asarray(image)) for name, image in gallery], image_id), None,
             page="inductive_bias", figure="gallery", dataset=image_set.name,
             provenance=Provenance(image_set.name, image_set.fingerprint, parameters={
                 "image_id": image_id, "subset_fingerprint": subset.fingerprint, **corruption_parameters}),
             how_to_read=(
                 "The image as loaded, before the encoder's resize and crop, under every selected corruption. "
                 "Where a side is not a multiple of N, the last (side mod N) pixel rows/columns stay in place."))


def bias_job_key(pair: ModelLayer) -> str:
    parts = [subset.fingerprint, pair.spec, pair.layer, effective_pooling(pair.spec, selection.pooling),
             ",".join(c.name for c in corruptions), str(seed), repr(settings)]
    return job_key("bias", *parts)


def rate_key(pair: ModelLayer) -> str:
    """What one image of one condition costs: extraction on this dataset's images, plus its share of the probes."""
    return "|".join(["bias", image_set.name, pair.spec, pair.layer, effective_pooling(pair.spec, selection.pooling),
                     selection.device, repr(settings)])


def start_runs() -> None:
    for pair in selected:
        def work(report, pair=pair, encoder=resources.encoder_info(pair.spec)):
            return corruption_metrics(subset, encoder, pair.layer, resources.feature_store(), corruptions, settings,
                                      pooling=effective_pooling(pair.spec, selection.pooling), device=selection.device,
                                      batch_size=selection.batch_size, results=resources.result_cache(),
                                      progress=report)

        submit_job("bias_jobs", bias_job_key(pair), pair.label, work, rate_key=rate_key(pair))


registry = resources.job_registry()
statuses = {pair: registry.status(bias_job_key(pair)) for pair in selected}
todo = [pair for pair, status in statuses.items() if status is None or status.state != "done"]
action = st.columns([2, 3], vertical_alignment="center")
action[0].button(f"Run ({len(subset)} images × {len(corruptions) + 1} conditions, {len(todo)} encoder · layer)" if todo
                 else "All selected runs are done", type="primary", disabled=not todo or has_jobs("bias_jobs"),
                 on_click=start_runs, help="Extracts clean and corrupted features (cached on disk like any features), "
                                           "then runs both probes; in the background, so other widgets stay usable.")
add_to_study("inductive_bias", dict(corruptions=[corruption.name for corruption in corruptions],
                                    images_per_class=int(per_class), scheme=scheme, n_splits=int(n_splits), k=int(k),
                                    train_on=train_on), selection,
             notes=["A study step measures every encoder · layer of the sidebar, not only those picked here."]
             if len(selected) < len(pairs) else [],
             unavailable="" if int(seed) == DEFAULT_SEED or not any(c.shuffles for c in corruptions) else
             f"A study step shuffles with the permutation seed {DEFAULT_SEED} (Zhong et al.'s); it cannot take this "
             f"page's seed {int(seed)}. Set the seed back to {DEFAULT_SEED} to add this step.")
if todo:
    action[1].caption(estimates_caption({pair.label: (rate_key(pair), len(subset) * (len(corruptions) + 1))
                                         for pair in todo}, "images"))
job_progress("bias_jobs", "images", "Stops after the current batch; extracted features stay cached.")
job_outcomes([bias_job_key(pair) for pair in todo], "cancelled. Finished features are kept; Run resumes.")
if todo:
    st.info("Press **Run** to extract the corrupted features and probe them.")
    st.stop()

metrics = pd.concat([registry.result(bias_job_key(pair)) for pair in selected], ignore_index=True)
metrics.insert(0, "model", [ModelLayer(spec, layer).label for spec, layer in zip(metrics["encoder"], metrics["layer"])])
label = ",".join(pair.spec for pair in selected)


def condition_keys(pair: ModelLayer) -> list[FeatureKey]:
    """Feature keys of a pair's clean and corrupted features (those `corruption_metrics` extracted)."""
    encoder, pooling = resources.encoder_info(pair.spec), effective_pooling(pair.spec, selection.pooling)
    return [feature_keys(subset, encoder, [pair.layer], pooling, corruption.input_transform)[pair.layer]
            for corruption in [CLEAN, *corruptions]]


provenance = provenance_from_keys(
    [key for pair in selected for key in condition_keys(pair)],
    {**asdict(settings), **corruption_parameters, "images_per_class": int(per_class),
     "subset_fingerprint": subset.fingerprint}, dataset=image_set.name, dataset_fingerprint=image_set.fingerprint,
    store=resources.feature_store())
kwargs = dict(page="inductive_bias", dataset=image_set.name, encoder=label, provenance=provenance)
n_categories = subset.metadata["category"].nunique()
majority = subset.metadata["category"].value_counts(normalize=True).max()

st.subheader("2 · Category information vs corruption")
view = st.radio("Show", ("accuracy", "relative drop"), horizontal=True, key="bias_view", persist_state="session",
                help="Relative drop = (clean − corrupted) / clean: 0 = unaffected, 1 = all above-zero accuracy lost.")
measures = ["knn_accuracy", "linear_balanced_accuracy"] if view == "accuracy" else ["knn_drop", "linear_drop"]
chance = {"knn_accuracy": majority, "linear_balanced_accuracy": 1 / n_categories} if view == "accuracy" else None
figure_block(corruption_curves_figure(metrics, measures, title="Category probes vs corruption level", chance=chance),
             corruption_curves_table(metrics, measures), figure="accuracy", **kwargs, how_to_read=(
                 f"k-NN accuracy: majority vote of the {k} cosine-nearest training images; chance line = the "
                 f"majority class share ({majority:.2f}). Linear: balanced accuracy of the Layer probes page's "
                 f"logistic regression, error bars = bootstrap 95% CI over images; chance = 1/{n_categories}. "
                 f"Both out of fold under {scheme_label(scheme)}, trained on {train_on} features. A curve that "
                 "falls fast with glo_N says the encoder relies on where parts are; with loc_N, on local texture. glo_N "
                 "destroys more as N grows (smaller patches change places), loc_N less (pixels stay inside smaller "
                 "patches), so loc_2 is the harshest local shuffle."))
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
