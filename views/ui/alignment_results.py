"""What the Alignment page shows of a finished alignment: its numbers, figures and downloads, and the RSA-vs-GWOT
table over several targets."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import streamlit as st

from core.analyses.gwot import Alignment, AlignmentReport
from core.data.datasets import ImageSet
from core.export import array_to_npy, export_filename, table_to_csv
from core.figures.alignment import (epsilon_search_figure, matching_rates_figure, per_category_figure,
                                    rdm_pair_figure, transport_plan_figure)
from core.provenance import Provenance
from views.ui.alignment_runs import SourceAlignments
from views.ui.export_row import figure_block, file_download, table_download
from views.ui.settings import in_url


def alignment_metrics(report: AlignmentReport) -> None:
    """The matching rates, selected ε, GW distance and RSA in a row, then the search's warnings."""
    summary, alignment, trials = report.rates, report.alignment, report.alignment.trials
    metrics = st.columns(5)
    metrics[0].metric("Top-1 matching", f"{summary['rate'].iloc[0]:.1%}",
                      help=f"Chance {summary['chance'].iloc[0]:.2%}")
    metrics[1].metric("Category matching", f"{summary['rate'].iloc[-1]:.1%}",
                      help=f"Chance {summary['chance'].iloc[-1]:.1%} = Σ (category share)²")
    metrics[2].metric("Selected ε", f"{alignment.epsilon:.3g}", help="Smallest GW distance over all valid trials.")
    metrics[3].metric("GW distance", f"{alignment.gw_distance:.4g}",
                      help="Without the entropy term (ot.gromov.gwloss).")
    metrics[4].metric("RSA (Spearman)", f"{report.rsa:.3f}",
                      help="Spearman correlation of the two RDMs' upper triangles: the supervised contrast, which "
                           "knows the correspondence.")
    for warning in report.warnings:
        st.warning(warning.message)
    discarded = trials[~trials["valid"]]
    if len(discarded):
        st.warning(f"{len(discarded)} of {len(trials)} trials were discarded ({discarded['note'].iloc[0]}, …): ε "
                   "too small for these RDMs' scale. They are crossed in the epsilon search.")


def pair_figures(image_set: ImageSet, report: AlignmentReport, rdms: tuple[np.ndarray, np.ndarray],
                 pair: tuple[str, str], label: str, provenance: Provenance) -> Any:
    """The two RDMs, the selected plan and its matching rates; returns the plan's click event."""
    categories = image_set.metadata["category"].astype(str).to_numpy()
    items = image_set.metadata["image_id"].astype(str).to_numpy()
    common = dict(page="alignment", dataset=image_set.name, encoder=label, provenance=provenance)
    figure_block(rdm_pair_figure(*rdms, categories, pair), None, figure="rdms", **common, how_to_read=(
        "Both RDMs with items ordered by category (white lines: category boundaries; the colour strips along the "
        "rows and columns and the legend name every category, the axes those with room). GWOT compares the two "
        "matrices' shapes only: it never sees which row of one is which row of the other. Matrices over 600 items "
        "are shown block-averaged; downloads hold the full arrays."))
    plan_column, rates_column = st.columns([3, 2])
    with plan_column:
        log_colour = st.toggle("Log colour scale", **in_url("alignment.log_colour"),
                               help="log₁₀ of N·T, floored at 1e-4: shows where the small mass goes.")
        plan_click = figure_block(
            transport_plan_figure(report.alignment.transport_plan, categories, log_colour=log_colour, names=pair,
                                  items=items), None, figure="transport_plan", **common,
            select_key="alignment.plan_click", selection_mode=("points",), how_to_read=(
                "Row i is where source item i sends its mass, scaled by N so a row sums to 1 (N·T); the colour "
                "strips mark the categories as in the RDMs' legend (hover a strip for its name). A sharp "
                "diagonal means items are matched to themselves (top-1); mass inside the diagonal blocks "
                "means matched to the right category. Click a row's darkest cell to see where that item goes "
                "(below); plans over 600 items are block-averaged, pick the item in the box below instead."))
    with rates_column:
        figure_block(matching_rates_figure(report.rates), report.rates, figure="matching_rates", **common,
                     how_to_read=(
                         "Top-k: fraction of source items whose k largest plan entries include their own target "
                         "item. Category: the largest entry falls in the item's category. Red dashes: chance (k/N "
                         "and Σ category share²). Always the selected trial's plan, never the best over trials."))
    return plan_click


def search_figures(image_set: ImageSet, report: AlignmentReport, label: str, provenance: Provenance) -> None:
    """Every trial of the ε search, and the matching rates per category."""
    alignment = report.alignment
    common = dict(page="alignment", dataset=image_set.name, encoder=label, provenance=provenance)
    figure_block(epsilon_search_figure(alignment.trials, alignment.selected), alignment.trials,
                 figure="epsilon_search", **common, how_to_read=(
                     "Every trial of the search. The selected trial (star) has the smallest GW distance without the "
                     "entropy term, among valid trials; top-1 is shown for information and never used to select. "
                     "Crossed: discarded trials (NaN, or plan mass off by more than 1e-5)."))
    figure_block(per_category_figure(report.per_category), report.per_category, figure="per_category", **common,
                 how_to_read=(
                     "The same rates within each category's source items; the dash is the category's chance (its "
                     "share of the items). Sorted by category matching."))


def alignment_downloads(image_set: ImageSet, alignment: Alignment, label: str, provenance: Provenance) -> None:
    """The selected plan as NPY and as CSV, and every trial, each zipped with its provenance."""
    plan, items = alignment.transport_plan, image_set.metadata["image_id"].astype(str).to_numpy()
    downloads = st.columns(3)
    plan_stem = export_filename("alignment", "transport_plan", image_set.name, label, ext="")
    file_download("Plan (NPY)", f"{plan_stem}.npy", lambda: array_to_npy(plan), provenance,
                  file_stem=f"{plan_stem}_npy", container=downloads[0],
                  help="A zip: the selected (N, N) plan, rows and columns in the dataset's item order, and "
                       "provenance.json.")
    file_download("Plan (CSV)", f"{plan_stem}.csv", container=downloads[1], provenance=provenance,
                  data=lambda: table_to_csv(pd.DataFrame(plan, columns=items).set_axis(items).rename_axis("image_id")
                                            .reset_index()),
                  file_stem=f"{plan_stem}_csv", help="A zip: the same plan with image_id row and column labels, and "
                                                     "provenance.json.")
    table_download("Trials (CSV)", alignment.trials, provenance, container=downloads[2],
                   file_stem=export_filename("alignment", "trials", image_set.name, label, ext=""),
                   help="Every (ε, init) trial: GW distance, top-1, time, iterations, converged, valid.")


def rsa_vs_gwot_table(image_set: ImageSet, alignments: SourceAlignments, targets: Sequence[str],
                      rates: pd.DataFrame) -> None:
    """RSA and GWOT matching of the source to each of `targets`, chance, a button aligning the missing ones and the
    table's download."""
    comparison, missing = alignments.comparison(targets)
    st.dataframe(comparison, hide_index=True, width="stretch", column_config={
        column: st.column_config.NumberColumn(format="%.3f") for column in ("rsa", "gw_distance")})
    st.caption(f"Chance: top-1 {rates['chance'].iloc[0]:.2%}, top-5 {rates['chance'].iloc[1]:.2%}, top-10 "
               f"{rates['chance'].iloc[2]:.2%}, category {rates['chance'].iloc[-1]:.1%}.")
    buttons = st.columns(2)
    buttons[0].button(f"Align to {len(missing)} more target(s)", on_click=alignments.start, args=(missing,),
                      disabled=not missing, help="Background jobs, one per target, with the settings above.")
    table_download("Comparison (CSV)", comparison, alignments.provenance(targets), container=buttons[1],
                   file_stem=export_filename("alignment", "rsa_vs_gwot", image_set.name, alignments.source, ext=""),
                   help="The table above.")
