"""Figures of the Manifolds page: the centroid map with radius circles, pair histograms, radii and
neighbours, uniformity and view-alignment bars, the class distance heatmap and the eigenspectrum."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.analyses.spectra import POWER_LAW_RANKS
from core.figures.style import EXTENDED, category_colors, encoder_colors, house_style

PAIR_TITLES = {"centroid_distance": "Centroid distance", "centroid_cosine": "Centroid cosine",
               "orientation_cos2": "Orientation cos²"}


def centroid_map_figure(points: pd.DataFrame, scale: float, method: str) -> go.Figure:
    """Centroids in 2-D (columns x, y, image_id, category, radius, neighbours), a circle of radius·scale each.

    Each point's customdata starts with its row in `points` (the item's row in the analysed items), so a click
    leads to the item (views.ui.items.selected_rows)."""
    colors = category_colors(points["category"])
    fig = go.Figure()
    for category, part in points.groupby("category", sort=True):
        fig.add_trace(go.Scatter(
            x=part["x"], y=part["y"], mode="markers", name=category, marker=dict(color=colors[category], size=5),
            customdata=np.column_stack([np.flatnonzero(points["category"].to_numpy() == category),
                                        part[["image_id", "radius", "neighbours"]].to_numpy()]),
            hovertemplate="%{customdata[1]}<br>radius %{customdata[2]:.3f}<br>%{customdata[3]} neighbours"
                          f"<extra>{category}</extra>"))
    fig.update_layout(shapes=[dict(type="circle", xref="x", yref="y", x0=x - r * scale, x1=x + r * scale,
                                   y0=y - r * scale, y1=y + r * scale, line=dict(color=colors[c], width=1),
                                   opacity=0.5)
                              for x, y, r, c in points[["x", "y", "radius", "category"]].itertuples(index=False)])
    fig.update_xaxes(title=f"{method} 1", showticklabels=False)
    fig.update_yaxes(title=f"{method} 2", showticklabels=False, scaleanchor="x")
    return house_style(fig, title=f"Sub-manifold centroids ({method}); circles: radius × {scale:.3g}", height=560)


def pair_histograms_figure(pairs: dict[str, dict[str, dict[str, np.ndarray]]], bins: int = 50) -> go.Figure:
    """Intra- vs inter-class histograms: pairs[encoder][measure][relation] holds the values over image pairs.

    Binned here (density over shared edges) so the browser gets 2 x `bins` bars per panel
    instead of every one of the N(N−1)/2 pairs.
    """
    encoders = list(pairs)
    measures = [measure for measure in PAIR_TITLES if measure in pairs[encoders[0]]]
    fig = make_subplots(rows=len(encoders), cols=len(measures), horizontal_spacing=0.06, vertical_spacing=0.12,
                        subplot_titles=[PAIR_TITLES[m] for m in measures])
    for row, encoder in enumerate(encoders, start=1):
        for column, measure in enumerate(measures, start=1):
            split = pairs[encoder][measure]
            edges = np.histogram_bin_edges(np.concatenate([split["intra"], split["inter"]]), bins=bins)
            for relation, color in (("intra", EXTENDED[0]), ("inter", EXTENDED[1])):
                density, _ = (np.histogram(split[relation], bins=edges, density=True) if len(split[relation])
                              else (np.zeros(bins), edges))
                fig.add_trace(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=density, width=np.diff(edges),
                                     name=f"{relation}-class", legendgroup=relation, opacity=0.6, marker_color=color,
                                     showlegend=row == 1 and column == 1,
                                     hovertemplate=f"{relation}-class: %{{x:.3g}}, density %{{y:.3g}}<extra></extra>"),
                              row, column)
    for row, encoder in enumerate(encoders, start=1):  # the encoder names its row: titles stay short
        fig.update_yaxes(title=dict(text=encoder, font=dict(size=11)), row=row, col=1)
    fig.update_layout(barmode="overlay", bargap=0)
    return house_style(fig, title="Pairs of images: same class vs different class", height=300 * len(encoders) + 80)


def radii_figure(per_image: pd.DataFrame) -> go.Figure:
    """Radius per category (box per encoder) and the neighbour-count distribution (columns encoder, category, radius, neighbours)."""
    colors = encoder_colors(per_image["encoder"])
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Radius by category", "Neighbour count"),
                        horizontal_spacing=0.1)
    for encoder, part in per_image.groupby("encoder", sort=False):
        fig.add_trace(go.Box(x=part["category"], y=part["radius"], name=encoder, marker_color=colors[encoder],
                             legendgroup=encoder, boxpoints=False), 1, 1)
        fig.add_trace(go.Histogram(x=part["neighbours"], name=encoder, marker_color=colors[encoder], opacity=0.6,
                                   legendgroup=encoder, showlegend=False), 1, 2)
    fig.update_layout(boxmode="group", barmode="overlay")
    fig.update_yaxes(title="radius r_i", row=1, col=1)
    fig.update_xaxes(title="neighbours", row=1, col=2)
    fig.update_yaxes(title="images", row=1, col=2)
    return house_style(fig, title="Sub-manifold radii and neighbours", height=420)


def uniformity_figure(metrics: pd.DataFrame) -> go.Figure:
    """Bars per encoder (rows of `metrics`): uniformity, class-wise uniformity, view alignment (Wang & Isola)."""
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.08,
                        subplot_titles=("Uniformity (higher = more uniform)", "Class-wise uniformity",
                                        "Alignment (lower = views closer)"))
    colors = encoder_colors(metrics["encoder"])
    for column, measure in enumerate(("uniformity", "classwise_uniformity", "view_alignment"), start=1):
        fig.add_trace(go.Bar(x=metrics["encoder"], y=metrics[measure], marker_color=[colors[e] for e in metrics["encoder"]],
                             text=[f"{value:.3f}" for value in metrics[measure]], textposition="outside",
                             showlegend=False, hovertemplate="%{x}: %{y:.4f}<extra></extra>"), 1, column)
    fig.update_xaxes(showticklabels=False)
    return house_style(fig, title="Uniformity and alignment (Wang & Isola)", height=380)


def class_distance_figure(names: Sequence[str], distances: np.ndarray, encoder: str) -> go.Figure:
    """(C, C) E||f(x0) − f(x1)||² between classes; the diagonal is twice the intra-class variance."""
    fig = go.Figure(go.Heatmap(z=distances, x=list(names), y=list(names), colorscale="Viridis",
                               text=np.round(distances, 3), texttemplate="%{text}" if len(names) <= 12 else None,
                               hovertemplate="%{y} × %{x}: %{z:.4f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    return house_style(fig, title=f"Class feature distances · {encoder}", height=420)


def eigenspectrum_figure(spectra: pd.DataFrame, fits: pd.DataFrame) -> go.Figure:
    """Eigenvalue vs rank, log-log (columns encoder, rank, eigenvalue), with each fitted power law (encoder, alpha, intercept)."""
    colors = encoder_colors(spectra["encoder"])
    fig = go.Figure()
    for encoder, part in spectra.groupby("encoder", sort=False):
        fit = fits.set_index("encoder").loc[encoder]
        fig.add_trace(go.Scatter(x=part["rank"], y=part["eigenvalue"], mode="lines", line=dict(color=colors[encoder]),
                                 name=f"{encoder} (α = {fit['alpha']:.2f})", legendgroup=encoder))
        last = min(POWER_LAW_RANKS[1], len(part) - 2)
        ranks = np.arange(POWER_LAW_RANKS[0], max(last, POWER_LAW_RANKS[0]) + 1)
        fig.add_trace(go.Scatter(x=ranks, y=np.exp(fit["intercept"]) * ranks ** -fit["alpha"], mode="lines",
                                 line=dict(color=colors[encoder], dash="dash", width=3), legendgroup=encoder,
                                 showlegend=False, hoverinfo="skip"))
    fig.update_xaxes(type="log", title="rank n")
    fig.update_yaxes(type="log", title="eigenvalue λ_n", exponentformat="power")
    return house_style(fig, title="Eigenspectrum of the centroids (dashed: power-law fit)", height=420)
