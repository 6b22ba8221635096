"""Figures of the Brain page: the model comparison as rsatoolbox draws it, layer curves against a reference group,
RDMs ordered by category (reference, model, their difference) and the second-order MDS of all RDMs.

Inputs are the tables of `core.analyses.brain` (one reference group's rows), so a study's stored step draws them as
the page does.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from scipy.stats import rankdata

from core.analyses.brain import SIGNIFICANCE
from core.figures.alignment import draw_blocks, with_category_legend, category_order, display_matrix
from core.figures.similarity import add_depth_curves
from core.figures.style import EXTENDED, house_style

CEILING_COLOR = "#BBBBBB"
KIND_COLORS = {"encoder layer": "#0072B2", "model RDM file": "#E69F00", "RDM group": "#009E73"}
METHOD_LABELS = {"corr": "Pearson r", "spearman": "Spearman ρ", "tau-a": "Kendall τa", "rho-a": "ρa",
                 "cosine": "cosine", "corr_cov": "whitened Pearson r", "cosine_cov": "whitened cosine"}


def method_label(method: str) -> str:
    return f"RDM {METHOD_LABELS.get(method, method)}"


def _ceiling_band(fig: go.Figure, lower: float, upper: float, **where) -> None:
    low, high = sorted((lower, upper))
    fig.add_hrect(y0=low, y1=high, fillcolor=CEILING_COLOR, opacity=0.4, line_width=0, layer="below",
                  annotation_text="noise ceiling", annotation_position="top left", **where)


def sorted_models(models: pd.DataFrame) -> pd.DataFrame:
    """One reference's `model_table` rows, best mean first (rsatoolbox's descending sort)."""
    return models.sort_values("mean", ascending=False, kind="stable").reset_index(drop=True)


def significance_matrix(order: Sequence[str], pairwise: pd.DataFrame, alpha: float = SIGNIFICANCE) -> np.ndarray:
    """(M, M) in `order`: +1 where the row model beats the column model (FDR-corrected p < alpha), −1 where it
    loses, 0 otherwise (and on the diagonal)."""
    index = {name: k for k, name in enumerate(order)}
    out = np.zeros((len(order), len(order)))
    for row in pairwise.itertuples(index=False):
        if row.model_a in index and row.model_b in index and row.p_fdr < alpha:
            sign = np.sign(row.difference)
            out[index[row.model_a], index[row.model_b]] = sign
            out[index[row.model_b], index[row.model_a]] = -sign
    return out


def model_comparison_figure(models: pd.DataFrame, pairwise: pd.DataFrame, *, alpha: float = SIGNIFICANCE
                            ) -> go.Figure:
    """Bars of each model's mean against one reference group, best first, with 95% CI error bars, the grey noise
    ceiling band (lower to upper bound), an open triangle under each model significantly below the lower bound
    (p < alpha), and below: which pairwise differences are significant after FDR correction (row beats column:
    blue; row loses: red)."""
    shown = sorted_models(models)
    names = list(shown["model"])
    first = shown.iloc[0]
    reference, method = first["reference"], first["method"]
    fig = make_subplots(rows=2, cols=1, row_heights=[0.62, 0.38], vertical_spacing=0.04, shared_xaxes=True)
    ci = shown[["ci_low", "ci_high"]].to_numpy(float)
    has_ci = np.isfinite(ci).all(axis=1).any()
    colors = [KIND_COLORS.get(kind, EXTENDED[8]) for kind in shown["kind"]]
    custom = shown[["kind", "ci_low", "ci_high", "p_vs_zero", "p_vs_lower_ceiling", "ceiling_normalised"]]
    fig.add_trace(go.Bar(x=names, y=shown["mean"], marker_color=colors, name="models", showlegend=False,
                         error_y=dict(type="data", symmetric=False, array=(ci[:, 1] - shown["mean"]),
                                      arrayminus=(shown["mean"] - ci[:, 0]), color="#444444", thickness=1.2)
                         if has_ci else None, customdata=custom,
                         hovertemplate="%{x} (%{customdata[0]})<br>mean %{y:.4f} [%{customdata[1]:.4f}, "
                                       "%{customdata[2]:.4f}]<br>p vs 0 = %{customdata[3]:.3g}, p vs lower ceiling = "
                                       "%{customdata[4]:.3g}<br>ceiling-normalised %{customdata[5]:.3f}"
                                       "<extra></extra>"), 1, 1)
    for kind, color in KIND_COLORS.items():  # a legend of what the bar colours mean
        if (shown["kind"] == kind).any():
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=kind,
                                     marker=dict(symbol="square", size=11, color=color)), 1, 1)
    _ceiling_band(fig, first["ceiling_lower"], first["ceiling_upper"], row=1, col=1)
    below = shown[shown["below_lower_ceiling"].astype(bool)]
    if len(below):
        floor = min(0.0, float(np.nanmin(ci[:, 0])) if has_ci else float(shown["mean"].min()))
        fig.add_trace(go.Scatter(x=below["model"], y=[floor - 0.03] * len(below), mode="markers",
                                 name=f"below the lower ceiling (p < {alpha:g})",
                                 marker=dict(symbol="triangle-up-open", size=10, color="#444444"),
                                 hovertemplate="%{x}: below the lower noise ceiling<extra></extra>"), 1, 1)
    significant = significance_matrix(names, pairwise, alpha)
    fig.add_trace(go.Heatmap(z=significant, x=names, y=names, zmin=-1, zmax=1, showscale=False,
                             colorscale=[[0, "#D55E00"], [0.5, "#F4F4F4"], [1, "#0072B2"]], xgap=1, ygap=1,
                             hovertemplate="%{y} vs %{x}: %{z}<extra>+1 row better, −1 worse (FDR)</extra>"), 2, 1)
    fig.update_yaxes(title=method_label(method), row=1, col=1)
    fig.update_yaxes(autorange="reversed", showticklabels=len(names) <= 40, tickfont=dict(size=9), row=2, col=1)
    fig.update_xaxes(tickangle=-45, tickfont=dict(size=10), row=2, col=1)
    n_bootstrap, resample = int(first["n_bootstrap"]), first["resample"]
    inference = f"{n_bootstrap} resamples of {resample}" if resample != "none" else "no bootstrap"
    fig = house_style(fig, title=f"Models of {reference} · {method_label(method)} · 95% CIs, {inference}",
                      height=720 + 6 * len(names))
    # the legend between the title and the bars
    fig.update_layout(legend=dict(orientation="h", y=1.01, yanchor="bottom", x=0, xanchor="left"),
                      margin=dict(t=100))
    return fig


def layer_curves_figure(curves: pd.DataFrame, reference: str, ceiling: tuple[float, float] | None,
                        method: str = "corr") -> go.Figure:
    """Each encoder's layers against one reference group over normalised depth, 95% CI bands, the ceiling band.

    curves: encoder, layer, depth, value, ci_low, ci_high (`core.analyses.brain.layer_curves`)."""
    fig = go.Figure()
    if ceiling is not None:
        _ceiling_band(fig, *ceiling)
    add_depth_curves(fig, curves)
    fig.update_xaxes(title="normalised depth (0 = first block, 1 = last)", range=[-0.04, 1.04])
    fig.update_yaxes(title=method_label(method))
    return house_style(fig, title=f"Encoder layers vs {reference}, over depth")


def _percentile(matrix: np.ndarray) -> np.ndarray:
    """Off-diagonal entries as rank percentiles 0..1 (rsatoolbox shows RDMs rank-transformed); diagonal 0."""
    matrix = np.asarray(matrix, float)
    out = np.zeros_like(matrix)
    i, j = np.triu_indices(len(matrix), 1)
    ranks = (rankdata(matrix[i, j]) - 1) / max(len(i) - 1, 1)
    out[i, j] = out[j, i] = ranks
    return out


def rdm_triplet_figure(reference_rdm: np.ndarray, model_rdm: np.ndarray, categories: Sequence[str],
                       names: tuple[str, str]) -> go.Figure:
    """Reference mean RDM, model RDM (each as rank percentiles, items ordered by category) and model − reference."""
    order, blocks = category_order(categories)
    reference, model = _percentile(reference_rdm), _percentile(model_rdm)
    panels = ((reference, f"{names[0]} (percentile)", "Viridis", 0, 1, 0.27),
              (model, f"{names[1]} (percentile)", "Viridis", 0, 1, 0.63),
              (model - reference, "model − reference", "RdBu_r", -1, 1, 1.0))
    fig = make_subplots(rows=1, cols=3, subplot_titles=[panel[1] for panel in panels], horizontal_spacing=0.09)
    for column, (matrix, _, scale, low, high, bar_x) in enumerate(panels, start=1):
        values, positions = display_matrix(matrix, order)
        fig.add_trace(go.Heatmap(z=values, x=positions, y=positions, colorscale=scale, zmin=low, zmax=high,
                                 colorbar=dict(x=bar_x, xanchor="left", len=0.8, thickness=10),
                                 hovertemplate="item %{y:.0f} × item %{x:.0f}: %{z:.3f}<extra></extra>"), 1, column)
        draw_blocks(fig, blocks, row=1, col=column, legend=column == 1)
    fig.update_yaxes(autorange="reversed")
    fig.update_yaxes(showticklabels=False, row=1, col=2)
    fig.update_yaxes(showticklabels=False, row=1, col=3)
    return with_category_legend(house_style(fig, title=f"RDMs ordered by category: {names[0]} and {names[1]}",
                                             height=480), len(blocks))


def mds_figure(points: pd.DataFrame, kinds: Mapping[str, str], method: str = "corr") -> go.Figure:
    """Second-order MDS: every RDM (models, and each subject of the reference groups) as a point; distance
    1 − comparator. points: name, x, y (`core.analyses.brain.second_order_mds`); kinds: name -> what it is."""
    fig = go.Figure()
    table = points.assign(kind=[kinds.get(name, "other") for name in points["name"]])
    palette = {**KIND_COLORS, "subject": "#CC79A7"}
    for kind, part in table.groupby("kind", sort=False):
        fig.add_trace(go.Scatter(x=part["x"], y=part["y"], mode="markers", name=kind,
                                 marker=dict(size=9, color=palette.get(kind, EXTENDED[8]),
                                             symbol="diamond" if kind == "subject" else "circle"),
                                 text=part["name"], hovertemplate="%{text}<extra></extra>"))
    fig.update_xaxes(title="MDS 1", zeroline=False)
    fig.update_yaxes(title="MDS 2", zeroline=False, scaleanchor="x", scaleratio=1)
    return house_style(fig, title=f"Second-order MDS of all RDMs (distance 1 − {method_label(method)})", height=520)
