"""Export: file names, offline HTML, CSV, zip, static formats through Chromium, clear failure."""
from __future__ import annotations

import io
import zipfile

import pandas as pd
import plotly.graph_objects as go
import pytest
from PIL import Image

from core import export
from core.export import ExportUnavailable, export_filename, figure_to_bytes, table_to_csv, zip_bundle


@pytest.fixture
def bar() -> go.Figure:
    return go.Figure(go.Bar(x=["Animal", "Object"], y=[134, 200]))


@pytest.mark.parametrize("encoder, expected", [
    ("open_clip:ViT-B-16@openai", "features_counts_demo_open-clip-ViT-B-16-at-openai_final.png"),
    ("file:timm:resnet50@/data/w.pt", "features_counts_demo_file-timm-resnet50-at-data-w.pt_final.png"),
    ("pixels:32,bundled:efficientnet_lite0", "features_counts_demo_pixels-32+bundled-efficientnet-lite0_final.png"),
])
def test_export_filename_is_safe_and_readable(encoder: str, expected: str) -> None:
    # "_" separates the fields, so it never appears inside one.
    assert export_filename("Features", "counts", "demo", encoder, "final", "png") == expected


def test_empty_parts_are_dropped() -> None:
    assert export_filename("features", "ratings", "oasis", ext="csv") == "features_ratings_oasis.csv"


def test_html_export_is_self_contained(bar) -> None:
    html = figure_to_bytes(bar, "html").decode()
    assert "<html" in html and '"Animal"' in html and "plotly.js" in html.lower()
    assert 'src="https://cdn' not in html  # works offline


def test_csv_and_zip_round_trip() -> None:
    table = pd.DataFrame({"category": ["Animal", "Object"], "images": [134, 200]})
    assert pd.read_csv(io.BytesIO(table_to_csv(table))).equals(table)
    bundle = zipfile.ZipFile(io.BytesIO(zip_bundle({"a.csv": b"x,y\n", "b.txt": b"hello"})))
    assert sorted(bundle.namelist()) == ["a.csv", "b.txt"] and bundle.read("b.txt") == b"hello"


def test_static_formats_render_with_chromium(bar) -> None:
    if export.find_chromium() is None:
        pytest.skip("Chromium not installed")
    png = figure_to_bytes(bar, "png", width=400, height=300, scale=2)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and Image.open(io.BytesIO(png)).size == (800, 600)
    assert b"<svg" in figure_to_bytes(bar, "svg")[:200]
    assert figure_to_bytes(bar, "pdf")[:5] == b"%PDF-"


def test_missing_chromium_is_a_clear_message_not_a_hang(bar, monkeypatch) -> None:
    monkeypatch.setattr(export, "find_chromium", lambda: None)
    available, message = export.static_export_status()
    assert not available and "chromium" in message.lower()
    with pytest.raises(ExportUnavailable, match="(?i)chromium"):
        figure_to_bytes(bar, "png")
    assert figure_to_bytes(bar, "html")  # HTML still works


def test_unknown_format_is_refused(bar) -> None:
    with pytest.raises(ValueError, match="png, svg, pdf, html"):
        figure_to_bytes(bar, "bmp")
