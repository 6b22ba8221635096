"""The export menu under every figure (PNG, SVG, PDF, HTML, CSV, ZIP) and its "Provenance" expander.

Every file a page offers carries the provenance of what it shows: figures in their metadata, tables
as `provenance_*` columns or, where rows cannot carry them, as provenance.json in a zip beside the
CSV. Pages download tables and arrays only through `table_download` and `file_download`. Plotly's own
"Download plot as a PNG" is taken off every chart's mode bar: its PNG would carry no provenance.
"""
from __future__ import annotations

from typing import Callable, Hashable, TypeVar

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.export import (export_filename, figure_bundle, figure_to_bytes, static_export_status, table_file,
                         with_provenance_json)
from core.provenance import Provenance
from views.ui import resources

Built = TypeVar("Built")

MIME_TYPES = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf", "html": "text/html",
              "csv": "text/csv", "zip": "application/zip"}
HELP = {
    "png": "Raster image at 2x resolution, for slides.",
    "svg": "Vector image, editable in Illustrator/Inkscape.",
    "pdf": "Vector PDF, for papers.",
    "html": "Interactive figure (zoom, hover) as a standalone offline HTML file.",
    "csv": "The exact numbers plotted in this figure.",
    "zip": "Everything in one file: the figure (HTML, and PNG/SVG where Chromium renders), its numbers (CSV) and "
           "provenance.json.",
}
CARRIED = " Carries its provenance (dataset, feature sets, preprocessing, parameters, library versions)"
WHERE = {"png": " in a PNG text chunk.", "svg": " in its <metadata>.", "pdf": " in its document keywords.",
         "html": ' in <script id="provenance">.', "csv": " as provenance_* columns.", "zip": " as provenance.json."}
SIDECAR = (" Its rows come from several feature sets that the table cannot tell apart, so it comes as a zip: the CSV "
           "and provenance.json.")
LABELS = {"png": "PNG image", "svg": "SVG vector", "pdf": "PDF vector", "html": "HTML interactive",
          "csv": "CSV numbers", "zip": "ZIP everything"}
CHART_CONFIG = {"modeBarButtonsToRemove": ["toImage"]}


def built_once(key: Hashable, build: Callable[[], Built]) -> Built:
    """`build()` (a figure, or a figure and its table) once per key in this process, shared by every session: a
    page rerun with its results cached redraws the figure, it does not build it again. `key` names everything the
    figure shows (the result it draws, its options); figures are never changed after they are built."""
    return resources.result_memo().get_or_compute(("built", key), build)


def export_row(fig: go.Figure, table: pd.DataFrame | None, *, page: str, figure: str, dataset: str,
               encoder: str = "", layer: str = "", key: str, provenance: Provenance | None = None) -> None:
    """One "Export" menu for a figure, its download buttons one per line inside (a row of six buttons is cut to
    "P…" in a half-width column); files are produced only when a button is clicked."""
    static_ok, static_message = static_export_status()
    formats = (["png", "svg", "pdf"] if static_ok else []) + ["html"] + (["csv"] if table is not None else []) + ["zip"]
    stem = export_filename(page, figure, dataset, encoder, layer, ext="")
    menu = st.popover("Export", icon=":material/download:", key=f"{key}_menu",
                      help="Download this figure: " + ", ".join(fmt.upper() for fmt in formats)
                           + (", each with its provenance." if provenance else "."))
    for fmt in formats:
        if fmt == "csv":
            table_download(LABELS["csv"], table, provenance, file_stem=stem, help=HELP["csv"], key=f"{key}_csv",
                           container=menu, width="stretch")
            continue
        if fmt == "zip":
            data = lambda: figure_bundle(fig, table, provenance, stem)  # noqa: E731
        else:
            data = lambda fmt=fmt: figure_to_bytes(fig, fmt, provenance=provenance)  # noqa: E731
        menu.download_button(LABELS[fmt], data=data, mime=MIME_TYPES[fmt], key=f"{key}_{fmt}", on_click="ignore",
                             help=HELP[fmt] + (CARRIED + WHERE[fmt] if provenance else ""),
                             file_name=f"{stem}.{fmt}", width="stretch")
    if not static_ok:
        menu.caption(f"PNG/SVG/PDF unavailable: {static_message}")


def figure_block(fig: go.Figure, table: pd.DataFrame | None, *, page: str, figure: str, dataset: str,
                 encoder: str = "", layer: str = "", how_to_read: str = "",
                 provenance: Provenance | None = None, select_key: str | None = None,
                 selection_mode: tuple[str, ...] = ("points", "box", "lasso")):
    """The house figure: the chart (no camera button), its export menu, "How to read this" and "Provenance"
    expanders.

    With `select_key`, clicks and box/lasso selections rerun the page and the selection event is returned
    (see views.ui.items.selected_rows); otherwise None."""
    event = st.plotly_chart(fig, width="stretch", config=CHART_CONFIG, **(
        dict(key=select_key, on_select="rerun", selection_mode=selection_mode) if select_key else {}))
    export_row(fig, table, page=page, figure=figure, dataset=dataset, encoder=encoder, layer=layer,
               key=f"export_{page}_{figure}", provenance=provenance)
    if how_to_read:
        with st.expander("How to read this"):
            st.markdown(how_to_read)
    if provenance is not None:
        provenance_expander(provenance)
    return event if select_key else None


def table_block(table: pd.DataFrame, *, title: str, page: str, name: str, dataset: str, encoder: str,
                help: str, provenance: Provenance | None = None) -> None:
    """A titled table with its CSV download (the page's summary numbers) and its provenance."""
    st.subheader(title)
    st.dataframe(table, hide_index=True, width="stretch")
    table_download(f"{title} (CSV)", table, provenance, help=help,
                   file_stem=export_filename(page, name, dataset, encoder, ext=""))
    if provenance is not None:
        provenance_expander(provenance)


def table_download(label: str, table: pd.DataFrame, provenance: Provenance | None, *, file_stem: str, help: str,
                   key: str | None = None, container=None, width: str = "content") -> None:
    """A table's download button: CSV with provenance columns, or a zip of the CSV and provenance.json."""
    file_name, data = table_file(table, provenance, file_stem)
    sidecar = file_name.endswith(".zip")
    where = "" if provenance is None else CARRIED + WHERE["zip" if sidecar else "csv"] + (SIDECAR if sidecar else "")
    (container or st).download_button(label + (" · zip" if sidecar else ""), data=data, file_name=file_name,
                                      mime=MIME_TYPES["zip" if sidecar else "csv"], key=key, on_click="ignore",
                                      help=help + where, width=width)


def file_download(label: str, name: str, data: Callable[[], bytes], provenance: Provenance | None, *,
                  file_stem: str, help: str, key: str | None = None, container=None) -> None:
    """Data no column can annotate (an array, a matrix): a zip of `name` (made on click) and provenance.json."""
    (container or st).download_button(
        label, data=lambda: with_provenance_json({name: data()}, provenance), file_name=f"{file_stem}.zip",
        mime=MIME_TYPES["zip"], key=key, on_click="ignore",
        help=help + ("" if provenance is None else CARRIED + WHERE["zip"]))


def provenance_expander(provenance: Provenance) -> None:
    """A collapsed "Provenance" expander: dataset, the feature sets behind the result, parameters, versions."""
    with st.expander("Provenance"):
        st.caption(f"Dataset **{provenance.dataset}** · fingerprint `{provenance.dataset_fingerprint}`")
        if provenance.records:
            st.dataframe(provenance.table(), hide_index=True, width="stretch")
        else:
            st.caption("Computed from the dataset itself (no stored features).")
        if provenance.parameters:
            st.json(provenance.to_dict()["parameters"], expanded=2)
        st.caption("Versions: " + " · ".join(f"{name} {version}" for name, version in provenance.versions.items()))
