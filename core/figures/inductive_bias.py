"""Figures of the Inductive bias page: a corruption gallery, and measures vs corruption level per family.

The measure figures take the stacked `corruption_metrics` tables (column `model` = "encoder · layer").
The clean row is every family's level 1 (glo_1 = loc_1 = gamma_1 = clean), so each panel's curve
starts from the clean value; x is logarithmic (N = 1, 2, 4, 8; g = 0.2 … 2.5 around 1).
`corruption_curves_table` is the figure's twin: exactly the points (and bars, floors) it draws.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.data.corruptions import FAMILIES, FAMILY_LABELS
from core.figures.style import encoder_colors, house_style

MEASURE_LABELS = {
    "knn_accuracy": "k-NN accuracy", "linear_balanced_accuracy": "Linear balanced accuracy",
    "knn_drop": "k-NN relative drop", "linear_drop": "Linear relative drop", "uniformity": "Uniformity",
    "clean_similarity": "Cosine to clean features",
}
# Bars as (low, high) columns: bootstrap 95% CI, and the 5-95% quantiles over images (a cosine band
# that, unlike ± SD, cannot leave [-1, 1]).
ERRORS = {"linear_balanced_accuracy": ("linear_ci_lo", "linear_ci_hi"),
          "clean_similarity": ("clean_similarity_lo", "clean_similarity_hi")}
POINT_COLUMNS = ["model", "family", "corruption", "level"]


def gallery_figure(images: Sequence[tuple[str, np.ndarray]], image_id: str, columns: int = 6) -> go.Figure:
    """One (H, W, 3) uint8 image per corruption, labelled by corruption name, in rows of `columns`."""
    rows = -(-len(images) // columns)
    fig = make_subplots(rows=rows, cols=min(columns, len(images)), subplot_titles=[name for name, _ in images],
                        horizontal_spacing=0.01, vertical_spacing=0.08 / rows)
    for index, (name, pixels) in enumerate(images):
        fig.add_trace(go.Image(z=pixels, name=name, hovertemplate=f"{name}<extra></extra>"),
                      row=index // columns + 1, col=index % columns + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return house_style(fig, title=f"{image_id} under every selected corruption", height=60 + 230 * rows)


def by_family(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """{family: its rows plus each model's clean row as level 1}, in the order glo, loc, gamma."""
    clean = table[table["family"] == "clean"]
    return {family: pd.concat([clean.assign(family=family), table[table["family"] == family]])
            .sort_values(["model", "level"]) for family in FAMILIES if (table["family"] == family).any()}


def corruption_curves_table(table: pd.DataFrame, measures: Sequence[str], floor: str | None = None) -> pd.DataFrame:
    """The points of `corruption_curves_figure`: a row per model, family and level (clean = level 1 of each
    family), columns model, family, corruption, level, then each measure with its bar columns, then `floor`."""
    columns = [*POINT_COLUMNS]
    for measure in measures:
        columns += [measure, *ERRORS.get(measure, ())]
    columns += [floor] if floor is not None else []
    return pd.concat(list(by_family(table).values()), ignore_index=True)[columns]


def corruption_curves_figure(table: pd.DataFrame, measures: Sequence[str], *, title: str,
                             chance: dict[str, float] | None = None, floor: str | None = None) -> go.Figure:
    """Rows = measures, columns = corruption families; a line per model over the corruption level.

    Error bars: bootstrap 95% CI for the linear probe, 5-95% quantiles over images for clean
    similarity. `chance` draws a dotted line per measure; `floor` names a per-model column drawn
    dashed (the unrelated-image similarity).
    """
    points = corruption_curves_table(table, measures, floor)
    families = {family: part for family, part in points.groupby("family", sort=False)}
    colors = encoder_colors(points["model"])
    fig = make_subplots(rows=len(measures), cols=len(families), shared_yaxes="rows", horizontal_spacing=0.04,
                        vertical_spacing=0.1 if len(measures) > 1 else 0.0,
                        subplot_titles=[FAMILY_LABELS[family] for family in families] + [""] * (
                            len(families) * (len(measures) - 1)))
    for row, measure in enumerate(measures, start=1):
        for column, (family, part) in enumerate(families.items(), start=1):
            for model, rows in part.groupby("model", sort=False):
                fig.add_trace(go.Scatter(
                    x=rows["level"], y=rows[measure], mode="lines+markers", name=model, legendgroup=model,
                    showlegend=row == 1 and column == 1, line=dict(color=colors[model]),
                    error_y=_error_bars(rows, measure), customdata=rows[["corruption"]].to_numpy(),
                    hovertemplate=f"%{{customdata[0]}}<br>{MEASURE_LABELS[measure]} %{{y:.3f}}<extra>{model}</extra>"),
                    row=row, col=column)
                if floor is not None:
                    fig.add_hline(y=float(rows[floor].iloc[0]), line=dict(color=colors[model], dash="dash", width=1),
                                  row=row, col=column)
            if chance and measure in chance:
                label = dict(annotation_text="chance", annotation_position="bottom left") if column == 1 else {}
                fig.add_hline(y=chance[measure], line=dict(color="#888888", dash="dot"), row=row, col=column, **label)
            fig.update_xaxes(type="log", tickvals=sorted(part["level"].unique()), row=row, col=column,
                             title=("N (grid)" if family != "gamma" else "g (gamma)") if row == len(measures) else None)
        fig.update_yaxes(title=MEASURE_LABELS[measure], row=row, col=1)
    return house_style(fig, title=title, height=120 + 300 * len(measures))


def _error_bars(rows: pd.DataFrame, measure: str) -> dict | None:
    if measure not in ERRORS:
        return None
    lo, hi = ERRORS[measure]
    # A mean can fall outside its quantile band on a skewed sample; the bar then has one side.
    return dict(type="data", symmetric=False, array=np.maximum(rows[hi] - rows[measure], 0),
                arrayminus=np.maximum(rows[measure] - rows[lo], 0), thickness=1, width=3)
