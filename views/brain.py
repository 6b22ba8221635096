"""Brain: every extracted encoder layer, the dataset's model RDMs and its other RDM groups against per-subject neural /
behavioural RDMs, with noise ceilings and rsatoolbox-grade bootstrap inference (docs/science.md §10)."""
import streamlit as st

from core.analyses.brain import LAYER, group_label, layer_curves
from core.analyses.rdm import RDM_METRIC_LABELS
from core.figures.brain import (METHOD_LABELS, layer_curves_figure, mds_figure, model_comparison_figure,
                                rdm_triplet_figure)
from core.provenance import provenance_from_keys
from core.studies import analyses
from core.studies.analyses.brain import chosen_references, one_view, result_key, stored_tables
from views.ui import resources
from views.ui.background import compute_row
from views.ui.brain_parts import (HOW_TO_READ, best_layer_section, bootstrap_input, model_rdm, start_brain,
                                  table_section)
from views.ui.encoding_parts import encoding_section
from views.ui.export_row import built_once, figure_block
from views.ui.settings import in_url, setting_input, settings_from
from views.ui.sidebar import page_start
from views.ui.similarity_sources import dataset_sources

entry = analyses.get("brain")
selection, image_set = page_start(
    "Brain",
    "Which model, which layer, is most like the brain or behaviour? Every extracted encoder layer (its RDM), the "
    "dataset's model RDMs and its other RDM groups against each subject's RDM of a reference group, with the "
    "group's noise ceiling, bootstrap CIs over subjects and stimuli, and tests against 0, against the ceiling and "
    "between models (docs/science.md §10).", needs_images=False)

groups = image_set.rdm_references
if not groups and not image_set.pattern_references:
    st.info("Brain needs neural or behavioural RDMs of the dataset's items: open a `neural:<folder>` dataset (e.g. "
            "the 92-image folder of Kriegeskorte et al. 2008) or attach RDM files to any dataset (RDM files in the "
            "sidebar). Encoding models need response patterns (`|patterns=<file or folder>`, or a patterns/ folder).")
    st.stop()

layers = {name: source for name, source in dataset_sources(image_set, selection).items()
          if source.kind == "encoder_layer"}
if image_set.pattern_references:  # encoding models of response patterns (views/ui/encoding_parts.py)
    with st.container(border=True):  # not an expander: its figures hold expanders of their own
        encoding_section(image_set, selection, layers)
if not groups:
    st.stop()
group_names = [group.name for group in groups]
offered_models = [group_label(item.name) for item in image_set.model_rdms + groups]
top, middle = st.columns(2), st.columns(6)
references = setting_input(entry, "reference_groups", "Reference groups", container=top[0], options=group_names,
                           default=[group.name for group in chosen_references(entry.settings(), image_set)])
models = setting_input(entry, "models", "Models besides the layers", container=top[1], options=offered_models,
                       default=offered_models, help="A reference group is never compared with itself.")
methods = setting_input(entry, "method", "Comparators", container=middle[0], default=["corr"],
                        format_func=lambda name: f"{name} ({METHOD_LABELS[name]})")
rdm_metric = setting_input(entry, "rdm_metric", "Layer RDM metric", container=middle[1],
                           format_func=RDM_METRIC_LABELS.get)
resamples = bootstrap_input(entry, middle[2], middle[3])
resample = setting_input(entry, "resample", "Resample", container=middle[4], disabled=not resamples)
seed = setting_input(entry, "seed", "Seed", container=middle[5], disabled=not resamples)
if not references or not methods:
    st.info("Pick at least one reference group and one comparator.")
    st.stop()
if not layers and not models:
    st.info("Nothing to compare: extract encoder layers (Features above; pick encoders and layers in the sidebar) "
            "or pick model RDMs.")
    st.stop()
settings = settings_from(entry, reference_groups=references, models=models or (), method=methods,
                         rdm_metric=rdm_metric, n_bootstrap=resamples, resample=resample, seed=seed)

key = result_key(settings, image_set, [source.fingerprint for source in layers.values()])
tables = stored_tables(resources.result_cache(), key)
compute_row(entry, settings, selection, jobs="brain_jobs", job=key, done=tables is not None, start=start_brain,
            args=(image_set, settings, layers, key), unit="resamples",
            pending=f"{len(layers)} layers and {len(models)} RDMs against {', '.join(references)}"
                    + (f", {resamples} resamples of {resample}" if resamples else ""))

ceilings = tables["noise_ceiling"]
for warning in dict.fromkeys(w for text in ceilings["warnings"] for w in str(text).split("; ") if w):
    st.warning(warning)
view = st.columns(2)
shown = view[0].selectbox("Reference shown", list(dict.fromkeys(ceilings["reference"])),
                          **in_url("brain.view_reference"),
                          help="The figures below show the models against this group; the table holds every group.")
method = view[1].selectbox("Comparator shown", settings.methods, **in_url("brain.view_method"),
                           format_func=lambda name: f"{name} ({METHOD_LABELS[name]})",
                           help="The figures below use this comparator; the table holds every one.")
rows, pairwise, ceiling, points = (one_view(tables[name], shown, method)
                                   for name in ("models", "pairwise", "noise_ceiling", "mds"))
ceiling = ceiling.iloc[0]
tag = shown + (f"_{method}" if len(settings.methods) > 1 else "")  # the figures' file names
keys = [source.feature_key for source in layers.values() if source.feature_key]
provenance = provenance_from_keys(keys, dict(settings), dataset=image_set.name,
                                  dataset_fingerprint=image_set.fingerprint, skipped_images=image_set.skipped_labels,
                                  store=resources.feature_store())
common = dict(page="brain", dataset=image_set.name, provenance=provenance)
figure_block(built_once((key, shown, method, "models"), lambda: model_comparison_figure(rows, pairwise)), rows,
             figure=f"models_{tag}", how_to_read=HOW_TO_READ["models"], **common)
if (rows["kind"] == LAYER).any():
    curves = layer_curves(rows, shown)
    figure_block(built_once((key, shown, method, "layers"), lambda: layer_curves_figure(
        curves, shown, (ceiling["lower"], ceiling["upper"]), method)), curves, figure=f"layers_{tag}",
        how_to_read=HOW_TO_READ["layers"], **common)
    best_layer_section(tables, shown, method)

best = rows.sort_values("mean", ascending=False)["model"].tolist()
model = st.selectbox("Model shown beside the reference", best, **in_url("brain.view_model"),
                     help="Its RDM beside the reference group's mean RDM, both as rank percentiles, items ordered by "
                          "category; default: the best model.")
reference_mean = next(group for group in groups if group.name == shown).mean
figure_block(built_once((key, shown, model, "rdms"), lambda: rdm_triplet_figure(
    reference_mean, model_rdm(image_set, layers, model, rdm_metric), image_set.metadata["category"].astype(str),
    (f"{shown} (mean)", model))), None, figure=f"rdms_{shown}", how_to_read=HOW_TO_READ["rdms"], **common)
figure_block(built_once((key, shown, method, "mds"), lambda: mds_figure(
    points, dict(zip(points["name"], points["kind"])), method)), points, figure=f"mds_{tag}",
    how_to_read=HOW_TO_READ["mds"], **common)
table_section(tables, image_set.name, provenance)
st.caption("Ceiling-normalised = mean / lower noise-ceiling bound (can exceed 1); p-values are rsatoolbox's "
           "t-tests on the bootstrap variance. " + " ".join(f"{row.reference}: {row.n_subjects} subjects"
                                                              f"{'; ' + row.note if row.note else ''}."
                                                              for row in ceilings.drop_duplicates("reference")
                                                              .itertuples()))
