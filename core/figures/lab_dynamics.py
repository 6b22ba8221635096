"""Figures of the Objective lab's learning dynamics: each measure over epochs (one line per run, coloured by its
objective), the class-distance matrix at one epoch, and the probe set's sub-manifold centroids over epochs (a 2-D
map with plotly frames, an epoch slider and a play button)."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from sklearn.decomposition import PCA

from core.analyses.manifolds import map_radius_scale
from core.figures.lab import objective_color, objective_of
from core.figures.manifolds import class_distance_figure
from core.figures.style import category_colors, house_style
from core.lab.dynamics import EpochGeometry

COLUMNS = ["run", "objective", "space", "epoch", "measure", "class", "value"]
CIRCLE_POINTS = 24  # vertices of each radius circle (drawn as a polygon: circles in data units animate with frames)


def dynamics_table(runs: Mapping[str, Sequence[EpochGeometry]]) -> pd.DataFrame:
    """Columns run, objective, space, epoch, measure, class, value: every scalar measure of every epoch of every run
    (`class` "" for measures over the whole probe set), and each class's uniformity as measure "uniformity"."""
    rows = []
    for run, geometries in runs.items():
        for geometry in geometries:
            base = (run, objective_of(run), geometry.space, geometry.epoch)
            rows += [(*base, measure, "", float(value)) for measure, value in geometry.measures.items()]
            rows += [(*base, "uniformity", str(name), float(value))
                     for name, value in geometry.uniformity_by_class.items()]
    return pd.DataFrame(rows, columns=COLUMNS)


def measure_figure(table: pd.DataFrame, measure: str, label: str) -> go.Figure:
    """`measure` (rows of `dynamics_table`, one space) against epoch, one line per run in its objective's colour;
    class-wise values (uniformity) as thin lines of the same colour under the run's overall line."""
    rows = table[table["measure"] == measure]
    fig = go.Figure()
    for run, part in rows.groupby("run", sort=False):
        color = objective_color(objective_of(run))
        for name, line in part[part["class"] != ""].groupby("class", sort=True):
            fig.add_trace(go.Scatter(x=line["epoch"], y=line["value"], mode="lines", legendgroup=run,
                                     showlegend=False, line=dict(color=color, width=0.8), opacity=0.45,
                                     hovertemplate=f"epoch %{{x}}<br>{name}: %{{y:.4f}}<extra>{run}</extra>"))
        overall = part[part["class"] == ""].sort_values("epoch")
        fig.add_trace(go.Scatter(x=overall["epoch"], y=overall["value"], mode="lines+markers", name=run,
                                 legendgroup=run, line=dict(color=color, width=2.5), marker=dict(size=5),
                                 hovertemplate=f"epoch %{{x}}<br>{label}: %{{y:.4f}}<extra>{run}</extra>"))
    fig.update_xaxes(title="epoch (0 = before training)", dtick=1 if rows["epoch"].nunique() <= 12 else None)
    fig.update_yaxes(title=label.split(" (")[0])  # the title says the rest: a long axis title is cut off
    return house_style(fig, title=label + (" (thin: each class)" if (rows["class"] != "").any() else ""), height=340)


def class_distances_figure(geometry: EpochGeometry, run: str) -> go.Figure:
    """The (C, C) class-distance matrix of one epoch of one run (the Manifolds page's heatmap)."""
    return class_distance_figure(geometry.classes, np.asarray(geometry.class_distance),
                                 f"{run} · {geometry.space} · epoch {geometry.epoch}")


def centroid_map(geometries: Sequence[EpochGeometry]) -> tuple[pd.DataFrame, float]:
    """Columns epoch, item, class, x, y, radius of every probe image at every epoch, and the circles' scale s.

    The 2-D map is a PCA fitted on the last epoch's (P, D) centroids and applied to every epoch, so every epoch is
    drawn in the same axes (a collapsed start shows as a cluster). Circles have radius r·s, s = the Manifolds page's
    `map_radius_scale` of the last epoch (median 2-D / feature distance to each centroid's map neighbour)."""
    ordered = sorted(geometries, key=lambda geometry: geometry.epoch)
    last = np.asarray(ordered[-1].centroids, dtype=np.float64)
    pca = PCA(n_components=min(2, *last.shape), random_state=0).fit(last)
    frames = []
    for geometry in ordered:
        xy = pca.transform(np.asarray(geometry.centroids, dtype=np.float64))
        xy = np.column_stack([xy, np.zeros((len(xy), 2 - xy.shape[1]))])
        frames.append(pd.DataFrame({"epoch": geometry.epoch, "item": np.arange(len(xy)),
                                    "class": np.asarray(geometry.item_classes).astype(str), "x": xy[:, 0],
                                    "y": xy[:, 1], "radius": np.asarray(geometry.radii, dtype=np.float64)}))
    points = pd.concat(frames, ignore_index=True)
    final = points[points["epoch"] == ordered[-1].epoch]
    return points, map_radius_scale(final[["x", "y"]].to_numpy(), last) if len(last) > 1 else 1.0


def centroid_map_figure(points: pd.DataFrame, scale: float, run: str, space: str) -> go.Figure:
    """The map of `centroid_map` with one frame per epoch, an epoch slider and a play button; shows the last
    epoch first."""
    epochs = sorted(points["epoch"].unique())
    classes = sorted(points["class"].unique())
    colors = category_colors(classes)

    def traces(epoch: int) -> list[go.Scatter]:
        drawn = []
        for name in classes:
            part = points[(points["epoch"] == epoch) & (points["class"] == name)]
            drawn.append(go.Scatter(x=part["x"], y=part["y"], mode="markers", name=name, legendgroup=name,
                                    marker=dict(color=colors[name], size=6), customdata=part[["item", "radius"]],
                                    hovertemplate="probe image %{customdata[0]}<br>radius %{customdata[1]:.3f}"
                                                  f"<extra>{name}</extra>"))
            x, y = _circles(part["x"].to_numpy(), part["y"].to_numpy(), part["radius"].to_numpy() * scale)
            drawn.append(go.Scatter(x=x, y=y, mode="lines", legendgroup=name, showlegend=False, hoverinfo="skip",
                                    line=dict(color=colors[name], width=1), opacity=0.5))
        return drawn

    fig = go.Figure(data=traces(epochs[-1]),
                    frames=[go.Frame(data=traces(epoch), name=str(epoch)) for epoch in epochs])
    reach = (points["radius"] * scale).max()
    pad = 0.05 * max(np.ptp(points["x"]), np.ptp(points["y"]), 1e-9) + reach
    fig.update_xaxes(title="PC 1 (of the last epoch's centroids)", showticklabels=False,
                     range=[points["x"].min() - pad, points["x"].max() + pad])
    fig.update_yaxes(title="PC 2", showticklabels=False, scaleanchor="x",
                     range=[points["y"].min() - pad, points["y"].max() + pad])
    animate = dict(mode="immediate", frame=dict(duration=500, redraw=True), transition=dict(duration=0))
    fig.update_layout(
        updatemenus=[dict(type="buttons", direction="left", showactive=False, x=0, y=-0.1, xanchor="left",
                          yanchor="top", pad=dict(t=30),
                          buttons=[dict(label="▶ Play", method="animate",
                                        args=[None, {**animate, "fromcurrent": False}]),
                                   dict(label="❚❚ Pause", method="animate",
                                        args=[[None], dict(mode="immediate", frame=dict(duration=0, redraw=False))])])],
        sliders=[dict(active=len(epochs) - 1, x=0.25, len=0.75, y=-0.1, currentvalue=dict(prefix="epoch "),
                      steps=[dict(label=str(epoch), method="animate", args=[[str(epoch)], animate])
                             for epoch in epochs])])
    house_style(fig, title=f"Probe-set sub-manifolds over training · {run} · {space}; circles: radius × {scale:.3g}",
                height=640)
    return fig.update_layout(margin=dict(b=150))  # room for the play buttons and the epoch slider


def _circles(x: np.ndarray, y: np.ndarray, radii: np.ndarray) -> tuple[list, list]:
    """One polyline of circles (CIRCLE_POINTS vertices each, None between circles) around (x, y) with `radii`."""
    angles = np.linspace(0, 2 * np.pi, CIRCLE_POINTS + 1)
    xs, ys = [], []
    for cx, cy, r in zip(x, y, radii):
        xs += [*(cx + r * np.cos(angles)), None]
        ys += [*(cy + r * np.sin(angles)), None]
    return xs, ys
