"""Figure and table export: PNG/SVG/PDF through kaleido + system Chromium, HTML, CSV, zip.

Static formats need Chromium (Debian: `apt-get install chromium`). Without it
`ExportUnavailable` says so and HTML export (plotly.js inlined, works offline) remains.
"""
from __future__ import annotations

import io
import os
import re
import shutil
import threading
import zipfile
from typing import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

STATIC_FORMATS = ("png", "svg", "pdf")
FORMATS = STATIC_FORMATS + ("html",)
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = "Install Chromium (Debian/Ubuntu: `apt-get install chromium`) for PNG/SVG/PDF; HTML export works without it."


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
                    scale: float = 2.0) -> bytes:
    """Render a figure as png / svg / pdf (kaleido) or as standalone offline html."""
    if fmt == "html":
        return fig.to_html(include_plotlyjs=True, full_html=True).encode("utf-8")
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


def table_to_csv(table: pd.DataFrame) -> bytes:
    """UTF-8 CSV without the index."""
    return table.to_csv(index=False).encode("utf-8")


def array_to_npy(array: np.ndarray) -> bytes:
    """An array as the bytes of a .npy file."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array))
    return buffer.getvalue()


def export_filename(page: str, figure: str, dataset: str, encoder: str = "", layer: str = "",
                    ext: str = "png") -> str:
    """`<page>_<figure>_<dataset>_<encoder>_<layer>.<ext>`, filesystem-safe; encoders joined by '+'."""
    encoders = "+".join(_slug(spec) for spec in encoder.split(",") if spec.strip()) if encoder else ""
    parts = [_slug(page).lower(), _slug(figure).lower(), _slug(dataset), encoders, _slug(layer)]
    return "_".join(part for part in parts if part) + f".{ext}"


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
