"""Export: file names, offline HTML, CSV, zip, static formats through Chromium, clear failure; provenance in each."""
from __future__ import annotations

import io
import json
import re
import zipfile
from html.parser import HTMLParser
from xml.etree import ElementTree

import pandas as pd
import plotly.graph_objects as go
import pytest
from PIL import Image

from core import export
from core.export import (ExportUnavailable, export_filename, figure_bundle, figure_to_bytes, table_file, table_to_csv,
                         zip_bundle)
from core.provenance import Provenance
from tests.core.test_provenance import demo_extraction


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


# --- provenance in every format -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def provenance(isolated_cache):
    """Of a real extraction: EfficientNet-Lite0 (224 px, crop_pct 0.875) and raw pixels on 16 demo images."""
    return demo_extraction(isolated_cache)[1]


class _ProvenanceScript(HTMLParser):
    """The text of <script id="provenance"> in an HTML page."""

    def __init__(self):
        super().__init__()
        self.inside, self.text = False, ""

    def handle_starttag(self, tag, attrs):
        self.inside = tag == "script" and dict(attrs).get("id") == "provenance"

    def handle_data(self, data):
        self.text += data if self.inside else ""

    def handle_endtag(self, tag):
        self.inside = False


def html_provenance(html: bytes) -> dict:
    parser = _ProvenanceScript()
    parser.feed(html.decode())
    return json.loads(parser.text)


def pdf_keywords(pdf: bytes) -> str:
    """/Keywords of the document info, found as a reader finds it: last startxref -> xref -> trailer /Info -> object."""
    section = pdf[int(re.findall(rb"startxref\s+(\d+)", pdf)[-1]):]
    first, count = map(int, re.match(rb"xref\s+(\d+)\s+(\d+)\s*\n", section).groups())
    info = int(re.search(rb"/Info\s+(\d+)\s+\d+\s+R", section)[1])
    assert first <= info < first + count
    entries = section[re.match(rb"xref\s+\d+\s+\d+\s*\n", section).end():]
    offset = int(entries[20 * (info - first):20 * (info - first) + 10])
    obj = pdf[offset:]
    assert obj.startswith(b"%d 0 obj" % info)
    text, escaped = [], False
    for char in obj[obj.index(b"/Keywords (") + len(b"/Keywords ("):].decode("latin-1"):
        if escaped:
            text.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ")":
            return "".join(text)
        else:
            text.append(char)
    raise AssertionError("unterminated /Keywords string")


def test_html_carries_provenance_in_a_json_script(bar, provenance) -> None:
    carried = html_provenance(figure_to_bytes(bar, "html", provenance=provenance))
    assert carried == provenance.to_dict()
    assert carried["features"][0]["preprocess"]["input_size"] == [3, 224, 224]
    assert carried["features"][0]["preprocess"]["crop_pct"] == 0.875


def test_a_script_end_inside_a_value_cannot_end_the_json_script(bar, provenance) -> None:
    hostile = Provenance("demo", "f" * 16, parameters={"upload": "</script><b>x</b>"})
    assert html_provenance(figure_to_bytes(bar, "html", provenance=hostile))["parameters"] == hostile.parameters


def test_a_table_csv_carries_provenance_columns_and_no_comment_lines(provenance) -> None:
    table = pd.DataFrame({"encoder": ["pixels:32", "bundled:efficientnet_lite0"], "layer": ["final", "final"],
                          "r2": [0.1, 0.4]})
    name, make = table_file(table, provenance, "probes_curves_demo")
    payload = make()
    assert name == "probes_curves_demo.csv" and payload.startswith(b"encoder,layer,r2,provenance_encoder")
    read = pd.read_csv(io.BytesIO(payload))
    assert list(read["provenance_resolution"]) == ["32x32", "224x224"]
    assert read["provenance_crop"][1] == "center crop, crop_pct 0.875"


def test_rows_of_several_feature_sets_export_a_zip_with_provenance_json(provenance) -> None:
    table = pd.DataFrame({"k": [1, 5], "rate": [0.2, 0.6]})
    name, make = table_file(table, provenance, "alignment_matching_rates_demo")
    bundle = zipfile.ZipFile(io.BytesIO(make()))
    assert name == "alignment_matching_rates_demo.zip"
    assert sorted(bundle.namelist()) == ["alignment_matching_rates_demo.csv", "provenance.json"]
    assert pd.read_csv(bundle.open("alignment_matching_rates_demo.csv")).equals(table)
    assert bundle.read("provenance.json").decode() == provenance.to_json()


def test_the_zip_bundle_holds_figure_numbers_and_provenance(bar, provenance) -> None:
    table = pd.DataFrame({"encoder": ["pixels:32"], "layer": ["final"], "images": [134]})
    bundle = zipfile.ZipFile(io.BytesIO(figure_bundle(bar, table, provenance, "features_counts_demo")))
    static = ["features_counts_demo.png", "features_counts_demo.svg"] if export.static_export_status()[0] else []
    assert sorted(bundle.namelist()) == sorted(["features_counts_demo.html", "features_counts_demo.csv",
                                                "provenance.json", *static])
    assert bundle.read("provenance.json").decode() == provenance.to_json()
    assert pd.read_csv(bundle.open("features_counts_demo.csv"))["provenance_resolution"].tolist() == ["32x32"]
    assert html_provenance(bundle.read("features_counts_demo.html")) == provenance.to_dict()


def test_static_formats_carry_provenance_in_their_metadata(bar, provenance) -> None:
    if export.find_chromium() is None:
        pytest.skip("Chromium not installed")
    expected = provenance.to_dict()
    png = figure_to_bytes(bar, "png", width=400, height=300, provenance=provenance)
    assert json.loads(Image.open(io.BytesIO(png)).text["provenance"]) == expected
    assert Image.open(io.BytesIO(png)).size == (800, 600)
    svg = ElementTree.fromstring(figure_to_bytes(bar, "svg", provenance=provenance))
    metadata = svg.find("{http://www.w3.org/2000/svg}metadata")
    assert metadata.get("id") == "provenance" and json.loads(metadata.text) == expected
    pdf = figure_to_bytes(bar, "pdf", provenance=provenance)
    assert pdf[:5] == b"%PDF-" and json.loads(pdf_keywords(pdf)) == expected


def test_the_pdf_update_keeps_the_old_info_and_points_back_to_the_old_xref(provenance) -> None:
    objects = [b"<</Title (demo \\(v1\\))>>", b"<</Type /Catalog /Pages 3 0 R>>", b"<</Type /Pages /Kids [] /Count 0>>"]
    pdf, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(pdf))
        pdf += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref_at = len(pdf)
    pdf += b"xref\n0 4\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    pdf += b"trailer\n<</Size 4 /Root 2 0 R /Info 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % xref_at
    updated = export.embed_provenance(pdf, "pdf", provenance.to_json())
    assert updated.startswith(pdf) and json.loads(pdf_keywords(updated)) == provenance.to_dict()
    new_info = updated[len(pdf):]
    assert b"/Title (demo \\(v1\\))" in new_info and b"/Prev %d" % xref_at in new_info
    assert b"/Root 2 0 R" in new_info


def test_a_pdf_without_document_info_says_to_use_the_zip(provenance) -> None:
    with pytest.raises(ExportUnavailable, match="ZIP"):
        export.embed_provenance(b"%PDF-1.7\n%%EOF\n", "pdf", provenance.to_json())
