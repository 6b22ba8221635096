"""Figures of the Similarity page: the matrix heatmap per measure, depth curves vs a reference, measure agreement."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.analyses.similarity import MEASURES, NoiseCeiling, SimilarityMatrix
from core.figures.style import encoder_colors, house_style

MAX_ANNOTATED = 400  # cells: more and the printed values overlap


def similarity_heatmap(matrix: SimilarityMatrix, measure: str, control_values: pd.Series | None = None) -> go.Figure:
    """Rows × columns heatmap of one measure, values printed in the cells, 95% CIs on hover; `control_values`
    (control name -> value, for the rows' representations) drawn as an extra column per control."""
    info = MEASURES[measure]
    m = matrix.measures.index(measure)
    values = matrix.values[m]
    columns = list(matrix.columns)
    z = values.copy()
    if control_values is not None and len(control_values):
        controls = control_values.unstack("control")  # rows: representation, columns: control
        extra = np.array([[controls.loc[row, name] if row in controls.index else np.nan for name in controls.columns]
                          for row in matrix.rows])
        z = np.hstack([z, extra])
        columns += [f"control: {name}" for name in controls.columns]
    hover, cells = np.empty(z.shape, dtype=object), np.vectorize(lambda v: f"{v:.2f}")(z).astype(object)
    for r, row in enumerate(matrix.rows):
        for c, column in enumerate(columns):
            note = matrix.note(measure, row, column) if c < len(matrix.columns) else ""
            text = f"{row} vs {column}<br>{info.label} " + (note if note else f"= {z[r, c]:.3f}")
            if c < len(matrix.columns) and matrix.resamples is not None and not note:
                low, high = matrix.interval(measure, row, column)
                text += f"<br>95% CI [{low:.3f}, {high:.3f}] ({matrix.n_bootstrap} resamples)"
            hover[r, c] = text
            cells[r, c] = "n/a" if note else cells[r, c]  # a side given as RDMs only: not a blank
    annotate = z.size <= MAX_ANNOTATED
    fig = go.Figure(go.Heatmap(z=z, x=columns, y=list(matrix.rows), colorscale="Viridis" if info.higher_is_similar
                               else "Viridis_r", text=cells if annotate else None,
                               texttemplate="%{text}" if annotate else None, hovertext=hover,
                               hovertemplate="%{hovertext}<extra></extra>", colorbar=dict(title=info.label)))
    fig.update_yaxes(autorange="reversed")
    return house_style(fig, title=f"{info.label} · {len(matrix.rows)} × {len(matrix.columns)} · N = {matrix.n_items}",
                       height=max(380, 28 * len(matrix.rows) + 160))


def depth_curves_figure(curves: pd.DataFrame, measure: str, ceiling: NoiseCeiling | None = None) -> go.Figure:
    """Value vs normalised depth, a line per encoder with its CI band; the noise-ceiling band behind them.

    curves: columns encoder, layer, depth, value, ci_low, ci_high (NaN without a bootstrap).
    """
    info = MEASURES[measure]
    fig = go.Figure()
    if ceiling is not None:
        low, high = sorted((ceiling.lower, ceiling.upper))
        fig.add_hrect(y0=low, y1=high, fillcolor="#BBBBBB", opacity=0.35, line_width=0, layer="below",
                      annotation_text=f"noise ceiling ({len(ceiling.references)} references)",
                      annotation_position="top left")
    add_depth_curves(fig, curves)
    fig.update_xaxes(title="normalised depth (0 = first selected block, 1 = last)", range=[-0.04, 1.04])
    fig.update_yaxes(title=info.label)
    return house_style(fig, title=f"{info.label} vs the reference, over depth")


def add_depth_curves(fig: go.Figure, curves: pd.DataFrame) -> go.Figure:
    """A line per encoder over normalised depth with its 95% CI band (where there is one), hover naming the layer.

    curves: columns encoder, layer, depth, value, ci_low, ci_high (NaN without a bootstrap)."""
    colors = encoder_colors(curves["encoder"])
    for encoder, curve in curves.groupby("encoder", sort=False):
        curve = curve.sort_values("depth")
        color = colors[encoder]
        if curve["ci_low"].notna().any():
            fig.add_trace(go.Scatter(x=np.r_[curve["depth"], curve["depth"][::-1]],
                                     y=np.r_[curve["ci_high"], curve["ci_low"][::-1]], fill="toself", line_width=0,
                                     fillcolor=color, opacity=0.2, hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scatter(x=curve["depth"], y=curve["value"], mode="lines+markers", name=encoder,
                                 line=dict(color=color), customdata=curve[["layer", "ci_low", "ci_high"]],
                                 hovertemplate="%{customdata[0]}: %{y:.3f} [%{customdata[1]:.3f}, "
                                               "%{customdata[2]:.3f}]<extra>" + encoder + "</extra>"))
    return fig


def agreement_figure(agreement: pd.DataFrame) -> go.Figure:
    """Measure × measure Spearman ρ across pairs (distances negated): do the measures rank the pairs alike?"""
    labels = [MEASURES[name].label for name in agreement.index]
    z = agreement.to_numpy()
    fig = go.Figure(go.Heatmap(z=z, x=labels, y=labels, zmin=-1, zmax=1, colorscale="RdBu", reversescale=True,
                               text=np.vectorize(lambda v: "" if np.isnan(v) else f"{v:.2f}")(z),
                               texttemplate="%{text}", colorbar=dict(title="Spearman ρ")))
    fig.update_yaxes(autorange="reversed")
    return house_style(fig, title="Do the measures rank the pairs alike?", height=max(360, 40 * len(labels) + 160))
