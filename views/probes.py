"""Layer probes: where in depth does an encoder hold affective and categorical information?"""
from dataclasses import asdict

import pandas as pd
import streamlit as st

from core.analyses.cv import K_FOLD_SCHEMES, scheme_label
from core.analyses.probes import encoder_curves, summary_table
from core.export import export_filename
from core.features.extract import feature_keys
from core.figures.probes import AXES, BANDS, probe_curves_figure
from core.provenance import provenance_from_keys
from core.studies import analyses
from core.studies.analyses.probes import probe_names
from views.ui import resources
from views.ui.export_row import figure_block, table_download
from views.ui.extraction import extraction_panel
from views.ui.probes_jobs import fitted_encoders
from views.ui.settings import in_url, setting_input, settings_from
from views.ui.sidebar import page_start
from views.ui.studies import add_to_study

entry = analyses.get("probes")
selection, image_set = page_start(
    "Layer probes",
    "The Affect page's ridge probe of valence and arousal, and a logistic-regression category probe, at "
    "every block of each encoder (docs/science.md §4). Encoders of different depths share a normalised axis.")
n_categories = image_set.metadata["category"].nunique()
probes = probe_names(image_set)
if not image_set.has_affect:
    st.info(f"**{image_set.name}** has no valence/arousal ratings: only the category probe is shown.")
if n_categories < 2:
    st.warning(f"**{image_set.name}** has one category, so there is no category probe.")
if not probes:
    st.stop()

controls = st.columns(4)
scheme = setting_input(entry, "scheme", "Affect cross-validation", container=controls[0], format_func=scheme_label)
category_scheme = setting_input(entry, "category_scheme", "Category cross-validation", container=controls[1],
                                format_func=scheme_label)
n_splits = setting_input(entry, "n_splits", "K (folds)", container=controls[2],
                         disabled=not set(K_FOLD_SCHEMES) & {scheme, category_scheme})
band = controls[3].radio("Band", list(BANDS), format_func=BANDS.get, **in_url("probes.band"),
                         help="±1 SE over folds (default): SD of the per-fold scores / √(number of folds), the "
                              "uncertainty of the mean; folds share training images, so read it as a guide, not "
                              "a test. Fold spread: ±1 SD of the per-fold scores (wide under LOTO, where a fold "
                              "is one small theme group). Per-fold R² uses the variance of all images, so folds "
                              "average to the pooled R². Bootstrap: 95% CI over images.")
settings = settings_from(entry, scheme=scheme, category_scheme=category_scheme, n_splits=n_splits)
add_to_study("probes", settings, selection)

with st.expander("Features (all layers)", expanded=False):
    statuses = extraction_panel(image_set, selection, layers={spec: "all" for spec in selection.encoders})
unavailable = {status.encoder for status in statuses if status.state == "unavailable"}
usable = [spec for spec in selection.encoders if spec not in unavailable]
if unavailable:
    st.caption(f"Cannot be loaded here, so not drawn: {', '.join(sorted(unavailable))} (the reason is in **Features "
               "(all layers)**).")
if not usable:
    st.info("None of the selected encoders can be loaded here: pick another in the sidebar." if unavailable else
            "Select an encoder in the sidebar.")
    st.stop()

store, pooling = resources.feature_store(), {spec: selection.pooling_of(spec) for spec in usable}
drawn = fitted_encoders(image_set, selection, usable, settings.probe_settings, probes, button_key="probes.compute")
curves = pd.concat([encoder_curves(image_set, resources.encoder_info(spec), store, settings=settings.probe_settings,
                                   probes=probes, pooling=pooling[spec], results=resources.result_cache())
                    for spec in drawn], ignore_index=True)

how_to_read = (
    "Each line is one encoder, each point one layer (hover for its name). R²: ridge regression of the rating "
    f"from that layer's features, out-of-fold under {scheme_label(scheme)} — the Affect page's probe. Category: "
    f"balanced accuracy of a logistic regression under {scheme_label(category_scheme)}, chance = 1/"
    f"{n_categories} (dotted). Features are standardised and clipped to ±10 training SDs before each probe "
    "(the Affect page explains why). A curve that rises only at the end holds the information late; a flat "
    "curve spreads it across depth.")
keys = [key for spec in drawn
        for key in feature_keys(image_set, resources.encoder_info(spec), "all", pooling[spec]).values()]
provenance = provenance_from_keys(keys, {**asdict(settings.probe_settings), "probes": list(probes), "band": band},
                                  store=store, dataset=image_set.name, dataset_fingerprint=image_set.fingerprint,
                                  skipped_images=image_set.skipped_labels)
depth_tab, index_tab = st.tabs(["Normalised depth", "Layer index"])
for tab, axis in ((depth_tab, "depth"), (index_tab, "layer_index")):
    with tab:
        figure_block(probe_curves_figure(curves, x=axis, band=band, category_chance=1 / n_categories), curves,
                     page="probes", figure=f"curves_{axis}", dataset=image_set.name, encoder=",".join(drawn),
                     layer=scheme, provenance=provenance, how_to_read=how_to_read if axis == "depth" else
                     f"As the first tab, with the {AXES[axis]} on the x axis: encoders of different depths no longer "
                     "line up.")

st.subheader("Where does each curve hold its information?")
summaries = summary_table(curves)
st.dataframe(summaries, hide_index=True, width="stretch", column_config={
    column: st.column_config.NumberColumn(format="%.3f")
    for column in ("peak_score", "peak_depth", "centre_of_mass", "late_fraction")})
downloads = st.columns(4)
table_download("Summaries CSV", summaries, provenance, help="The table above.", container=downloads[0],
               file_stem=export_filename("probes", "summaries", image_set.name, ext=""))
table_download("Per-layer CSV", curves, provenance, container=downloads[1],
               file_stem=export_filename("probes", "per_layer", image_set.name, ext=""),
               help="Every encoder x layer x probe: score, bootstrap CI, fold SD, folds.")
with st.expander("How to read this"):
    st.markdown(
        "Scores below zero count as zero here (an R² below 0 says nothing about where information sits). "
        "**peak_depth**: normalised depth of the best layer. **centre_of_mass**: Σ depth·score / Σ score; 0.5 "
        "for a flat curve. **late_fraction**: share of the area under the curve in the last third of depth; "
        "1/3 for a flat curve, 1 when only the last layers carry information. Both are blank for an encoder "
        "with a single layer (pixels). Depth runs from 0 (first block) "
        "to 1 (last layer, the encoder's own pooled embedding `final`), evenly over the listed layers; an encoder "
        "with a single layer (pixels) sits at 1, beside the other encoders' final layers.")
