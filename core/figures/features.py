"""Features page figures: category counts, group sizes, rating histograms (each with its `*_table`)."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.figures.style import category_colors, house_style


def category_counts_table(metadata: pd.DataFrame) -> pd.DataFrame:
    """Columns category, images; sorted by category."""
    counts = metadata["category"].value_counts().sort_index()
    return pd.DataFrame({"category": counts.index.astype(str), "images": counts.to_numpy()})


def category_counts_figure(metadata: pd.DataFrame) -> go.Figure:
    """Bar chart of images per category."""
    table = category_counts_table(metadata)
    colors = category_colors(table["category"])
    fig = go.Figure(go.Bar(x=table["category"], y=table["images"], marker_color=[colors[c] for c in table["category"]],
                           text=table["images"], textposition="outside",
                           hovertemplate="%{x}: %{y} images<extra></extra>"))
    fig.update_yaxes(title="images")
    return house_style(fig, title="Images per category")


def group_sizes_table(metadata: pd.DataFrame) -> pd.DataFrame:
    """Columns group, category, images: one row per theme group."""
    sizes = metadata.groupby("group", sort=True).agg(category=("category", "first"), images=("image_id", "size"))
    return sizes.reset_index()


def group_sizes_figure(metadata: pd.DataFrame) -> go.Figure:
    """Histogram of theme-group sizes (images per group), stacked by category."""
    table = group_sizes_table(metadata)
    colors = category_colors(table["category"])
    fig = go.Figure()
    for category, part in table.groupby("category", sort=True):
        sizes = part["images"].value_counts().sort_index()
        fig.add_trace(go.Bar(x=sizes.index, y=sizes.to_numpy(), name=category, marker_color=colors[category],
                             hovertemplate="%{y} groups of %{x} images<extra>" + category + "</extra>"))
    fig.update_layout(barmode="stack", bargap=0.15)
    fig.update_xaxes(title="images per theme group", dtick=1 if table["images"].max() <= 40 else None)
    fig.update_yaxes(title="theme groups")
    return house_style(fig, title=f"{len(table)} theme groups")


def target_histograms_table(metadata: pd.DataFrame) -> pd.DataFrame:
    """Columns image_id, category, valence, arousal."""
    missing = [column for column in ("valence", "arousal") if column not in metadata.columns]
    if missing:
        raise ValueError(f"No {' or '.join(missing)} column: this dataset has no affect ratings.")
    return metadata[["image_id", "category", "valence", "arousal"]].reset_index(drop=True)


def target_histograms_figure(metadata: pd.DataFrame) -> go.Figure:
    """Valence and arousal histograms stacked by category, and the V-A scatter."""
    table = target_histograms_table(metadata)
    colors = category_colors(table["category"])
    fig = make_subplots(rows=1, cols=3, subplot_titles=("Valence", "Arousal", "Valence × arousal"),
                        horizontal_spacing=0.07)
    for category, part in table.groupby("category", sort=True):
        color = colors[category]
        for column, target in ((1, "valence"), (2, "arousal")):
            fig.add_trace(go.Histogram(x=part[target], name=category, legendgroup=category, marker_color=color,
                                       xbins=dict(start=1, end=7, size=0.25), showlegend=column == 1), 1, column)
        fig.add_trace(go.Scatter(x=part["valence"], y=part["arousal"], mode="markers", name=category,
                                 legendgroup=category, showlegend=False, text=part["image_id"],
                                 marker=dict(color=color, size=5, opacity=0.7),
                                 hovertemplate="%{text}<br>valence %{x:.2f}<br>arousal %{y:.2f}<extra></extra>"),
                      1, 3)
    fig.update_layout(barmode="stack")
    for column in (1, 2):
        fig.update_xaxes(title="rating (1–7)", range=[1, 7], row=1, col=column)
        fig.update_yaxes(title="images", row=1, col=column)
    fig.update_xaxes(title="valence", range=[1, 7], row=1, col=3)
    fig.update_yaxes(title="arousal", range=[1, 7], row=1, col=3)
    return house_style(fig, title="Ratings", height=400)
