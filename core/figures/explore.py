"""Figures of the Explore page: a 2-D map of the items coloured by any metadata column (WebGL, clickable: every
point's customdata starts with its item row) and the histograms of where two representations agree item by item."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.analyses.explore import ItemMap
from core.figures.style import EXTENDED, category_colors, category_styles, house_style

MAX_CATEGORIES = 60  # more distinct values (image ids, …): one trace, coloured point by point, no legend
HOVER = "%{{customdata[1]}}<br>{colour}: %{{customdata[2]}}<extra>{name}</extra>"


def is_continuous(values: pd.Series) -> bool:
    """A numeric, non-boolean column: drawn with a colour scale rather than one colour per value."""
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _customdata(part: pd.DataFrame, colour: str) -> np.ndarray:
    """(n, 3) object array: item row (int), image_id, colour value."""
    return np.column_stack([part["row"].astype(int).to_numpy().astype(object),
                            part["image_id"].astype(str).to_numpy().astype(object),
                            part[colour].to_numpy().astype(object)])


def map_axis_titles(item_map: ItemMap) -> tuple[str, str]:
    """"PC1 (42.0 % variance)" … for PCA (plain "PC1" where the variance is unknown), "t-SNE 1" … otherwise."""
    if item_map.method != "PCA":
        return f"{item_map.method} 1", f"{item_map.method} 2"
    if item_map.explained is None:
        return "PC1", "PC2"
    return tuple(f"PC{axis} ({100 * share:.1f} % variance)" for axis, share in enumerate(item_map.explained, 1))


def map_figure(points: pd.DataFrame, colour: str, title: str, highlighted_rows: Sequence[int] = (),
               axis_titles: tuple[str, str] = ("", "")) -> go.Figure:
    """Items in 2-D (columns x, y, row, image_id, `colour`; n rows) as WebGL markers coloured by `colour` (labels:
    a distinct colour + symbol and a legend entry each, up to MAX_CATEGORIES); the `highlighted_rows` that are
    drawn get an overlay of larger black-edged markers (customdata row first too)."""
    fig = go.Figure()
    values = points[colour]
    if is_continuous(values):
        fig.add_trace(go.Scattergl(
            x=points["x"], y=points["y"], mode="markers", name=colour, showlegend=False,
            marker=dict(color=values.astype(float), colorscale="Viridis", size=6, opacity=0.85,
                        colorbar=dict(title=dict(text=colour), thickness=14)),
            customdata=_customdata(points, colour), hovertemplate=HOVER.format(colour=colour, name="")))
    else:
        labels = values.astype(str)
        styles = category_styles(labels)
        if len(styles) <= MAX_CATEGORIES:
            for category, part in points.groupby(labels, sort=True):
                color, symbol = styles[category]
                fig.add_trace(go.Scattergl(
                    x=part["x"], y=part["y"], mode="markers", name=str(category),
                    marker=dict(color=color, symbol=symbol, size=6, opacity=0.85),
                    customdata=_customdata(part, colour), hovertemplate=HOVER.format(colour=colour, name=category)))
        else:
            colors = category_colors(labels)
            fig.add_trace(go.Scattergl(
                x=points["x"], y=points["y"], mode="markers", name=colour, showlegend=False,
                marker=dict(color=[colors[label] for label in labels], size=6, opacity=0.85),
                customdata=_customdata(points, colour), hovertemplate=HOVER.format(colour=colour, name="")))
    highlighted = points[points["row"].isin([int(row) for row in highlighted_rows])]
    if len(highlighted):
        fig.add_trace(go.Scattergl(
            x=highlighted["x"], y=highlighted["y"], mode="markers", name=f"highlighted ({len(highlighted)})",
            marker=dict(color="rgba(255,255,255,0.15)", size=12, line=dict(color="black", width=2)),
            customdata=_customdata(highlighted, colour), hovertemplate=HOVER.format(colour=colour, name="highlighted")))
    fig.update_xaxes(title=axis_titles[0], showticklabels=False)
    fig.update_yaxes(title=axis_titles[1], showticklabels=False)
    # No dragmode: Streamlit then starts in pan mode, where a click selects a point. In box or lasso mode (the
    # toolbar) it turns click-to-select off, so a figure that starts in lasso mode could never be clicked.
    # Legend entries draw the marker at full size: a category's symbol stays readable.
    fig.update_layout(legend=dict(itemsizing="constant", title=dict(text=colour)))
    return house_style(fig, title=title, height=520)


def agreement_histogram_figure(agreement: pd.DataFrame, bins: int = 40) -> go.Figure:
    """Histograms over the N items of `rdm_row_spearman` (ρ of each item's RDM row, A vs B) and `knn_overlap`."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("RDM-row Spearman ρ per item", "k-NN overlap per item"))
    rho = agreement["rdm_row_spearman"].dropna()
    fig.add_trace(go.Histogram(x=rho, nbinsx=bins, marker_color=EXTENDED[0], name="ρ", showlegend=False), 1, 1)
    fig.add_trace(go.Histogram(x=agreement["knn_overlap"], xbins=dict(start=-0.025, end=1.025, size=0.05),
                               marker_color=EXTENDED[1], name="overlap", showlegend=False), 1, 2)
    fig.update_xaxes(title="Spearman ρ", row=1, col=1)
    fig.update_xaxes(title="shared neighbours / k", range=[-0.05, 1.05], row=1, col=2)
    fig.update_yaxes(title="items", row=1, col=1)
    return house_style(fig, title="Where the two representations agree, item by item", height=360)
