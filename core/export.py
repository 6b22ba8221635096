"""Figure and table export: PNG/SVG/PDF through kaleido + system Chromium, HTML, CSV, zip; each carries its provenance.

Static formats need Chromium (Debian: `apt-get install chromium`). Without it
`ExportUnavailable` says so and HTML export (plotly.js inlined, works offline) remains. Many HTML
files shipped together (a study export) can instead share one plotly.js file (`PLOTLYJS_FILE`)
through a relative path, each 4.8 MB lighter.
A `Provenance` travels inside every file: PNG tEXt chunk, SVG <metadata>, PDF /Keywords,
HTML <script type="application/json" id="provenance">, CSV `provenance_*` columns, else
(rows of several feature sets, arrays) a zip with provenance.json beside the data.
"""
from __future__ import annotations

import io
import os
import re
import shutil
import threading
import zipfile
from typing import Callable, Mapping
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from core.provenance import PROVENANCE_FILE, Provenance

STATIC_FORMATS = ("png", "svg", "pdf")
FORMATS = STATIC_FORMATS + ("html",)
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = "Install Chromium (Debian/Ubuntu: `apt-get install chromium`) for PNG/SVG/PDF; HTML export works without it."
PROVENANCE_KEY = "provenance"  # PNG text key, SVG <metadata> and HTML <script> id
PLOTLYJS_FILE = "plotly.min.js"


class ExportUnavailable(RuntimeError):
    """Static export is impossible here; the message says why and what to install."""


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable: $BROWSER_PATH, else the first on PATH."""
    configured = os.environ.get("BROWSER_PATH")
    if configured and os.access(configured, os.X_OK):
        return configured
    return next((path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)


def static_export_status() -> tuple[bool, str]:
    """(available, message) for PNG/SVG/PDF export; cheap, starts no browser."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return False, "kaleido is not installed (pip install kaleido). " + INSTALL_HINT
    if find_chromium() is None:
        return False, "Chromium was not found. " + INSTALL_HINT
    return True, "PNG, SVG and PDF export available"


def figure_to_bytes(fig: go.Figure, fmt: str, *, width: int | None = None, height: int | None = None,
                    scale: float = 2.0, provenance: Provenance | None = None, plotlyjs: str | None = None) -> bytes:
    """Render a figure as png / svg / pdf (kaleido) or as offline html, `provenance` in its metadata.

    HTML inlines plotly.js (standalone) unless `plotlyjs` names the relative path of a shared copy
    (`plotlyjs_bytes()`, written beside it by the caller)."""
    rendered = _render(fig, fmt, width=width, height=height, scale=scale, plotlyjs=plotlyjs)
    return rendered if provenance is None else embed_provenance(rendered, fmt, provenance.to_json())


def embed_provenance(data: bytes, fmt: str, text: str) -> bytes:
    """A png / svg / pdf / html file with `text` (provenance JSON) added to its metadata."""
    if fmt == "png":
        image = Image.open(io.BytesIO(data))
        info = PngInfo()
        for key, value in image.text.items():
            info.add_text(key, value)
        info.add_text(PROVENANCE_KEY, text)
        buffer = io.BytesIO()
        image.save(buffer, "PNG", pnginfo=info, **({"dpi": image.info["dpi"]} if "dpi" in image.info else {}))
        return buffer.getvalue()
    if fmt == "svg":
        start = re.search(rb"<svg\b[^>]*>", data)
        block = f'<metadata id="{PROVENANCE_KEY}">{escape(text)}</metadata>'.encode()
        return data[:start.end()] + block + data[start.end():]
    if fmt == "html":
        # "<" never occurs in JSON outside strings, and \u003c inside them cannot end the script.
        payload = text.replace("<", "\\u003c")
        script = f'<script type="application/json" id="{PROVENANCE_KEY}">{payload}</script>\n'.encode()
        at = data.rindex(b"</body>")
        return data[:at] + script + data[at:]
    if fmt == "pdf":
        return _pdf_with_keywords(data, text)
    raise ValueError(f"Unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.")


def plotlyjs_bytes() -> bytes:
    """The plotly.js bundle that HTML figures inline, as the file they can share instead (`PLOTLYJS_FILE`)."""
    from plotly.offline import get_plotlyjs
    return get_plotlyjs().encode("utf-8")


def _render(fig: go.Figure, fmt: str, *, width: int | None, height: int | None, scale: float,
            plotlyjs: str | None = None) -> bytes:
    if fmt == "html":
        return fig.to_html(include_plotlyjs=plotlyjs or True, full_html=True).encode("utf-8")
    if fmt not in STATIC_FORMATS:
        raise ValueError(f"Unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    available, message = static_export_status()
    if not available:
        raise ExportUnavailable(message)
    import kaleido
    options = {"format": fmt, "scale": scale, "width": width or fig.layout.width or 1000,
               "height": height or fig.layout.height or 600}
    _start_kaleido_server()
    try:
        return kaleido.calc_fig_sync(fig, opts=options)
    except Exception as error:  # kaleido wraps browser failures in many exception types
        raise ExportUnavailable(f"Chromium could not render the figure ({type(error).__name__}: {error}). "
                                + INSTALL_HINT) from error


def _pdf_with_keywords(pdf: bytes, text: str) -> bytes:
    """`pdf` plus an incremental update (ISO 32000-1 §7.5.6) whose document info adds /Keywords (`text`)."""
    last = pdf.rfind(b"trailer")
    trailer = re.match(rb"trailer\s*<<(.*?)>>\s*startxref\s*(\d+)\s*%%EOF\s*$", pdf[last:], re.S) if last >= 0 else None
    info = re.search(rb"/Info\s+(\d+)\s+(\d+)\s+R", trailer[1]) if trailer else None
    if info is None:  # Chromium writes a classic xref table and an /Info dictionary; anything else is news
        raise ExportUnavailable("This PDF has no document info to hold the provenance; use the ZIP export.")
    number, generation = info[1], info[2]
    versions = list(re.finditer(rb"(?<!\d)%s %s obj\s*<<(.*?)>>\s*endobj" % (number, generation), pdf, re.S))
    keywords = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("latin-1")
    head = pdf if pdf.endswith(b"\n") else pdf + b"\n"
    body = (b"%s %s obj\n<<%s\n/Keywords (%s)>>\nendobj\n"
            % (number, generation, versions[-1][1] if versions else b"", keywords))
    entries = re.sub(rb"/Prev\s+\d+", b"", trailer[1])
    update = (b"xref\n%s 1\n%010d %05d n \n" % (number, len(head), int(generation))
              + b"trailer\n<<%s\n/Prev %s>>\nstartxref\n%d\n%%%%EOF\n" % (entries, trailer[2], len(head) + len(body)))
    return head + body + update


def table_to_csv(table: pd.DataFrame) -> bytes:
    """UTF-8 CSV without the index."""
    return table.to_csv(index=False).encode("utf-8")


def table_file(table: pd.DataFrame, provenance: Provenance | None, stem: str) -> tuple[str, Callable[[], bytes]]:
    """(file name, bytes on demand) of a table's download: `<stem>.csv` with provenance columns, or `<stem>.zip`
    holding the plain CSV and provenance.json when its rows cannot carry them (`Provenance.with_columns`)."""
    if provenance is None:
        return f"{stem}.csv", lambda: table_to_csv(table)
    if provenance.carries_columns(table):
        return f"{stem}.csv", lambda: table_to_csv(provenance.with_columns(table))
    return f"{stem}.zip", lambda: with_provenance_json({f"{stem}.csv": table_to_csv(table)}, provenance)


def with_provenance_json(files: Mapping[str, bytes], provenance: Provenance | None) -> bytes:
    """A zip of `files` and, with a provenance, provenance.json (for data no column or metadata field holds)."""
    extra = {} if provenance is None else {PROVENANCE_FILE: provenance.to_json().encode("utf-8")}
    return zip_bundle({**files, **extra})


def figure_bundle(fig: go.Figure, table: pd.DataFrame | None, provenance: Provenance | None, stem: str) -> bytes:
    """ZIP: the figure as <stem>.html (and .png, .svg where Chromium renders), its numbers as <stem>.csv
    (provenance columns where its rows carry them) and provenance.json."""
    files = {f"{stem}.html": figure_to_bytes(fig, "html", provenance=provenance)}
    if static_export_status()[0]:
        for fmt in ("png", "svg"):
            try:
                files[f"{stem}.{fmt}"] = figure_to_bytes(fig, fmt, provenance=provenance)
            except ExportUnavailable:
                break  # Chromium failed: the html still holds the figure
    if table is not None:
        annotated = None if provenance is None else provenance.with_columns(table)
        files[f"{stem}.csv"] = table_to_csv(table if annotated is None else annotated)
    return with_provenance_json(files, provenance)


def array_to_npy(array: np.ndarray) -> bytes:
    """An array as the bytes of a .npy file."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array))
    return buffer.getvalue()


def export_filename(page: str, figure: str, dataset: str, encoder: str = "", layer: str = "",
                    ext: str = "png") -> str:
    """`<page>_<figure>_<dataset>_<encoder>_<layer>.<ext>`, filesystem-safe; encoders joined by '+'; no
    extension for ext=""."""
    encoders = "+".join(_slug(spec) for spec in encoder.split(",") if spec.strip()) if encoder else ""
    parts = [_slug(page).lower(), _slug(figure).lower(), _slug(dataset), encoders, _slug(layer)]
    return "_".join(part for part in parts if part) + (f".{ext}" if ext else "")


def zip_bundle(files: Mapping[str, bytes]) -> bytes:
    """A zip archive of name -> bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, payload in files.items():
            archive.writestr(name, payload)
    return buffer.getvalue()


def _slug(text: str) -> str:
    text = text.strip().replace("@", "-at-")
    text = re.sub(r"[^A-Za-z0-9.+-]+", "-", text)
    return re.sub(r"-{2,}", "-", text).strip("-.")


_server_lock = threading.Lock()


def _start_kaleido_server() -> None:
    # The one piece of process state in core/: a warm Chromium renders a figure in ~0.3 s
    # instead of ~3 s, and kaleido's server is a process-wide singleton by design.
    import kaleido
    with _server_lock:
        try:
            kaleido.start_sync_server(path=find_chromium(), silence_warnings=True)
        except Exception:  # fall back to kaleido's one-shot rendering
            pass
