"""Figures of the Objective lab: training loss curves, one line per run in its objective's colour."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from core.figures.style import OKABE_ITO, house_style
from core.lab.runs import OBJECTIVES

# One colour per objective on every lab figure (loss curves, learning dynamics), whichever objectives are shown.
OBJECTIVE_COLORS = dict(zip(OBJECTIVES, OKABE_ITO))
RUN_SEPARATOR = " · "


def run_label(objective: str, run_id: str) -> str:
    """How figures and tables name a run: "<objective> · <run id>"."""
    return f"{objective}{RUN_SEPARATOR}{run_id}"


def objective_of(label: str) -> str:
    """The objective of a `run_label`."""
    return label.partition(RUN_SEPARATOR)[0]


def run_id_of_label(label: str) -> str:
    """The run id of a `run_label`."""
    return label.partition(RUN_SEPARATOR)[2]


def objective_color(objective: str) -> str:
    return OBJECTIVE_COLORS[objective]


def loss_curves_table(histories: dict[str, list[dict]]) -> pd.DataFrame:
    """Columns run, epoch, step, loss: every logged step of every run."""
    frames = [pd.DataFrame(history, columns=["epoch", "step", "loss"]).assign(run=run)
              for run, history in histories.items()]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["epoch", "step", "loss", "run"])
    return table[["run", "epoch", "step", "loss"]]


def loss_curves_figure(table: pd.DataFrame) -> go.Figure:
    """Loss vs optimisation step per run (`run_label`s; losses of different objectives live on different scales)."""
    fig = go.Figure()
    for run, rows in table.groupby("run", sort=False):
        fig.add_trace(go.Scatter(x=rows["step"], y=rows["loss"], mode="lines" if len(rows) > 60 else "lines+markers",
                                 name=run, line=dict(color=objective_color(objective_of(run))), marker=dict(size=5),
                                 customdata=rows[["epoch"]].to_numpy(),
                                 hovertemplate="step %{x} · epoch %{customdata[0]}<br>loss %{y:.4f}"
                                               f"<extra>{run}</extra>"))
    fig.update_xaxes(title="step")
    fig.update_yaxes(title="training loss")
    return house_style(fig, title="Training loss (each objective on its own scale)", height=380)
