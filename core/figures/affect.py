"""Figures of the Affect page: R² summary, error vector fields, occupancy heatmaps, error roses.

Each figure has a `*_table` twin with exactly the numbers it draws (for CSV export).
Angles follow docs/science.md §3: theta = atan2(e_arousal, e_valence), so 0° points to higher
valence and 90° to higher arousal.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.analyses.affect_report import ErrorPanel
from core.analyses.cv import SCHEMES
from core.analyses.error_geometry import Occupancy
from core.figures.style import OKABE_ITO, category_colors, house_style

SCHEME_COLORS = {"loto": OKABE_ITO[0], "loco": OKABE_ITO[5], "kfold": OKABE_ITO[2], "gkfold": OKABE_ITO[3]}
ROSE_BINS = 24
CEILING_DASH_PX = 34  # wide enough to span a group of two or three bars at the page's default width
CEILING_COLOR = "#222222"


def r2_summary_figure(metrics: pd.DataFrame) -> go.Figure:
    """Grouped bars of R² per model (x) and scheme (colour) with bootstrap 95% CIs, one panel per target.

    metrics: columns model, scheme, target, r, r2, r2_lo, r2_hi, optionally ceiling, ceiling_lo,
    ceiling_hi (core.analyses.affect.with_ceiling): a dark dash over each model's bars marks the target's
    reliability ceiling where it is not NaN. Where a model has both LOTO and LOCO, Δ = R²(LOTO) −
    R²(LOCO) is written above its bars. The axis stops at −1: a worse R² says "no better than
    nothing" and would otherwise flatten every other bar.
    """
    targets = list(dict.fromkeys(metrics["target"]))
    fig = make_subplots(rows=1, cols=len(targets), subplot_titles=[t.capitalize() for t in targets],
                        shared_yaxes=True, horizontal_spacing=0.05)
    ceiling_drawn = False
    for column, target in enumerate(targets, start=1):
        part = metrics[metrics["target"] == target]
        for scheme, rows in part.groupby("scheme", sort=False):
            name = SCHEMES[scheme].label if scheme in SCHEMES else scheme
            fig.add_trace(go.Bar(
                x=rows["model"], y=rows["r2"], name=name, legendgroup=scheme,
                showlegend=column == 1, marker_color=SCHEME_COLORS.get(scheme, OKABE_ITO[3]),
                error_y=dict(type="data", symmetric=False, array=rows["r2_hi"] - rows["r2"],
                             arrayminus=rows["r2"] - rows["r2_lo"]),
                customdata=np.stack([rows["r"], rows["r2_lo"], rows["r2_hi"]], axis=1),
                hovertemplate="%{x}<br>R² %{y:.3f} [%{customdata[1]:.3f}, %{customdata[2]:.3f}]"
                              "<br>r %{customdata[0]:.3f}<extra>" + name + "</extra>"),
                row=1, col=column)
        ceiling = part.drop_duplicates("model").dropna(subset=["ceiling"]) if "ceiling" in part else part.iloc[:0]
        if len(ceiling):
            fig.add_trace(go.Scatter(
                x=ceiling["model"], y=ceiling["ceiling"], mode="markers", name="reliability ceiling",
                legendgroup="ceiling", showlegend=not ceiling_drawn,
                marker=dict(symbol="line-ew", size=CEILING_DASH_PX, line=dict(width=3, color=CEILING_COLOR)),
                customdata=ceiling[["ceiling_lo", "ceiling_hi"]].to_numpy(),
                hovertemplate="reliability ceiling %{y:.3f} [%{customdata[0]:.3f}, %{customdata[1]:.3f}]"
                              "<extra>" + target + "</extra>"), row=1, col=column)
            ceiling_drawn = True
        wide = part.pivot_table(index="model", columns="scheme", values="r2", sort=False)
        if {"loto", "loco"} <= set(wide.columns):
            top = part.groupby("model", sort=False)["r2_hi"].max()
            for model, row in wide.iterrows():
                fig.add_annotation(x=model, y=top[model], yshift=14, showarrow=False, row=1, col=column,
                                   text=f"Δ {row['loto'] - row['loco']:+.2f}",
                                   font=dict(size=11, color="#555555"))
    fig.update_layout(barmode="group")
    ceilings = metrics["ceiling"].dropna().to_numpy(float) if "ceiling" in metrics else np.empty(0)
    fig.update_yaxes(range=[max(-1.0, min(float(metrics["r2_lo"].min()), ceilings.min(initial=np.inf)) - 0.05),
                            min(1.05, max(float(metrics["r2_hi"].max()) + 0.15, ceilings.max(initial=-np.inf) + 0.05))])
    fig.update_yaxes(title="R² (out of fold)", row=1, col=1)
    fig.add_hline(y=0, line_color="#888888", line_width=1)
    return house_style(fig, title="Generalisation: R² per encoder, target and cross-validation scheme", height=440)


def error_field_table(panels: Sequence[ErrorPanel]) -> pd.DataFrame:
    """Per-image true and predicted ratings of every panel."""
    return pd.concat([pd.DataFrame({
        "model": panel.label, "image_id": panel.image_ids, "category": panel.categories,
        "valence_true": panel.y_true[:, 0], "arousal_true": panel.y_true[:, 1],
        "valence_pred": panel.y_pred[:, 0], "arousal_pred": panel.y_pred[:, 1],
        "error_valence": panel.errors[:, 0], "error_arousal": panel.errors[:, 1],
    }) for panel in panels], ignore_index=True)


def error_field_figure(panels: Sequence[ErrorPanel], *, color_by_category: bool = True,
                       extent: tuple[float, float] = (1.0, 7.0)) -> go.Figure:
    """Per-image arrows true -> predicted (thin, by category) and the grid-averaged error field (black).

    The prediction dots carry the item's row (its position in the panel, the dataset's order) as customdata[0],
    so a click leads to the item (views.ui.items.selected_rows)."""
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[panel.label for panel in panels],
                        shared_xaxes=True, shared_yaxes=True, horizontal_spacing=0.04)
    categories = sorted({str(c) for panel in panels for c in panel.categories})
    colors = category_colors(categories) if color_by_category else {c: "#7F7F7F" for c in categories}
    arrows = []
    for column, panel in enumerate(panels, start=1):
        for category in categories:
            rows = panel.categories == category
            if not rows.any():
                continue
            fig.add_trace(go.Scatter(x=_segments(panel.y_true[rows, 0], panel.y_pred[rows, 0]),
                                     y=_segments(panel.y_true[rows, 1], panel.y_pred[rows, 1]),
                                     mode="lines", line=dict(width=0.8, color=colors[category]), opacity=0.45,
                                     name=category, legendgroup=category, showlegend=column == 1 and color_by_category,
                                     hoverinfo="skip"), row=1, col=column)
            fig.add_trace(go.Scatter(x=panel.y_pred[rows, 0], y=panel.y_pred[rows, 1], mode="markers",
                                     marker=dict(size=3, color=colors[category]), legendgroup=category,
                                     showlegend=False, text=panel.image_ids[rows],
                                     # a list, not an array: see core.figures.alignment's plan points
                                     customdata=np.flatnonzero(rows)[:, None].tolist(),
                                     hovertemplate="%{text}<br>predicted V %{x:.2f}, A %{y:.2f}<extra></extra>"),
                          row=1, col=column)
        axis = "" if column == 1 else str(column)
        arrows += [dict(x=x + u, y=y + v, ax=x, ay=y, xref=f"x{axis}", yref=f"y{axis}", axref=f"x{axis}",
                        ayref=f"y{axis}", showarrow=True, arrowhead=2, arrowsize=1.2, arrowwidth=2,
                        arrowcolor="#111111", text="")
                   for x, y, u, v in zip(panel.field.x, panel.field.y, panel.field.u, panel.field.v)]
    # All arrows at once: add_annotation copies every earlier annotation, quadratic in their number.
    fig.update_layout(annotations=[*fig.layout.annotations, *arrows])
    fig.update_xaxes(range=list(extent), title="valence", constrain="domain")
    fig.update_yaxes(range=list(extent), scaleratio=1, constrain="domain")
    for column in range(1, len(panels) + 1):
        fig.update_yaxes(scaleanchor="x" if column == 1 else f"x{column}", row=1, col=column)
    fig.update_yaxes(title="arousal", row=1, col=1)
    return house_style(fig, title="Prediction errors in the valence-arousal plane (thin: images, black: grid mean)",
                       height=460)


def occupancy_table(occupancies: dict[str, tuple[Occupancy, Occupancy]]) -> pd.DataFrame:
    """Long table: model, kind (trajectory/endpoint), valence and arousal bin centres, probability."""
    frames = []
    for label, pair in occupancies.items():
        for kind, occupancy in zip(("trajectory", "endpoint"), pair):
            centres = _bin_centres(occupancy)
            arousal, valence = np.meshgrid(centres, centres, indexing="ij")
            frames.append(pd.DataFrame({"model": label, "kind": kind, "valence": valence.ravel(),
                                        "arousal": arousal.ravel(),
                                        "probability": (occupancy.counts / occupancy.counts.sum()).ravel()}))
    return pd.concat(frames, ignore_index=True)


def occupancy_figure(occupancies: dict[str, tuple[Occupancy, Occupancy]]) -> go.Figure:
    """Heatmaps of trajectory and endpoint occupancy (probability per cell), one row per model."""
    labels = list(occupancies)
    titles = [f"{label}<br>{kind}: H = {occupancy.normalized_entropy:.3f}"
              for label in labels for kind, occupancy in zip(("trajectory", "endpoint"), occupancies[label])]
    fig = make_subplots(rows=len(labels), cols=2, subplot_titles=titles,
                        vertical_spacing=min(0.3, 0.45 / len(labels)), horizontal_spacing=0.1)
    for row, label in enumerate(labels, start=1):
        for column, occupancy in enumerate(occupancies[label], start=1):
            centres = _bin_centres(occupancy)
            fig.add_trace(go.Heatmap(z=occupancy.counts / occupancy.counts.sum(), x=centres, y=centres,
                                     colorscale="Viridis", showscale=row == 1 and column == 2,
                                     colorbar=dict(title="p"),
                                     hovertemplate="V %{x:.2f}, A %{y:.2f}<br>p = %{z:.4f}<extra></extra>"),
                          row=row, col=column)
    fig.update_xaxes(title="valence")
    fig.update_yaxes(title="arousal")
    fig.update_annotations(font_size=12)
    return house_style(fig, title="Occupancy (H = normalised entropy: 1 spread evenly, 0 one cell)",
                       height=380 * len(labels) + 80).update_layout(margin=dict(t=100))


def error_rose_table(panels: Sequence[ErrorPanel]) -> pd.DataFrame:
    """Magnitude-weighted histogram of error angles: model, bin_start_deg, bin_end_deg, weight."""
    edges = np.linspace(-180, 180, ROSE_BINS + 1)
    frames = []
    for panel in panels:
        angles = np.degrees(np.arctan2(panel.errors[:, 1], panel.errors[:, 0]))
        weights, _ = np.histogram(angles, bins=edges, weights=np.linalg.norm(panel.errors, axis=1))
        frames.append(pd.DataFrame({"model": panel.label, "bin_start_deg": edges[:-1], "bin_end_deg": edges[1:],
                                    "weight": weights}))
    return pd.concat(frames, ignore_index=True)


def error_rose_figure(panels: Sequence[ErrorPanel]) -> go.Figure:
    """Polar histograms of error direction weighted by error magnitude, PLV in each title."""
    table = error_rose_table(panels)
    fig = make_subplots(rows=1, cols=len(panels), specs=[[{"type": "polar"}] * len(panels)],
                        subplot_titles=[f"{panel.label}<br>PLV = {panel.plv:.3f}" for panel in panels],
                        horizontal_spacing=0.12)
    for column, panel in enumerate(panels, start=1):
        rows = table[table["model"] == panel.label]
        fig.add_trace(go.Barpolar(theta=(rows["bin_start_deg"] + rows["bin_end_deg"]) / 2, r=rows["weight"],
                                  width=360 / ROSE_BINS, marker_color=OKABE_ITO[column % len(OKABE_ITO)],
                                  name=panel.label, hovertemplate="%{theta:.0f}°: %{r:.2f}<extra></extra>"),
                      row=1, col=column)
    fig.update_polars(angularaxis=dict(rotation=0, direction="counterclockwise", tickvals=[0, 90, 180, 270],
                                       ticktext=["+V", "+A", "−V", "−A"]),
                      radialaxis=dict(showticklabels=False))
    fig.update_annotations(font_size=12, yshift=12)
    return house_style(fig, title="Direction of errors (weighted by magnitude; V = valence, A = arousal)",
                       height=440).update_layout(showlegend=False, margin=dict(t=100))


def _segments(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """x0, x1, None, x0, x1, None ... so one trace draws many separate segments."""
    points = np.full((len(starts), 3), np.nan)
    points[:, 0], points[:, 1] = starts, ends
    return points.ravel()


def _bin_centres(occupancy: Occupancy) -> np.ndarray:
    low, high = occupancy.extent
    edges = np.linspace(low, high, occupancy.bins + 1)
    return (edges[:-1] + edges[1:]) / 2
