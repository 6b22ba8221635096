"""Figures of encoding models (docs/science.md §11): median r over depth, raw and noise-ceiling-normalised, and each
unit's r against its reliability at one layer."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.figures.similarity import add_depth_curves
from core.figures.style import OKABE_ITO, house_style

RAW, NORMALISED = "median r (raw)", "median r / √reliability (noise-ceiling-normalised)"


def encoding_curves_figure(raw: pd.DataFrame, normalised: pd.DataFrame, group: str,
                           ceiling_r: float | None) -> go.Figure:
    """Two panels over normalised depth, a line per encoder: the median r of the reliable units (left, with the
    median √reliability as the ceiling line) and the median r / √reliability (right, ceiling 1).

    raw, normalised: columns encoder, layer, depth, value, ci_low, ci_high (`layer_summary`)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=(RAW, NORMALISED), horizontal_spacing=0.1)
    for column, curves in ((1, raw), (2, normalised)):
        panel = add_depth_curves(go.Figure(), curves)
        for trace in panel.data:
            trace.showlegend = column == 1
            fig.add_trace(trace, row=1, col=column)
        fig.update_xaxes(title="normalised depth (0 = first block, 1 = last)", range=[-0.04, 1.04], row=1,
                         col=column)
    if ceiling_r is not None and np.isfinite(ceiling_r):
        fig.add_hline(y=ceiling_r, line_dash="dash", line_color="#777777", row=1, col=1,
                      annotation_text=f"ceiling: median √reliability = {ceiling_r:.2f}", annotation_position="top left")
        fig.add_hline(y=1.0, line_dash="dash", line_color="#777777", row=1, col=2, annotation_text="ceiling = 1",
                      annotation_position="top left")
    fig.update_yaxes(title="Pearson r (out-of-fold)", row=1, col=1)
    fig.update_yaxes(title="r / √reliability", row=1, col=2)
    return house_style(fig, title=f"Encoding models of {group}, over depth (reliable units; mean over subjects)",
                       height=440)


def unit_scatter_figure(units: pd.DataFrame, name: str) -> go.Figure:
    """Each unit's out-of-fold r against its ceiling √reliability (one colour per subject), the diagonal r = ceiling;
    units below the reliability threshold hollow.

    units: columns subject, unit, r, reliability, reliable (`encoding_tables`'s units at one layer)."""
    fig = go.Figure()
    ceiling = np.sqrt(np.clip(units["reliability"].to_numpy(float), 0, None))
    top = float(np.nanmax(np.r_[ceiling, units["r"].to_numpy(float), 0.1]))
    fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", line=dict(color="#999999", dash="dash"),
                             name="r = √reliability", hoverinfo="skip"))
    for index, (subject, rows) in enumerate(units.assign(ceiling=ceiling).groupby("subject", sort=False)):
        color = OKABE_ITO[index % len(OKABE_ITO)]
        for reliable, part in rows.groupby("reliable"):
            fig.add_trace(go.Scatter(
                x=part["ceiling"], y=part["r"], mode="markers", name=f"{subject}" + ("" if reliable else " (unreliable)"),
                marker=dict(color=color, size=7, symbol="circle" if reliable else "circle-open"),
                customdata=part[["unit", "reliability"]],
                hovertemplate="unit %{customdata[0]}: r = %{y:.3f}, reliability = %{customdata[1]:.3f}<extra>"
                              + str(subject) + "</extra>"))
    fig.update_xaxes(title="ceiling: √(split-half reliability, Spearman-Brown)")
    fig.update_yaxes(title="Pearson r (out-of-fold)")
    return house_style(fig, title=f"Units of {name}: r against the ceiling", height=440)
