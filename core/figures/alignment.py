"""Figures of the Alignment page: RDMs and the transport plan ordered by category, the epsilon
search, and matching rates against chance.

Matrices larger than `MAX_PIXELS` per side are block-averaged for display only (a browser
cannot draw 3.4 million heatmap cells of a 1854-item plan); the downloads hold the full arrays.
Every category gets a colour strip along the matrix's rows and columns, naming it on hover, and an entry in the
RDM pair's legend; only the categories whose names fit (`labelled_blocks`) are named on the axes, so THINGS' 28
never overlap.
"""
from __future__ import annotations

from bisect import bisect_right
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.figures.style import EXTENDED, category_colors, house_style

MAX_PIXELS = 600
LOG_FLOOR = 1e-4  # log colour scale of N·T starts here: 1/100 of a uniform row's mass
# Axis names sit at least LABEL_GAP_PX apart on an axis assumed AXIS_PX long (the plan in its 3/5 column of a
# 1280 px window: 264 px in Chromium; the RDM panels are longer): 23 px apart, labels rotated by 45° are 16 px
# apart across, more than the 15 px box of a line of 13 px text.
LABEL_GAP_PX, AXIS_PX = 23, 260
STRIP = 0.03  # the category strips' width, as a share of the axis
LEGEND_ROW_PX = 19  # a row of the category legend at font size 11; its title and padding take two more
LEGEND_COLUMNS = 4  # shares of the plot's width: "clothing accessory" fits down to a 1280 px window


def category_order(categories: Sequence[str]) -> tuple[np.ndarray, list[tuple[int, int, str]]]:
    """(N,) item order grouped by sorted category (stable within), and (start, stop, category) blocks."""
    labels = np.asarray(categories).astype(str)
    order = np.argsort(labels, kind="stable")
    ordered = labels[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    stops = np.r_[starts[1:], len(ordered)]
    return order, [(int(a), int(b), str(ordered[a])) for a, b in zip(starts, stops)]


def display_matrix(matrix: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, M) matrix in `order` -> (n, m) float32 block means with n, m <= MAX_PIXELS, and (n,) item positions.

    float32: a figure carries its matrices in base64, at 4 bytes a cell instead of 8 (0.8 MB less per 384-item
    matrix in every HTML); the hover shows 3 significant digits."""
    matrix = np.asarray(matrix, dtype=np.float64)[np.ix_(order, order)]
    factor = int(np.ceil(len(matrix) / MAX_PIXELS))
    if factor == 1:
        return matrix.astype(np.float32), np.arange(len(matrix), dtype=float)
    n = len(matrix)
    edges = np.arange(0, n, factor)
    rows = np.add.reduceat(matrix, edges, axis=0)
    blocks = np.add.reduceat(rows, edges, axis=1)
    sizes = np.diff(np.r_[edges, n])
    return (blocks / np.outer(sizes, sizes)).astype(np.float32), edges + (sizes - 1) / 2


def rdm_pair_figure(source_rdm: np.ndarray, target_rdm: np.ndarray, categories: Sequence[str],
                    names: tuple[str, str]) -> go.Figure:
    """The two (N, N) RDMs side by side, items ordered by category, category boundaries drawn."""
    order, blocks = category_order(categories)
    fig = make_subplots(rows=1, cols=2, subplot_titles=[f"Source: {names[0]}", f"Target: {names[1]}"],
                        horizontal_spacing=0.14)
    # Each RDM keeps its own colour scale (their units differ); the bar sits at its panel's right edge.
    for column, (matrix, colorbar_x) in enumerate(((source_rdm, 0.435), (target_rdm, 1.005)), start=1):
        values, positions = display_matrix(matrix, order)
        fig.add_trace(go.Heatmap(z=values, x=positions, y=positions, colorscale="Viridis",
                                 colorbar=dict(x=colorbar_x, xanchor="left", len=0.85, thickness=12),
                                 hovertemplate="item %{y:.0f} × item %{x:.0f}: %{z:.3g}<extra></extra>"), 1, column)
        draw_blocks(fig, blocks, row=1, col=column, legend=column == 1)
    fig.update_yaxes(autorange="reversed")
    fig.update_yaxes(showticklabels=False, row=1, col=2)
    return with_category_legend(house_style(fig, title="RDMs ordered by category (dissimilarity)", height=560),
                                 len(blocks))


def transport_plan_figure(plan: np.ndarray, categories: Sequence[str], *, log_colour: bool = False,
                          names: tuple[str, str] = ("source", "target"),
                          items: Sequence[str] | None = None) -> go.Figure:
    """N·T of the (N, N) selected plan (each row sums to 1), ordered by category, boundaries drawn.

    At item resolution (N <= MAX_PIXELS) each source row also gets a clickable point on its largest entry,
    customdata [source row, target row] in the dataset's order (`items` names them in the hover): plotly.js
    cannot select heatmap cells, so a click on the heatmap alone never reaches the page. Block-averaged
    plans get none (a block is many items)."""
    plan = np.asarray(plan)
    order, blocks = category_order(categories)
    values, positions = display_matrix(plan * len(plan), order)
    title = "N·T"
    if log_colour:
        values, title = np.log10(np.maximum(values, LOG_FLOOR)), "log₁₀ N·T"
    fig = go.Figure(go.Heatmap(z=values, x=positions, y=positions, colorscale="Blues",
                               colorbar=dict(title=title, len=0.9),
                               hovertemplate=f"{names[0]} item %{{y:.0f}} → {names[1]} item %{{x:.0f}}: "
                                             "%{z:.3g}<extra></extra>"))
    if len(plan) <= MAX_PIXELS:
        best = plan[order].argmax(axis=1)  # each source row's top target, as an item row
        where = np.empty(len(order), dtype=int)
        where[order] = np.arange(len(order))  # item row -> position on the category-ordered axes
        labels = np.asarray(items if items is not None else np.arange(len(plan))).astype(str)
        fig.add_trace(go.Scatter(
            x=where[best], y=np.arange(len(order)), mode="markers", showlegend=False,
            # Plain lists: a numpy array would reach the browser as a typed array, whose per-point customdata
            # Streamlit's selection event returns as {"0": row, "1": target}, not a list.
            customdata=np.column_stack([order, best]).tolist(), text=labels[order], hovertext=labels[best],
            # Invisible until clicked: the heatmap stays the picture; the clicked row's top cell is ringed.
            marker=dict(size=7, opacity=0, color="#D55E00", line=dict(color="black", width=1)),
            selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=0)),
            hovertemplate=f"{names[0]} %{{text}} → most mass to {names[1]} %{{hovertext}}"
                          "<br>click: where this item goes<extra></extra>"))
    # No legend: its 28 entries do not fit a 3/5 column; the RDM pair above has it, in the same colours.
    draw_blocks(fig, blocks, row=None, col=None, line_color="#999999", legend=False)
    fig.update_xaxes(title=f"target items ({names[1]})", constrain="domain")
    fig.update_yaxes(title=f"source items ({names[0]})", autorange="reversed", scaleanchor="x", constrain="domain",
                     constraintoward="top")  # in a narrow column the spare height goes below the square
    return house_style(fig, title="Selected transport plan", height=600)


def category_confusion_figure(rows: Sequence[str], columns: Sequence[str], shares: np.ndarray) -> go.Figure:
    """(C_s, C_t) share of each source category's plan mass sent to each target category (rows sum to 1)."""
    shares = np.asarray(shares, dtype=float)
    fig = go.Figure(go.Heatmap(z=shares, x=list(columns), y=list(rows), colorscale="Blues", zmin=0, zmax=1,
                               colorbar=dict(title="share", len=0.9), text=np.round(shares, 2),
                               texttemplate="%{text}" if shares.size <= 144 else None,
                               hovertemplate="%{y} → %{x}: %{z:.1%} of the row's mass<extra></extra>"))
    fig.update_xaxes(title="target category", tickangle=-45)
    fig.update_yaxes(title="source category", autorange="reversed")
    return house_style(fig, title="Category confusion of the plan (row-normalised)",
                       height=max(380, 26 * len(rows) + 200))


def epsilon_search_figure(trials: pd.DataFrame, selected: int) -> go.Figure:
    """GW distance and top-1 vs epsilon, a line per init seed; the selected trial starred, failures crossed."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("GW distance (without entropy)", "Top-1 matching rate"),
                        horizontal_spacing=0.1)
    for index, (seed, part) in enumerate(trials.sort_values("epsilon").groupby("init_seed", sort=True)):
        valid = part[part["valid"]]
        color = EXTENDED[index % len(EXTENDED)]
        hover = ("ε %{x:.3g}<br>%{y:.4g}<br>%{customdata[0]} iterations, %{customdata[1]:.1f} s"
                 f"<extra>init {seed}</extra>")
        for column, measure in ((1, "gw_distance"), (2, "top1")):
            fig.add_trace(go.Scatter(x=valid["epsilon"], y=valid[measure], mode="lines+markers", name=f"init {seed}",
                                     legendgroup=str(seed), showlegend=column == 1, line=dict(color=color),
                                     customdata=valid[["iterations", "seconds"]].to_numpy(), hovertemplate=hover),
                          1, column)
        failed = part[~part["valid"]]
        if len(failed):
            fig.add_trace(go.Scatter(x=failed["epsilon"], y=np.zeros(len(failed)), mode="markers", name="discarded",
                                     legendgroup="discarded", showlegend=index == 0, text=failed["note"],
                                     marker=dict(symbol="x", color="#7F7F7F", size=9),
                                     hovertemplate="ε %{x:.3g}: discarded (%{text})<extra></extra>"), 1, 2)
    best = trials.loc[selected]
    for column, measure in ((1, "gw_distance"), (2, "top1")):
        fig.add_trace(go.Scatter(x=[best["epsilon"]], y=[best[measure]], mode="markers", name="selected",
                                 legendgroup="selected", showlegend=column == 1,
                                 marker=dict(symbol="star", size=16, color="#D55E00", line=dict(color="black", width=1)),
                                 hovertemplate="selected: ε %{x:.3g}, %{y:.4g}<extra></extra>"), 1, column)
    # Powers of ten: plotly's default SI prefixes read 1e-4 as "100μ".
    fig.update_xaxes(type="log", title="epsilon", exponentformat="power", showexponent="all")
    fig.update_yaxes(title="GW distance", row=1, col=1)
    fig.update_yaxes(title="top-1", rangemode="tozero", row=1, col=2)
    return house_style(fig, title="Epsilon search", height=400)


def matching_rates_figure(summary: pd.DataFrame) -> go.Figure:
    """Bars of the selected plan's rates (columns measure, rate, chance) with chance marked."""
    fig = go.Figure(go.Bar(x=summary["measure"], y=summary["rate"], name="selected plan", marker_color=EXTENDED[0],
                           text=[f"{rate:.1%}" for rate in summary["rate"]], textposition="outside",
                           hovertemplate="%{x}: %{y:.1%}<extra></extra>"))
    fig.add_trace(go.Scatter(x=summary["measure"], y=summary["chance"], mode="markers", name="chance",
                             marker=dict(symbol="line-ew", size=40, line=dict(width=3, color="#D55E00")),
                             hovertemplate="chance %{y:.2%}<extra></extra>"))
    fig.update_yaxes(title="matching rate", range=[0, 1.08], tickformat=".0%")
    return house_style(fig, title="Matching rates of the selected plan", height=380)


def per_category_figure(table: pd.DataFrame) -> go.Figure:
    """Per category (columns category, n_items, top1, category_match, chance_category): grouped bars and chance."""
    table = table.sort_values("category_match", ascending=False)
    fig = go.Figure()
    for column, label, color in (("category_match", "category matching", EXTENDED[0]), ("top1", "top-1", EXTENDED[1])):
        fig.add_trace(go.Bar(x=table["category"], y=table[column], name=label, marker_color=color,
                             customdata=table["n_items"], hovertemplate="%{x} (%{customdata} items): %{y:.1%}"
                                                                       f"<extra>{label}</extra>"))
    fig.add_trace(go.Scatter(x=table["category"], y=table["chance_category"], mode="markers", name="category chance",
                             marker=dict(symbol="line-ew", size=14, line=dict(width=3, color="#D55E00")),
                             hovertemplate="chance %{y:.1%}<extra></extra>"))
    fig.update_layout(barmode="group")
    fig.update_yaxes(title="matching rate", range=[0, 1.05], tickformat=".0%")
    return house_style(fig, title="Per category", height=400)


def with_category_legend(fig: go.Figure, n_categories: int) -> go.Figure:
    """The category legend under the figure in LEGEND_COLUMNS columns; the figure grows by the legend's height, so
    the matrices keep their size whatever the number of categories."""
    height = fig.layout.height + LEGEND_ROW_PX * (-(-n_categories // LEGEND_COLUMNS) + 2)
    # Anchored at the bottom, plotly.js draws the legend 8 px past the figure's edge: lift it by 12.
    fig.update_layout(height=height,
                      legend=dict(orientation="h", xref="container", yref="container", x=0, y=12 / height,
                                  xanchor="left", yanchor="bottom", entrywidthmode="fraction",
                                  entrywidth=0.99 / LEGEND_COLUMNS, font=dict(size=11),
                                  itemclick=False, itemdoubleclick=False,  # its entries draw nothing to hide
                                  title=dict(text="categories", side="top left")))
    return fig


def labelled_blocks(blocks: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """The (start, stop, category) blocks, in axis order, named on an axis: of all choices whose centres lie at least
    LABEL_GAP_PX apart (on an axis of AXIS_PX), so that no two names overlap, the one naming the most items."""
    gap = LABEL_GAP_PX / AXIS_PX * blocks[-1][1]
    centres = [(start + stop - 1) / 2 for start, stop, _ in blocks]
    # Weighted interval scheduling: best[i] is the best choice among blocks[:i + 1], as (items named, indices).
    best: list[tuple[int, tuple[int, ...]]] = []
    for index, (start, stop, _) in enumerate(blocks):
        far = bisect_right(centres, centres[index] - gap)  # blocks[:far] are far enough before this one
        items, chosen = best[far - 1] if far else (0, ())
        with_this = (items + stop - start, chosen + (index,))
        best.append(max(best[-1], with_this, key=lambda choice: choice[0]) if best else with_this)
    return [blocks[index] for index in best[-1][1]]


def draw_blocks(fig: go.Figure, blocks: list[tuple[int, int, str]], *, row, col, line_color: str = "white",
                legend: bool = True) -> None:
    """Category boundaries as lines, a colour strip along the rows (left) and columns (top) naming each category on
    hover, a legend entry per category (once per figure: `legend`), and the names that fit as ticks."""
    axes = fig.get_subplot(row, col) if row is not None else None
    x, y = (axes.xaxis.plotly_name, axes.yaxis.plotly_name) if axes is not None else ("xaxis", "yaxis")
    x, y = x.replace("axis", ""), y.replace("axis", "")
    line = dict(type="line", line=dict(color=line_color, width=1))
    # One layout update for all lines: add_vline / add_hline per boundary took 8 s for THINGS' RDM pair.
    boundaries = [start - 0.5 for start, _, _ in blocks[1:]]
    fig.update_layout(shapes=[
        *fig.layout.shapes,
        *(dict(line, xref=x, yref=f"{y} domain", x0=edge, x1=edge, y0=0, y1=1) for edge in boundaries),
        *(dict(line, xref=f"{x} domain", yref=y, x0=0, x1=1, y0=edge, y1=edge) for edge in boundaries)])

    names = [name for _, _, name in blocks]
    hover = [f"{name} ({stop - start} items)" for start, stop, name in blocks]
    colors = category_colors(names)
    n_items = blocks[-1][1]
    edges = [start - 0.5 for start, _, _ in blocks] + [n_items - 0.5]
    band = [-0.5 - 2 * STRIP * n_items, -0.5 - STRIP * n_items]  # outside the matrix, before its first item
    # Block i is z = i on a colour scale of one flat step per block.
    scale = [[position, colors[name]] for index, name in enumerate(names)
             for position in (index / len(names), (index + 1) / len(names))]
    strip = dict(colorscale=scale, zmin=-0.5, zmax=len(names) - 0.5, showscale=False,
                 hovertemplate="%{text}<extra></extra>")
    fig.add_trace(go.Heatmap(z=[[index] for index in range(len(names))], x=band, y=edges, text=[[h] for h in hover],
                             name="categories (rows)", **strip), row=row, col=col)
    fig.add_trace(go.Heatmap(z=[list(range(len(names)))], x=edges, y=band, text=[hover], name="categories (columns)",
                             **strip), row=row, col=col)
    for name, text in zip(names, hover) if legend else ():
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=name, hovertemplate=f"{text}<extra></extra>",
                                 marker=dict(symbol="square", size=11, color=colors[name])), row=row, col=col)

    shown = labelled_blocks(blocks)
    ticks = dict(tickvals=[(start + stop - 1) / 2 for start, stop, _ in shown],
                 ticktext=[name for _, _, name in shown], showgrid=False, zeroline=False)
    fig.update_xaxes(**ticks, tickangle=-45, row=row, col=col)
    fig.update_yaxes(**ticks, row=row, col=col)
