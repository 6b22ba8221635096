"""The export row under every figure: PNG, SVG, PDF, interactive HTML and the numbers as CSV."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.export import export_filename, figure_to_bytes, static_export_status, table_to_csv

MIME_TYPES = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf", "html": "text/html",
              "csv": "text/csv"}
HELP = {
    "png": "Raster image at 2x resolution, for slides.",
    "svg": "Vector image, editable in Illustrator/Inkscape.",
    "pdf": "Vector PDF, for papers.",
    "html": "Interactive figure (zoom, hover) as a standalone offline HTML file.",
    "csv": "The exact numbers plotted in this figure.",
}


def export_row(fig: go.Figure, table: pd.DataFrame | None, *, page: str, figure: str, dataset: str,
               encoder: str = "", layer: str = "", key: str) -> None:
    """Download buttons for one figure; files are produced only when a button is clicked."""
    static_ok, static_message = static_export_status()
    formats = (["png", "svg", "pdf"] if static_ok else []) + ["html"] + (["csv"] if table is not None else [])
    columns = st.columns(len(formats) + 1, gap="small")
    for column, fmt in zip(columns, formats):
        if fmt == "csv":
            data = lambda: table_to_csv(table)  # noqa: E731
        else:
            data = lambda fmt=fmt: figure_to_bytes(fig, fmt)  # noqa: E731
        column.download_button(
            fmt.upper(), data=data, mime=MIME_TYPES[fmt], key=f"{key}_{fmt}", help=HELP[fmt], on_click="ignore",
            file_name=export_filename(page, figure, dataset, encoder, layer, fmt))
    if not static_ok:
        columns[-1].caption(f"PNG/SVG/PDF unavailable: {static_message}")


def figure_block(fig: go.Figure, table: pd.DataFrame | None, *, page: str, figure: str, dataset: str,
                 encoder: str = "", layer: str = "", how_to_read: str = "") -> None:
    """The house figure: the chart, its export row and a "How to read this" expander."""
    st.plotly_chart(fig, width="stretch")
    export_row(fig, table, page=page, figure=figure, dataset=dataset, encoder=encoder, layer=layer,
               key=f"export_{page}_{figure}")
    if how_to_read:
        with st.expander("How to read this"):
            st.markdown(how_to_read)


def table_block(table: pd.DataFrame, *, title: str, page: str, name: str, dataset: str, encoder: str,
                help: str) -> None:
    """A titled table with its CSV download (the page's summary numbers)."""
    st.subheader(title)
    st.dataframe(table, hide_index=True, width="stretch")
    st.download_button(f"{title} (CSV)", table_to_csv(table), mime="text/csv", on_click="ignore", help=help,
                       file_name=export_filename(page, name, dataset, encoder, ext="csv"))
