"""Affect: valence/arousal probes under Leave-One-Theme-Out / Leave-One-Category-Out, and their errors' geometry."""
import time

import streamlit as st

from core.analyses.affect_report import affect_analysis
from core.analyses.cv import K_FOLD_SCHEMES, SCHEMES, CrossValidation, scheme_label
from core.export import export_filename
from core.figures import affect as figures
from core.jobs import eta_seconds, format_duration
from core.provenance import provenance_from_keys
from views.ui import resources
from views.ui.export_row import figure_block, table_download
from views.ui.extraction import extraction_panel
from views.ui.items import item_panel, selected_rows
from views.ui.sidebar import effective_pooling, page_start
from views.ui.studies import add_to_study

selection, image_set = page_start(
    "Affect",
    "Frozen features → ridge regression of valence and arousal (docs/science.md §2), then the geometry of the "
    "out-of-fold errors in the valence-arousal plane (§3).")
if not image_set.has_affect:
    st.info(f"**{image_set.name}** has no valence/arousal ratings. This page needs a dataset with `valence` and "
            "`arousal` columns: the demo, OASIS, or a manifest CSV with those columns.")
    st.stop()

controls = st.columns([3, 2])
schemes = controls[0].multiselect(
    "Cross-validation", list(SCHEMES), default=["loto", "loco"], format_func=scheme_label, key="affect_schemes",
    persist_state="session",
    help="LOTO holds out one theme group at a time (images of one theme never train their own prediction); LOCO "
         "holds out a whole category: generalisation to unseen kinds of things. K-fold: shuffled folds. Grouped K-fold: K folds of whole theme "
         "groups (cheaper than LOTO).")
if not schemes:
    st.info("Pick at least one cross-validation scheme.")
    st.stop()
geometry_scheme = controls[1].selectbox(
    "Scheme for the error geometry", schemes, format_func=scheme_label, key="affect_geometry_scheme",
    persist_state="session", help="The out-of-fold predictions whose errors the figures below analyse.")
options = st.columns(3)
zscore = options[0].toggle("z-scored axes", key="affect_zscore", persist_state="session",
                            help="Divide each error axis by the SD of that rating before angles, PLV, pull and "
                                 "error ED (arousal varies less than valence in OASIS). Occupancy and attractors "
                                 "stay in rating units.")
color_by_category = options[1].toggle("Colour by category", value=True, key="affect_color", persist_state="session",
                                       help="Colour the per-image arrows by category (else grey).")
bins = options[2].slider("Occupancy grid B", 8, 40, 20, key="affect_bins", persist_state="session",
                          help="Cells per axis of the occupancy histograms over the rating range [1, 7]².")
n_folds = 5
if set(K_FOLD_SCHEMES) & set(schemes):
    n_folds = st.number_input("K (folds)", 2, 20, 5, key="affect_k", persist_state="session",
                              help="Folds of the K-fold schemes (seed 0): shuffled images, or whole theme groups.")
if "loco" in schemes and image_set.metadata["category"].nunique() < 2:
    st.warning("Leave-One-Category-Out needs at least two categories; this dataset has one, so LOCO is skipped. "
               "Use LOTO or K-fold.")
    schemes = [scheme for scheme in schemes if scheme != "loco"]
    if not schemes:
        st.stop()
    geometry_scheme = geometry_scheme if geometry_scheme in schemes else schemes[0]
add_to_study("affect", dict(schemes=schemes, n_splits=int(n_folds), geometry_scheme=geometry_scheme, zscore=zscore,
                            bins=bins), selection)

with st.expander("Features", expanded=False):
    statuses = extraction_panel(image_set, selection)
feature_sets = {f"{status.encoder} [{status.layer}]": resources.feature_set(
                    image_set, resources.encoder_info(status.encoder), status.layer,
                    effective_pooling(status.encoder, selection.pooling))
                for status in statuses if status.state == "cached"}
if not feature_sets:
    st.info("None of the selected encoder × layer features are extracted yet: open **Features** above and press "
            "Extract.")
    st.stop()
cvs = [CrossValidation(scheme, int(n_folds)) for scheme in schemes]
geometry_cv = CrossValidation(geometry_scheme, int(n_folds))
bar, started = st.empty(), {}


def fold_done(task: str, done: int, total: int) -> None:
    """Progress of one cross-validation, with an ETA from its own folds so far."""
    started.setdefault(task, time.perf_counter())
    eta = eta_seconds(done, total, time.perf_counter() - started[task])
    left = f" · ETA ~{format_duration(eta)}" if eta and done < total else ""
    bar.progress(done / total, text=f"{task} — fold {done}/{total}{left}")


memo = resources.result_memo()  # keys start with the feature digests: a new dataset or layer never hits
key = (*(feature_set.key.digest for feature_set in feature_sets.values()), "affect", *feature_sets,
       *(cv.key for cv in cvs), geometry_cv.key, zscore, bins)
try:
    analysis = memo.get_or_compute(key, lambda: affect_analysis(image_set, feature_sets, cvs, geometry_cv,
                                                                zscore=zscore, bins=bins, memo=memo,
                                                                store=resources.result_store(), progress=fold_done))
except ValueError as error:  # e.g. too few groups for the scheme: explain, never a traceback
    st.error(str(error))
    st.stop()
bar.empty()
encoders = ",".join(status.encoder for status in statuses if status.state == "cached")
provenance = provenance_from_keys(
    [feature_set.key for feature_set in feature_sets.values()],
    {"cross_validation": [cv.key for cv in cvs], "geometry_cross_validation": geometry_cv.key, "zscore": zscore,
     "bins": bins}, dataset=image_set.name, dataset_fingerprint=image_set.fingerprint, label="{encoder} [{layer}]",
    store=resources.feature_store())
export = dict(page="affect", dataset=image_set.name, encoder=encoders, provenance=provenance)

st.subheader("1 · How well do the features predict the ratings?")
figure_block(figures.r2_summary_figure(analysis.metrics), analysis.metrics, figure="r2", **export, how_to_read=(
    "Bars: R² of the out-of-fold predictions over all images (1 − SSres/SStot), whiskers: bootstrap 95% "
    "CI over images; hover for Pearson r. The axis stops at −1. **Δ** above a pair of bars is "
    "R²(LOTO) − R²(LOCO), the drop when a whole category is unseen in training: a large drop means the "
    "features predict affect through category membership rather than through content that transfers "
    "across categories.\n\n**Dark dash: reliability ceiling** = 1 − mean(SD²/N) / var(mean rating), "
    "from each image's rater SD and number of raters N. A mean of N ratings carries noise of variance "
    "SD²/N, so even the images' true scores would reach only this R² on average. **share_explainable** "
    "in the table below = R² / ceiling, the share of the explainable variance the probe captures. A "
    "probe can land slightly above the ceiling by chance, and the ceiling says nothing about readouts "
    "other than this linear one (docs/science.md §2.1).\n\n"
    "Method: StandardScaler + RidgeCV (alpha per target from 15 values in 10⁻²…10⁵, chosen by "
    "leave-one-out inside the training fold). One deviation from a plain pipeline: "
    "standardised features are clipped to ±10 training SDs, because post-ReLU channels that are silent "
    "in the training fold but fire in a held-out theme otherwise make predictions explode."))
st.dataframe(analysis.metrics[["model", "scheme", "target", "r", "r2", "r2_lo", "r2_hi", "rmse", "ceiling",
                               "ceiling_lo", "ceiling_hi", "share_explainable"]], hide_index=True, width="stretch")
if analysis.ceiling_note:
    st.caption(analysis.ceiling_note)
elif image_set.name == "demo":
    st.caption("The demo's SD and N columns are decorations (core/data/demo.py), not the noise its ratings were "
               "generated with, so its ceiling is nominal.")
if not analysis.paired.empty:
    st.caption("Paired bootstrap over images (1,000 resamples, seed 0): R²(model) − R²(versus), 95% CI, two-sided p.")
    st.dataframe(analysis.paired, hide_index=True, width="stretch")
with st.expander("Per held-out group"):
    st.caption("r, R² and RMSE within each held-out theme group (LOTO), category (LOCO) or fold (K-fold); r needs "
               "at least 3 images, R² at least 2. R² within a group compares to that group's own mean, so it is "
               "often negative for small, homogeneous groups.")
    st.dataframe(analysis.per_group, hide_index=True, width="stretch")
    table_download("Per-group CSV", analysis.per_group, provenance,
                   help="The table above, for every encoder and scheme.",
                   file_stem=export_filename("affect", "per_group", image_set.name, ext=""))

st.subheader(f"2 · Where do the errors point? ({geometry_cv.label})")
predictions = figures.error_field_table(analysis.panels)
clicked = selected_rows(figure_block(
    figures.error_field_figure(analysis.panels, color_by_category=color_by_category), predictions,
    figure="error_field", layer=geometry_scheme, **export, select_key="affect_error_field_click",
    selection_mode=("points",), how_to_read=(
        "Thin lines run from each image's true rating to its prediction (dot). Black arrows average the "
        "errors of images whose *true* rating falls in each cell of an 8×8 grid. Arrows converging on the "
        "middle = shrinkage toward the mean; arrows converging elsewhere = attractor regions. The CSV holds "
        "every image's true and predicted ratings. Click a dot: the image, its true and predicted ratings, and its "
        "nearest images in each encoder's features.")), len(image_set))  # panels hold every item in dataset order
if clicked:
    item_panel(image_set, clicked[0], {label: feature_set.features for label, feature_set in feature_sets.items()},
               predicted={panel.label: panel.y_pred[clicked[0]] for panel in analysis.panels})

st.subheader("3 · How much of the plane do the errors use?")
figure_block(figures.occupancy_figure(analysis.occupancies), figures.occupancy_table(analysis.occupancies),
             figure="occupancy", layer=geometry_scheme, **export, how_to_read=(
                 f"Trajectory: 20 points evenly on every segment true → predicted, binned on a {bins}×{bins} grid "
                 "over [1, 7]²; endpoint: the predictions alone. H = −Σ p log p / log(B²): 1 when errors spread over "
                 "the whole plane, near 0 when they collapse into a few cells. Points outside [1, 7] count in the "
                 "border cells."))

st.subheader("4 · Do the errors share a direction?")
figure_block(figures.error_rose_figure(analysis.panels), figures.error_rose_table(analysis.panels),
             figure="error_rose", layer=geometry_scheme, **export)
st.dataframe(analysis.plv_by_category, hide_index=True, width="stretch")
with st.expander("How to read this"):
    st.markdown("Each petal sums the magnitudes of errors pointing that way (0° = predicted valence too high, 90° = "
                "arousal too high). Weighted phase-locking value PLV = |Σ wᵢ e^{iθᵢ}| / Σ wᵢ: 1 when all errors "
                "point the same way (a systematic bias), near 0 when directions cancel. The table gives PLV per "
                "category.")

st.subheader("5 · Error geometry, all measures")
st.dataframe(analysis.measures, hide_index=True, width="stretch")
downloads = st.columns(4)
table_download("Measures CSV", analysis.measures, provenance, help="The table above.", container=downloads[0],
               file_stem=export_filename("affect", "geometry", image_set.name, ext=""))
table_download("Predictions CSV", predictions, provenance, help="Per-image true and out-of-fold predicted ratings.",
               file_stem=export_filename("affect", "predictions", image_set.name, ext=""), container=downloads[1])
with st.expander("How to read this"):
    st.markdown("**plv**: weighted phase locking of error angles. **pull_index** ∈ [−1, 1]: magnitude-weighted "
                "cosine between each error and the direction from the true rating to the training-fold mean "
                "(> 0 = errors point to the centre); **slope_*** < 1 = shrinkage. **trajectory/endpoint_entropy**: "
                "section 3. **n_attractors**: local maxima of a Gaussian KDE (Scott bandwidth) of the predictions, "
                "ignoring bumps below 5% of the highest peak and merging maxima closer than 0.5; **fraction_near_attractor**: predictions within 0.5 "
                "rating units of one. **error_ed**: participation ratio of the 2×2 error covariance (1 = errors "
                "along one line, 2 = isotropic). **feature_ed**: participation ratio of the feature covariance.")
