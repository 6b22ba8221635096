"""Figures of the Layer probes page: score vs depth, one panel per probe, one line per encoder.

The figures draw `core.analyses.probes.layer_probe_curves` frames directly, so the CSV export of a
figure is the frame's rows for the probes it shows.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.figures.style import encoder_colors, house_style

PROBE_TITLES = {"valence": "Valence R²", "arousal": "Arousal R²", "category": "Category balanced accuracy"}
BANDS = {"fold_se": "±1 SE over folds", "fold_sd": "Fold spread (±1 SD)", "ci": "Bootstrap 95% CI",
         "none": "No band"}
AXES = {"depth": "normalised depth", "layer_index": "layer index"}
R2_FLOOR = -1.0  # R² below −1 only says "worse than the mean" and would flatten every other curve
AXIS_PAD = 0.04  # share of the x range left either side, so markers at the ends are not clipped


def probe_curves_figure(curves: pd.DataFrame, *, x: str = "depth", band: str = "fold_se",
                        category_chance: float | None = None) -> go.Figure:
    """Score vs `x` ("depth" or "layer_index") per probe panel; a line and a `band` per encoder.

    curves: columns encoder, layer, layer_index, depth, probe, score, ci_lo, ci_hi, fold_sd, n_folds.
    The band is score ± fold_sd/√n_folds ("fold_se"), score ± fold_sd ("fold_sd"), the bootstrap
    CI ("ci") or nothing ("none").
    """
    probes = [probe for probe in PROBE_TITLES if probe in set(curves["probe"])]
    colors = encoder_colors(curves["encoder"])
    fig = make_subplots(rows=1, cols=len(probes), subplot_titles=[PROBE_TITLES[p] for p in probes],
                        horizontal_spacing=0.07)
    for column, probe in enumerate(probes, start=1):
        for encoder, curve in curves[curves["probe"] == probe].groupby("encoder", sort=False):
            curve = curve.sort_values("layer_index")
            low, high = _band(curve, band)
            color = colors[encoder]
            if low is not None:
                fig.add_trace(go.Scatter(
                    x=np.concatenate([curve[x], curve[x][::-1]]), y=np.concatenate([high, low[::-1]]),
                    mode="lines", fill="toself", fillcolor=_transparent(color), line=dict(width=0), hoverinfo="skip",
                    legendgroup=encoder, showlegend=False), row=1, col=column)
            fig.add_trace(go.Scatter(
                x=curve[x], y=curve["score"], mode="lines+markers", name=encoder, legendgroup=encoder,
                showlegend=column == 1, line=dict(color=color, width=2), marker=dict(size=6),
                customdata=np.stack([curve["layer"], curve["depth"], curve["ci_lo"], curve["ci_hi"],
                                     curve["fold_sd"], curve["n_folds"]], axis=1),
                hovertemplate=f"<b>{encoder}</b><br>layer %{{customdata[0]}} (depth %{{customdata[1]:.2f}})<br>"
                              f"{PROBE_TITLES[probe]} %{{y:.3f}}<br>95% CI [%{{customdata[2]:.3f}}, "
                              "%{customdata[3]:.3f}]<br>fold SD %{customdata[4]:.3f} over %{customdata[5]} folds"
                              "<extra></extra>"),
                row=1, col=column)
        if probe == "category":
            if category_chance is not None:
                fig.add_hline(y=category_chance, line=dict(color="#888888", dash="dot"), row=1, col=column,
                              annotation_text="chance", annotation_position="bottom right")
        else:
            fig.add_hline(y=0.0, line=dict(color="#888888", dash="dot"), row=1, col=column)
            scores = curves.loc[curves["probe"] == probe, "score"]
            if np.nanmin(scores) < R2_FLOOR:
                fig.update_yaxes(range=[R2_FLOOR, max(np.nanmax(scores), 0.0) + 0.1], row=1, col=column)
        fig.update_xaxes(title=AXES[x], range=_x_range(curves, x), row=1, col=column)
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.22, x=0))
    return house_style(fig, height=440)


def _x_range(curves: pd.DataFrame, x: str) -> list[float]:
    """Fixed x range: depth always spans [0, 1] (plotly would centre a lone pixels point at 1 in [0, 2])."""
    high = 1.0 if x == "depth" else max(float(curves[x].max()), 1.0)
    return [-AXIS_PAD * high, high * (1 + AXIS_PAD)]


def _band(curve: pd.DataFrame, band: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    if band in ("fold_sd", "fold_se"):
        half_width = curve["fold_sd"] / (np.sqrt(curve["n_folds"]) if band == "fold_se" else 1.0)
        return (curve["score"] - half_width).to_numpy(), (curve["score"] + half_width).to_numpy()
    if band == "ci":
        return curve["ci_lo"].to_numpy(), curve["ci_hi"].to_numpy()
    return None, None


def _transparent(color: str, alpha: float = 0.18) -> str:
    red, green, blue = (int(color[index:index + 2], 16) for index in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"
