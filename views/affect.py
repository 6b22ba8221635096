"""Affect: valence/arousal probes under Leave-One-Theme-Out / Leave-One-Category-Out, and their errors' geometry."""
import streamlit as st

from core.analyses.cv import K_FOLD_SCHEMES, scheme_label
from core.export import export_filename
from core.figures import affect as figures
from core.provenance import provenance_from_keys
from core.studies import analyses
from core.studies.analyses.affect import analysis_of, model_label
from views.ui import resources
from views.ui.affect_sections import (MEASURES_HOW_TO_READ, OCCUPANCY_HOW_TO_READ, ROSE_HOW_TO_READ,
                                      error_field_section, fold_progress, r2_section)
from views.ui.export_row import built_once, figure_block, table_download
from views.ui.extraction import extraction_panel
from views.ui.settings import in_url, setting_input, settings_from
from views.ui.sidebar import page_start
from views.ui.studies import add_to_study

entry = analyses.get("affect")
selection, image_set = page_start(
    "Affect",
    "Frozen features → ridge regression of valence and arousal (docs/science.md §2), then the geometry of the "
    "out-of-fold errors in the valence-arousal plane (§3).")
if not image_set.has_affect:
    st.info(f"**{image_set.name}** has no valence/arousal ratings. This page needs a dataset with `valence` and "
            "`arousal` columns: the demo, OASIS, or a manifest CSV with those columns.")
    st.stop()

controls = st.columns([3, 2])
schemes = setting_input(entry, "schemes", "Cross-validation", container=controls[0], format_func=scheme_label,
                        help="LOTO: images of one theme never train their own prediction; LOCO: generalisation to "
                             "unseen kinds of things; grouped K-fold is cheaper than LOTO.")
if not schemes:
    st.info("Pick at least one cross-validation scheme.")
    st.stop()
geometry_scheme = setting_input(entry, "geometry_scheme", "Scheme for the error geometry", container=controls[1],
                                options=list(schemes), format_func=scheme_label)
options = st.columns(3)
zscore = setting_input(entry, "zscore", "z-scored axes", container=options[0],
                       help="Angles, PLV, pull and error ED use it (arousal varies less than valence in OASIS); "
                            "occupancy and attractors stay in rating units.")
color_by_category = options[1].toggle("Colour by category", **in_url("affect.color", value=True),
                                      help="Colour the per-image arrows by category (else grey).")
bins = setting_input(entry, "bins", "Occupancy grid B", container=options[2], widget="slider",
                     help="Over the rating range [1, 7]².")
n_splits = setting_input(entry, "n_splits", "K (folds)", help="Seed 0.") if set(K_FOLD_SCHEMES) & set(schemes) \
    else entry.settings.default("n_splits")
if "loco" in schemes and image_set.metadata["category"].nunique() < 2:
    st.warning("Leave-One-Category-Out needs at least two categories; this dataset has one, so LOCO is skipped. "
               "Use LOTO or K-fold.")
    schemes = [scheme for scheme in schemes if scheme != "loco"]
    if not schemes:
        st.stop()
    geometry_scheme = geometry_scheme if geometry_scheme in schemes else schemes[0]
settings = settings_from(entry, schemes=list(schemes), n_splits=n_splits, geometry_scheme=geometry_scheme,
                         zscore=zscore, bins=bins)
add_to_study("affect", settings, selection)

with st.expander("Features", expanded=False):
    statuses = [status for status in extraction_panel(image_set, selection) if status.state == "cached"]
feature_sets = {model_label(status.encoder, status.layer): resources.feature_set(
                    image_set, resources.encoder_info(status.encoder), status.layer,
                    selection.pooling_of(status.encoder)) for status in statuses}
if not feature_sets:
    st.info("None of the selected encoder × layer features are extracted yet: open **Features** above and press "
            "Extract.")
    st.stop()

memo, bar = resources.result_memo(), st.empty()  # memo keys start with the feature digests: a new layer never hits
key = (*(feature_set.key.digest for feature_set in feature_sets.values()), "affect", *feature_sets,
       *(cv.key for cv in settings.cvs), settings.geometry_cv.key, zscore, bins)
try:
    analysis = memo.get_or_compute(key, lambda: analysis_of(image_set, feature_sets, settings, memo=memo,
                                                            store=resources.result_store(),
                                                            progress=fold_progress(bar)))
except ValueError as error:  # e.g. too few groups for the scheme: explain, never a traceback
    st.error(str(error))
    st.stop()
bar.empty()
provenance = provenance_from_keys(
    [feature_set.key for feature_set in feature_sets.values()],
    {"cross_validation": [cv.key for cv in settings.cvs], "geometry_cross_validation": settings.geometry_cv.key,
     "zscore": zscore, "bins": bins}, dataset=image_set.name, dataset_fingerprint=image_set.fingerprint,
    skipped_images=image_set.skipped_labels,
    label="{encoder} [{layer}]", store=resources.feature_store())
export = dict(page="affect", dataset=image_set.name, encoder=",".join(status.encoder for status in statuses),
              provenance=provenance)

st.subheader("1 · How well do the features predict the ratings?")
r2_section(analysis, key, image_set, provenance, export)

st.subheader(f"2 · Where do the errors point? ({settings.geometry_cv.label})")
predictions = error_field_section(analysis, key, image_set, feature_sets, export, color_by_category=color_by_category,
                                  scheme=geometry_scheme, select_key="affect.error_field_click")

st.subheader("3 · How much of the plane do the errors use?")
figure_block(*built_once((key, "occupancy"), lambda: (figures.occupancy_figure(analysis.occupancies),
                                                      figures.occupancy_table(analysis.occupancies))),
             figure="occupancy", layer=geometry_scheme, **export, how_to_read=OCCUPANCY_HOW_TO_READ.format(bins=bins))

st.subheader("4 · Do the errors share a direction?")
figure_block(*built_once((key, "error_rose"), lambda: (figures.error_rose_figure(analysis.panels),
                                                       figures.error_rose_table(analysis.panels))),
             figure="error_rose", layer=geometry_scheme, **export)
st.dataframe(analysis.plv_by_category, hide_index=True, width="stretch")
with st.expander("How to read this"):
    st.markdown(ROSE_HOW_TO_READ)

st.subheader("5 · Error geometry, all measures")
st.dataframe(analysis.measures, hide_index=True, width="stretch")
downloads = st.columns(4)
table_download("Measures CSV", analysis.measures, provenance, help="The table above.", container=downloads[0],
               file_stem=export_filename("affect", "geometry", image_set.name, ext=""))
table_download("Predictions CSV", predictions, provenance, help="Per-image true and out-of-fold predicted ratings.",
               file_stem=export_filename("affect", "predictions", image_set.name, ext=""), container=downloads[1])
with st.expander("How to read this"):
    st.markdown(MEASURES_HOW_TO_READ)
