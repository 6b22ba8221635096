"""Scoreboard figures: a measure's grouped bars (models grouped by paradigm, CIs, chance), the models × measures
heatmap (z-scored per column, values in the cells), a scatter of two measures and the rank-stability plot."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.analyses.scoreboard import PARADIGM_ORDER, Scoreboard, ok_values
from core.figures.style import OKABE_ITO, house_style

PARADIGM_COLORS = dict(zip(PARADIGM_ORDER, OKABE_ITO))


def bars_table(board: Scoreboard, measure: str) -> pd.DataFrame:
    """model, paradigm, value, ci_low, ci_high of the ok cells of `measure`: paradigms in order, each group sorted
    best first."""
    cells = board.cells[(board.cells["measure"] == measure) & (board.cells["status"] == "ok")]
    order = {name: index for index, name in enumerate(PARADIGM_ORDER)}
    ascending = not board.measures[measure].higher_better
    cells = cells.assign(group=cells["paradigm"].map(order)).sort_values(["group", "value"],
                                                                          ascending=[True, ascending])
    return cells[["model", "paradigm", "value", "ci_low", "ci_high"]].reset_index(drop=True)


def grouped_bars_figure(board: Scoreboard, measure: str) -> go.Figure:
    """One bar per model with its 95% CI, coloured and grouped by paradigm, sorted within each group; the measure's
    chance level as a dashed line."""
    table, described = bars_table(board, measure), board.measures[measure]
    fig = go.Figure()
    for paradigm, rows in table.groupby("paradigm", sort=False):
        has_ci = rows["ci_low"].notna() & rows["ci_high"].notna()
        fig.add_bar(x=rows["model"], y=rows["value"], name=paradigm, marker_color=PARADIGM_COLORS[paradigm],
                    error_y=dict(type="data", symmetric=False, array=(rows["ci_high"] - rows["value"]).where(has_ci),
                                 arrayminus=(rows["value"] - rows["ci_low"]).where(has_ci), color="#444444"),
                    hovertemplate="%{x}<br>%{y:.3f}<extra>" + paradigm + "</extra>")
    if np.isfinite(described.chance):
        fig.add_hline(y=described.chance, line_dash="dash", line_color="#777777",
                      annotation_text=f"chance {described.chance:.3g}", annotation_position="top right")
    fig.update_layout(bargap=0.25, legend_title_text="paradigm")
    fig.update_yaxes(title_text=f"{described.label}" + (f" ({described.unit})" if described.unit else "")
                     + (" ↑" if described.higher_better else " ↓"))
    return house_style(fig, title=described.label, height=440)


def heatmap_table(board: Scoreboard) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(values, z) models × measures: the ok values and their z-scores per column (oriented so that + is better;
    a column with one value or no spread is 0)."""
    values = ok_values(board)
    signs = np.array([1.0 if board.measures[name].higher_better else -1.0 for name in values.columns])
    spread = values.std(axis=0, ddof=0).replace(0, np.nan)
    z = ((values - values.mean(axis=0)) / spread * signs).where(values.notna())
    return values, z.where(spread.notna() | values.isna(), 0.0)


def heatmap_figure(board: Scoreboard) -> go.Figure:
    """Models × measures coloured by z-score per column (+ = better than the models' mean), each cell's value
    written in it; blank where the cell is not ok."""
    values, z = heatmap_table(board)
    labels = [board.measures[name].label for name in values.columns]
    text = values.map(lambda value: "" if pd.isna(value) else f"{value:.3g}")
    fig = go.Figure(go.Heatmap(z=z.to_numpy(), x=labels, y=list(values.index), text=text.to_numpy(),
                               texttemplate="%{text}", colorscale="RdBu", zmid=0,
                               colorbar=dict(title="z (better →)"), hoverongaps=False,
                               hovertemplate="%{y}<br>%{x}: %{text} (z %{z:.2f})<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickangle=-35)
    return house_style(fig, title="Every model on every measure (z-scored per column)",
                       height=max(320, 60 + 34 * len(values.index)))


def scatter_figure(board: Scoreboard, x: str, y: str) -> go.Figure:
    """Each model with both measures ok as a point (coloured by paradigm, 95% CIs as error bars where stored)."""
    cells = board.cells[board.cells["status"] == "ok"].set_index(["model", "measure"])
    fig = go.Figure()
    models = [model for model in board.models if (model, x) in cells.index and (model, y) in cells.index]
    for paradigm in PARADIGM_ORDER:
        shown = [model for model in models if cells.loc[(model, x), "paradigm"] == paradigm]
        if not shown:
            continue
        first, second = cells.loc[[(model, x) for model in shown]], cells.loc[[(model, y) for model in shown]]
        fig.add_scatter(x=first["value"], y=second["value"], mode="markers+text", text=shown, name=paradigm,
                        textposition="top center", marker=dict(size=11, color=PARADIGM_COLORS[paradigm]),
                        error_x=dict(type="data", symmetric=False, array=first["ci_high"] - first["value"],
                                     arrayminus=first["value"] - first["ci_low"]),
                        error_y=dict(type="data", symmetric=False, array=second["ci_high"] - second["value"],
                                     arrayminus=second["value"] - second["ci_low"]))
    fig.update_xaxes(title_text=board.measures[x].label)
    fig.update_yaxes(title_text=board.measures[y].label)
    return house_style(fig, title=f"{board.measures[y].label} against {board.measures[x].label}")


def rank_figure(ranks: pd.DataFrame, label: str) -> go.Figure:
    """Each model's median rank with its 95% rank interval over the bootstrap, and how often it is 1st (hover and
    label); `ranks` is RankStability.table()."""
    ranks = ranks.sort_values("median_rank")
    fig = go.Figure(go.Scatter(
        x=ranks["median_rank"], y=list(ranks.index), mode="markers+text", marker=dict(size=12, color=OKABE_ITO[0]),
        text=[f"1st in {share:.0%}" for share in ranks["share_first"]], textposition="middle right",
        error_x=dict(type="data", symmetric=False, array=ranks["rank_high"] - ranks["median_rank"],
                     arrayminus=ranks["median_rank"] - ranks["rank_low"]),
        customdata=np.column_stack([ranks["share_first"], ranks["share_top3"]]),
        hovertemplate="%{y}: median rank %{x}<br>1st in %{customdata[0]:.0%}, top 3 in %{customdata[1]:.0%}"
                      "<extra></extra>"))
    fig.update_xaxes(title_text="rank (1 = best) with its 95% interval", dtick=1, range=[0.5, len(ranks) + 1.5])
    fig.update_yaxes(autorange="reversed")
    return house_style(fig, title=f"Rank stability on {label}", height=max(280, 60 + 40 * len(ranks)))
