"""The Affect page's longer pieces: fold progress, the R² section with its tables, the error field and its item card,
and the texts that say how to read each figure."""
from __future__ import annotations

import time
from typing import Hashable, Mapping

import pandas as pd
import streamlit as st

from core.analyses.affect_report import AffectAnalysis
from core.data.datasets import ImageSet
from core.export import export_filename
from core.features.extract import FeatureSet
from core.figures import affect as figures
from core.jobs import eta_seconds, format_duration
from core.progress import Progress, Report
from core.provenance import Provenance
from views.ui.export_row import built_once, figure_block, table_download
from views.ui.items import item_panel, selected_rows

R2_HOW_TO_READ = (
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
    "in the training fold but fire in a held-out theme otherwise make predictions explode.")
ERROR_FIELD_HOW_TO_READ = (
    "Thin lines run from each image's true rating to its prediction (dot). Black arrows average the "
    "errors of images whose *true* rating falls in each cell of an 8×8 grid. Arrows converging on the "
    "middle = shrinkage toward the mean; arrows converging elsewhere = attractor regions. The CSV holds "
    "every image's true and predicted ratings. Click a dot: the image, its true and predicted ratings, and its "
    "nearest images in each encoder's features.")
OCCUPANCY_HOW_TO_READ = (
    "Trajectory: 20 points evenly on every segment true → predicted, binned on a {bins}×{bins} grid "
    "over [1, 7]²; endpoint: the predictions alone. H = −Σ p log p / log(B²): 1 when errors spread over "
    "the whole plane, near 0 when they collapse into a few cells. Points outside [1, 7] count in the "
    "border cells.")
ROSE_HOW_TO_READ = (
    "Each petal sums the magnitudes of errors pointing that way (0° = predicted valence too high, 90° = "
    "arousal too high). Weighted phase-locking value PLV = |Σ wᵢ e^{iθᵢ}| / Σ wᵢ: 1 when all errors "
    "point the same way (a systematic bias), near 0 when directions cancel. The table gives PLV per "
    "category.")
MEASURES_HOW_TO_READ = (
    "**plv**: weighted phase locking of error angles. **pull_index** ∈ [−1, 1]: magnitude-weighted "
    "cosine between each error and the direction from the true rating to the training-fold mean "
    "(> 0 = errors point to the centre); **slope_*** < 1 = shrinkage. **trajectory/endpoint_entropy**: "
    "section 3. **n_attractors**: local maxima of a Gaussian KDE (Scott bandwidth) of the predictions, "
    "ignoring bumps below 5% of the highest peak and merging maxima closer than 0.5; **fraction_near_attractor**: "
    "predictions within 0.5 rating units of one. **error_ed**: participation ratio of the 2×2 error covariance (1 = "
    "errors along one line, 2 = isotropic). **feature_ed**: participation ratio of the feature covariance.")


def fold_progress(bar) -> Report:
    """The report that shows each cross-validation (its message) in `bar`, with an ETA from its own folds so far."""
    started = {}

    def fold_done(folds: Progress) -> None:
        started.setdefault(folds.message, time.perf_counter())
        eta = eta_seconds(folds.done, folds.total, time.perf_counter() - started[folds.message])
        left = f" · ETA ~{format_duration(eta)}" if eta and folds.done < folds.total else ""
        bar.progress(folds.done / folds.total, text=f"{folds.message} — fold {folds.done}/{folds.total}{left}")

    return fold_done


def r2_section(analysis: AffectAnalysis, key: Hashable, image_set: ImageSet, provenance: Provenance,
               export: dict) -> None:
    """Section 1: the R² bars, the metrics with their ceiling, the paired comparisons and the per-group scores
    (`key`: what the analysis was memoised under, so its figures are built once)."""
    figure_block(built_once((key, "r2"), lambda: figures.r2_summary_figure(analysis.metrics)), analysis.metrics,
                 figure="r2", **export, how_to_read=R2_HOW_TO_READ)
    st.dataframe(analysis.metrics[["model", "scheme", "target", "r", "r2", "r2_lo", "r2_hi", "rmse", "ceiling",
                                   "ceiling_lo", "ceiling_hi", "share_explainable"]], hide_index=True, width="stretch")
    if analysis.ceiling_note:
        st.caption(analysis.ceiling_note)
    elif image_set.name == "demo":
        st.caption("The demo's SD and N columns are decorations (core/data/demo.py), not the noise its ratings were "
                   "generated with, so its ceiling is nominal.")
    if not analysis.paired.empty:
        st.caption("Paired bootstrap over images (1,000 resamples, seed 0): R²(model) − R²(versus), 95% CI, "
                   "two-sided p.")
        st.dataframe(analysis.paired, hide_index=True, width="stretch")
    with st.expander("Per held-out group"):
        st.caption("r, R² and RMSE within each held-out theme group (LOTO), category (LOCO) or fold (K-fold); r needs "
                   "at least 3 images, R² at least 2. R² within a group compares to that group's own mean, so it is "
                   "often negative for small, homogeneous groups.")
        st.dataframe(analysis.per_group, hide_index=True, width="stretch")
        table_download("Per-group CSV", analysis.per_group, provenance,
                       help="The table above, for every encoder and scheme.",
                       file_stem=export_filename("affect", "per_group", image_set.name, ext=""))


def error_field_section(analysis: AffectAnalysis, key: Hashable, image_set: ImageSet,
                        feature_sets: Mapping[str, FeatureSet], export: dict, *, color_by_category: bool, scheme: str,
                        select_key: str) -> pd.DataFrame:
    """Section 2: every image's error in the valence-arousal plane; a click opens the image's card with its ratings
    and nearest neighbours. Returns the per-image predictions (the page's Predictions CSV)."""
    predictions = built_once((key, "predictions"), lambda: figures.error_field_table(analysis.panels))
    clicked = selected_rows(figure_block(
        built_once((key, "error_field", color_by_category),
                   lambda: figures.error_field_figure(analysis.panels, color_by_category=color_by_category)),
        predictions,
        figure="error_field", layer=scheme, **export, select_key=select_key, selection_mode=("points",),
        how_to_read=ERROR_FIELD_HOW_TO_READ), len(image_set))  # panels hold every item in dataset order
    if clicked:
        item_panel(image_set, clicked[0], {label: feature_set.features for label, feature_set in feature_sets.items()},
                   predicted={panel.label: panel.y_pred[clicked[0]] for panel in analysis.panels})
    return predictions
