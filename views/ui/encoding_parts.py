"""The Brain page's encoding-model section (docs/science.md §11), shown when the dataset has response patterns:
the settings, a background job computing the tables as a study step does (`core.studies.analyses.encoding.compute`),
the layer curves (raw and noise-ceiling-normalised), each unit's r against its ceiling at one layer, the tables
with their CSVs and 'How to read this'."""
from __future__ import annotations

from typing import Mapping

import streamlit as st

from core.analyses.encoding_tables import layer_summary
from core.analyses.representation import Representation
from core.data.datasets import ImageSet
from core.data.patterns import describe_patterns
from core.export import export_filename
from core.figures.encoding import encoding_curves_figure, unit_scatter_figure
from core.provenance import provenance_from_keys
from core.studies import analyses
from core.studies.analyses.encoding import EncodingSettings, compute, result_key, store_tables, stored_tables
from views.ui import resources
from views.ui.background import job_outcomes, job_progress, submit_job
from views.ui.export_row import built_once, figure_block, table_download
from views.ui.settings import in_url, setting_input, settings_from
from views.ui.similarity_sources import layer_features
from views.ui.studies import add_to_study

HOW_TO_READ = {
    "curves": (
        "Each encoder's layers, shallow (0) to deep (1): a cross-validated ridge model predicts every unit's "
        "responses (the mean over repetitions) from the layer's features, and the line is the median out-of-fold "
        "Pearson r over the reliable units, averaged over subjects. Left, **raw** r with the dashed ceiling (the "
        "median √reliability: what a perfect model would reach given the noise in the data); right, the same r "
        "**noise-ceiling-normalised** (r / √reliability per unit, ceiling 1). Picking the best layer on these same "
        "items and reporting its value is optimistic (docs/science.md §9): fix the layer in advance or choose it on "
        "held-out items."),
    "units": (
        "Each unit at one layer: its ceiling √reliability (split-half, Spearman-Brown corrected) across, its "
        "out-of-fold r up. The dashed diagonal is r = ceiling: units near it are predicted as well as their noise "
        "allows; hollow markers are units at or below the reliability threshold, left out of the medians."),
}


def encoding_section(image_set: ImageSet, selection, layers: Mapping[str, Representation]) -> None:
    """The section: settings, Compute, progress, and once stored its figures and tables."""
    entry = analyses.get("encoding")
    st.subheader("Encoding models")
    st.caption(f"Response patterns: {describe_patterns(image_set.pattern_references)}.")
    names = [group.name for group in image_set.pattern_references]
    top, row = st.columns(2), st.columns(5)
    groups = setting_input(entry, "pattern_groups", "Pattern groups", container=top[0], options=names, default=names)
    n_splits = setting_input(entry, "n_splits", "Folds", container=row[0])
    min_reliability = setting_input(entry, "min_reliability", "Min. reliability", container=row[1], step=0.05)
    alpha_grid = setting_input(entry, "alpha_grid", "Ridge penalties", container=row[2])
    alpha_per_unit = setting_input(entry, "alpha_per_unit", "Penalty per unit", container=row[3])
    seed = setting_input(entry, "seed", "Seed", container=row[4])
    settings = settings_from(entry, pattern_groups=groups or None, n_splits=n_splits, min_reliability=min_reliability,
                             alpha_grid=alpha_grid, alpha_per_unit=alpha_per_unit, seed=seed)
    if not layers:
        st.info("Encoding models predict the patterns from encoder layers: extract some (Features above; pick "
                "encoders and layers in the sidebar).")
        return
    if not groups:
        st.info("Pick at least one pattern group.")
        return
    if n_splits > len(image_set) // 2:
        st.warning(f"{n_splits} folds over {len(image_set)} items leave fewer than 2 items per fold; use at most "
                   f"{len(image_set) // 2} folds.")
        return
    key = result_key(settings, image_set, [source.fingerprint for source in layers.values()])
    tables = stored_tables(resources.result_cache(), key)
    status = resources.job_registry().status(key)
    top[1].button("Compute encoding models", type="primary", on_click=start_encoding,
                  args=(image_set, settings, layers, key),
                  disabled=tables is not None or (status is not None and status.state in ("queued", "running")),
                  help="Runs in the background with progress (one ridge fit per layer × subject × fold); the result "
                       "is stored on disk, so the same layers and settings open at once next time.")
    if not image_set.rdm_references:  # else the page's RSA part draws the one "Add to study" (its widget keys are fixed)
        add_to_study(entry.name, settings, selection)
    job_progress("encoding_jobs", "folds", "Stops after the current fold.")
    job_outcomes([key], "Cancelled.")
    if tables is None:
        st.info(f"{len(layers)} layers against {', '.join(groups)}: press **Compute encoding models**.")
        return
    _results(image_set, settings, layers, key, tables)


def start_encoding(image_set: ImageSet, settings: EncodingSettings, layers: Mapping[str, Representation],
                   key: str) -> None:
    """Button callback: one background job fitting every layer × subject and storing the tables under `key`."""
    features, order = layer_features(image_set, layers)
    cache = resources.result_cache()  # opened here: the job's thread has no Streamlit context

    def work(report):
        store_tables(cache, key, compute(settings, image_set, features, order, report))

    submit_job("encoding_jobs", key, f"Encoding · {', '.join(settings.pattern_groups or ())}", work)


def _results(image_set: ImageSet, settings: EncodingSettings, layers: Mapping[str, Representation], key: str,
             tables) -> None:
    """The figures and tables of stored results."""
    layer_rows, units, ceilings = tables["layers"], tables["units"], tables["ceilings"]
    keys = [source.feature_key for source in layers.values() if source.feature_key]
    provenance = provenance_from_keys(keys, dict(settings), dataset=image_set.name,
                                      dataset_fingerprint=image_set.fingerprint,
                                      skipped_images=image_set.skipped_labels, store=resources.feature_store())
    common = dict(page="encoding", dataset=image_set.name, provenance=provenance)
    left, right = st.columns(2)
    group = left.selectbox("Pattern group shown", list(dict.fromkeys(layer_rows["group"])),
                           **in_url("encoding.view_group"), help="The figures show this group; the tables hold all.")
    ceiling = ceilings[ceilings["group"] == group]["median_ceiling_r"].mean()
    raw, normalised = layer_summary(layer_rows, group), layer_summary(layer_rows, group, "median_r_normalised")
    figure_block(built_once((key, group, "curves"), lambda: encoding_curves_figure(raw, normalised, group, ceiling)),
                 raw.assign(normalised=normalised["value"]), figure=f"encoding_layers_{group}",
                 how_to_read=HOW_TO_READ["curves"], **common)
    labels = [f"{encoder} · {layer}" for encoder, layer in dict.fromkeys(zip(layer_rows["encoder"],
                                                                             layer_rows["layer"]))]
    shown = right.selectbox("Layer of the unit scatter", labels, **in_url("encoding.view_layer", index=len(labels) - 1),
                            help="Each unit's r against its ceiling at this layer "
                                                                  "(default: the last listed, the deepest).")
    encoder, layer = shown.split(" · ", 1)
    rows = units[(units["group"] == group) & (units["encoder"] == encoder) & (units["layer"] == layer)]
    figure_block(built_once((key, group, shown, "units"), lambda: unit_scatter_figure(rows, f"{group} · {shown}")),
                 rows, figure=f"encoding_units_{group}", how_to_read=HOW_TO_READ["units"], encoder=encoder,
                 layer=layer, **common)
    st.dataframe(layer_rows[layer_rows["group"] == group], hide_index=True, width="stretch")
    for name, label, text in (
            ("layers", "Layers (CSV)", "Per encoder · layer · group · subject: median r and ceiling-normalised r over "
                                       "the reliable units, median R², fraction of reliable units."),
            ("units", "Units (CSV)", "Every unit's out-of-fold r and R² and its split-half reliability."),
            ("ceilings", "Ceilings (CSV)", "Per group · subject: repetitions and the median reliability and "
                                           "√reliability of the reliable units.")):
        table_download(label, tables[name], provenance, key=f"encoding_csv_{name}", help=text,
                       file_stem=export_filename("encoding", name, image_set.name, "", ext=""))
    st.caption(f"{settings.n_splits}-fold ridge (alpha by leave-one-out inside each training fold, "
               f"{'per unit' if settings.alpha_per_unit else 'shared'}); reliable: split-half reliability > "
               f"{settings.min_reliability:g}. Ceiling-normalised r = r / √reliability per unit (can exceed 1).")
