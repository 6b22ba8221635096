"""The house style every figure shares: palettes, fonts, margins; stable colours per category and encoder."""
from __future__ import annotations

from typing import Sequence

import plotly.graph_objects as go

# Okabe & Ito (2008): distinguishable under the common colour-vision deficiencies.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
EXTENDED = OKABE_ITO + ("#7F7F7F", "#8C564B", "#17BECF", "#BCBD22", "#9467BD", "#FF9DA7", "#2CA02C", "#AEC7E8")
# EXTENDED, then 12 darker or mid-tone colours picked greedily for the largest CIELAB distance to all before them
# (each >= 25 ΔE): THINGS' 28 categories get 28 distinct colours on a white background.
CATEGORICAL = EXTENDED + ("#BE0032", "#6633CC", "#637939", "#651067", "#C2B280", "#661100", "#00429D", "#2B3D26",
                          "#DD4477", "#882255", "#E31A1C", "#B5CF6B")
# Past len(CATEGORICAL) categories the colours repeat with the next symbol (all drawn by WebGL scatter too).
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x")
FONT = dict(family="Arial, Helvetica, sans-serif", size=13, color="#222222")


def category_colors(categories: Sequence[str]) -> dict[str, str]:
    """Stable colour per category: sorted names take the palette in order (cycling past 28)."""
    return {name: colour for name, (colour, _) in category_styles(categories).items()}


def category_styles(categories: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Stable (colour, marker symbol) per category, sorted names in order: distinct for up to 28 × 6 categories."""
    return {name: (CATEGORICAL[index % len(CATEGORICAL)], SYMBOLS[index // len(CATEGORICAL) % len(SYMBOLS)])
            for index, name in enumerate(sorted(set(categories)))}


def encoder_colors(encoders: Sequence[str]) -> dict[str, str]:
    """Colour per encoder in the order given."""
    return {encoder: EXTENDED[index % len(EXTENDED)] for index, encoder in enumerate(dict.fromkeys(encoders))}


def house_style(fig: go.Figure, *, title: str = "", height: int = 420) -> go.Figure:
    """White background, readable fonts, light grid, margins that survive export."""
    fig.update_layout(template="plotly_white", font=FONT, height=height, title=dict(text=title, x=0.01),
                      margin=dict(l=60, r=20, t=60 if title else 30, b=50),
                      legend=dict(bgcolor="rgba(255,255,255,0.8)"))
    fig.update_xaxes(showline=True, linecolor="#444444", ticks="outside", gridcolor="#EEEEEE")
    fig.update_yaxes(showline=True, linecolor="#444444", ticks="outside", gridcolor="#EEEEEE")
    return fig
