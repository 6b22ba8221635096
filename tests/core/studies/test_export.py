"""`study export`: one zip with every stored table as CSV (values exact), every figure as HTML (and PNG/SVG/PDF where
Chromium renders) and a methods.md naming every setting, fingerprint and library version; a step not run is listed
as such, never an error.

Every HTML loads the one plotly.js at the archive's root by a relative path (tests/browser/test_figures_browser.py
opens such a file offline).

The study (pixels on the demo: affect, similarity, alignment, and a probes step that is never run) runs once per
module (~20 s with the demo's generation: the tests that need it are slow); the steps not run, failed or pending, are
checked without running anything. Most exports patch static export off (fast, and it checks the HTML-only path); one
renders PNG/SVG/PDF of the affect step's figures where Chromium is present. Figures a step does not store are drawn
from the cache beside it: the affect error geometry from the stored out-of-fold predictions (no probe fitted again),
the alignment's RDM pair from the features.
"""
from __future__ import annotations

import dataclasses
import io
import json
import posixpath
import re
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

import core.analyses.affect_report as affect_report
import core.studies.export as study_export
from core.analyses.affect_report import PREDICTIONS_KIND
from core.cli import main
from core.export import PLOTLYJS_FILE, plotlyjs_bytes, static_export_status
from core.features.results import FAILED_FILE
from core.provenance import library_versions
from core.studies.engines import LocalEngine
from core.studies.export import ExportSummary, export_study
from core.studies.run import STEP_KIND, open_context, run_study, study_status
from core.studies.spec import Study, load_study

HEADER = '''name = "export test"
description = "pixels:32 on the demo: affect, similarity, alignment; a probes step never run."
datasets = ["demo"]
encoders = ["pixels:32"]
layers = ["final"]
'''
RUN_STEPS = '''
[[steps]]
analysis = "affect"
schemes = ["kfold"]

[[steps]]
analysis = "similarity"
matrix = "pairs"
measures = ["cka_linear"]

[[steps]]
analysis = "alignment"
source = "human · demo human"
targets = ["pixels:32 · final"]
n_eps = 2
n_inits = 1
eps_range = [1e-3, 1e-1]
metric = "euclidean"
normalise = true
anneal = false
'''
PROBES = '''
[[steps]]
analysis = "probes"
'''
STUDY = HEADER + RUN_STEPS + PROBES
RUN = 3  # the first three steps run; the probes step stays pending
FOLDERS = ("01_affect_demo", "02_similarity_demo", "03_alignment_demo")
AFFECT_FIGURES = tuple(f"01_affect_demo/{name}" for name in ("r2", "error_field", "occupancy", "error_rose"))
FIGURES = (*AFFECT_FIGURES, "02_similarity_demo/matrix_cka_linear",
           *(f"03_alignment_demo/{name}_pixels-32-final" for name in ("rdms", "transport_plan", "matching_rates",
                                                                      "epsilon_search", "per_category")))
N_TABLES = 5 + 2 + 2  # affect: metrics, paired, per_group, measures, predictions; pairs, controls; matching, trials
NO_CHROMIUM = (False, "Chromium was not found. (patched by the test)")


def exported(study: Study, cache: Path, out: Path, static: bool = False) -> tuple[ExportSummary, dict[str, bytes]]:
    """Export (static formats patched off unless `static`) and read the zip back whole: (summary, {name: bytes})."""
    with pytest.MonkeyPatch.context() as patch:
        if not static:
            patch.setattr(study_export, "static_export_status", lambda: NO_CHROMIUM)
        summary = export_study(study, cache, out)
    with zipfile.ZipFile(out) as archive:
        assert archive.testzip() is None
        assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in archive.infolist())
        return summary, {name: archive.read(name) for name in archive.namelist()}


def section(methods: str, label: str) -> str:
    """The methods.md section of the step `label`."""
    return next(part for part in methods.split("### ") if part.startswith(label))


@pytest.fixture(scope="module")
def study_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("study") / "export_test.toml"
    path.write_text(STUDY)
    return path


@pytest.fixture(scope="module")
def study(study_file: Path, isolated_cache: Path) -> Study:
    return load_study(study_file, isolated_cache)


@pytest.fixture(scope="module")
def ran(study: Study, isolated_cache: Path) -> Study:
    """The study after running its first RUN steps (the probes step stays pending)."""
    statuses = run_study(dataclasses.replace(study, steps=study.steps[:RUN]), isolated_cache, LocalEngine())
    assert [status.state for status in statuses] == ["done"] * RUN, [status.error for status in statuses]
    return study


@pytest.fixture(scope="module")
def html_only(ran: Study, isolated_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    return exported(ran, isolated_cache, tmp_path_factory.mktemp("export") / "not yet" / "results.zip")


@pytest.mark.slow
def test_every_stored_table_is_a_csv_with_the_stored_values(study, isolated_cache, html_only) -> None:
    summary, files = html_only
    context = open_context(study, isolated_cache)
    statuses = study_status(study, isolated_cache)
    assert [status.state for status in statuses] == ["done"] * RUN + ["pending"]
    for status, folder in zip(statuses, FOLDERS):
        stored = context.results.get(STEP_KIND, status.key)
        for name in stored.table_names:
            table, data = stored.table(name), files[f"{folder}/{name}.csv"]
            if table.columns.empty:  # affect's paired table without two schemes
                assert data.strip() == b""
                continue
            read = pd.read_csv(io.BytesIO(data), float_precision="round_trip")
            assert list(read.columns) == list(table.columns) and len(read) == len(table)
            numbers = table.select_dtypes("number").columns
            pd.testing.assert_frame_equal(read[numbers], table[numbers], check_dtype=False, check_exact=True)
    matching = context.results.get(STEP_KIND, statuses[2].key).table("matching")
    read = pd.read_csv(io.BytesIO(files["03_alignment_demo/matching.csv"]), float_precision="round_trip")
    assert read.loc[0, "top-1"] == matching.loc[0, "top-1"] and 0 < read.loc[0, "top-1"] <= 1
    trials = pd.read_csv(io.BytesIO(files["03_alignment_demo/trials_pixels-32-final.csv"]))
    assert len(trials) >= 2 and trials["epsilon"].between(1e-3, 1e-1).all()  # the study's n_eps and ε range
    assert summary.n_tables == N_TABLES == sum(name.endswith(".csv") and name != "scoreboard.csv" for name in files)
    assert "scoreboard.csv" in files  # the study's scoreboard beside its steps' tables, not counted among them


@pytest.mark.slow
def test_methods_md_names_every_setting_the_fingerprints_and_the_versions(study, isolated_cache, html_only) -> None:
    _, files = html_only
    methods = files["methods.md"].decode()
    alignment = section(methods, "3. alignment · demo")
    for name, value in study.steps[2].settings.items():
        written = (", ".join(map(str, value)) if isinstance(value, tuple) else
                   str(value).lower() if isinstance(value, bool) else str(value))
        assert f"| {name} | {written} |" in alignment, name
    for row in ("| eps_range | 0.001, 0.1 |", "| metric | euclidean |", "| normalise | true |", "| anneal | false |",
                "| n_eps | 2 |", "| n_inits | 1 |", "| source | human · demo human |"):
        assert row in alignment
    assert study.image_sets["demo"].fingerprint in methods and "export test" in methods
    versions = library_versions()
    for package in ("torch", "numpy"):
        assert f"| {package} | {versions[package]} | {versions[package]} |" in methods
    for status in study_status(study, isolated_cache)[:RUN]:
        assert f"{STEP_KIND}/{status.key}" in methods  # where each result lies in the cache
    assert "| `pixels:32` | `none` |" in methods  # the encoder and its weights identity
    for label in ("1. affect · demo", "2. similarity · demo", "3. alignment · demo"):
        assert "Not drawn" not in section(methods, label), label  # the geometry and the RDM pair are drawn now
    assert "rdms_pixels-32-final (html)" in alignment and "error_rose (html)" in section(methods, "1. affect · demo")
    assert files["export_test.toml"].decode() == study.path.read_text()


@pytest.mark.slow
def test_a_step_not_run_is_listed_as_not_run(html_only) -> None:
    _, files = html_only
    probes = section(files["methods.md"].decode(), "4. probes · demo")
    assert "**Not run** (pending)" in probes and "| scheme | loto |" in probes
    assert not any(name.startswith("04_") for name in files)


@pytest.mark.slow
def test_every_step_has_its_figures_as_html_with_provenance(html_only) -> None:
    summary, files = html_only
    assert summary.n_figures == len(FIGURES) == sum(name.endswith(".html") for name in files)
    for stem in FIGURES:
        html = files[f"{stem}.html"]
        assert b"plotly" in html and b'<script type="application/json" id="provenance">' in html
    assert not any(name.endswith((".png", ".svg", ".pdf")) for name in files)
    assert "Chromium was not found" in summary.note and "Chromium was not found" in files["methods.md"].decode()
    provenance = json.loads(files["03_alignment_demo/provenance.json"])
    assert provenance["parameters"]["metric"] == "euclidean" and provenance["features"][0]["encoder"] == "pixels:32"


@pytest.mark.slow
def test_plotly_js_is_written_once_and_every_html_loads_it_by_a_relative_path(html_only) -> None:
    _, files = html_only
    shared = plotlyjs_bytes()
    assert [name for name in files if name.endswith(".js")] == [PLOTLYJS_FILE] and files[PLOTLYJS_FILE] == shared
    banner = shared[:shared.index(b"*/")]  # "/**\n* plotly.js v4.1.1\n* Copyright …"
    pages = {name: html for name, html in files.items() if name.endswith(".html")}
    for name, html in pages.items():
        sources = re.findall(rb'<script[^>]*\ssrc="([^"]*)"', html)
        assert sources == [f"../{PLOTLYJS_FILE}".encode()], (name, sources)
        assert posixpath.normpath(posixpath.join(posixpath.dirname(name), sources[0].decode())) == PLOTLYJS_FILE
        assert banner not in html, name  # not inlined
    # Inlined, the 10 figures held 10 copies of plotly.js (4.8 MB each); now all of them weigh less than one.
    assert len(pages) == len(FIGURES) and sum(map(len, pages.values())) < len(shared), sum(map(len, pages.values()))


@pytest.mark.slow
def test_the_affect_geometry_is_drawn_from_the_stored_predictions_without_fitting(ran, isolated_cache, tmp_path,
                                                                                   monkeypatch) -> None:
    def no_fit(*args, **kwargs):
        raise AssertionError("the export fitted a probe")

    monkeypatch.setattr(affect_report, "cross_validated_predictions", no_fit)
    results = open_context(ran, isolated_cache).results
    before = results.entries(PREDICTIONS_KIND)
    started = time.perf_counter()
    summary, files = exported(dataclasses.replace(ran, steps=ran.steps[:1]), isolated_cache, tmp_path / "a.zip")
    seconds = time.perf_counter() - started
    assert results.entries(PREDICTIONS_KIND) == before and len(before) >= 1  # read, none fitted or stored again
    assert summary.n_figures == len(AFFECT_FIGURES) and seconds < 30, seconds
    for stem in AFFECT_FIGURES:
        assert b"plotly" in files[f"{stem}.html"], stem
    assert "Not drawn" not in section(files["methods.md"].decode(), "1. affect · demo")


@pytest.mark.slow
def test_manifolds_class_distances_and_pair_histograms_are_drawn_from_the_view_features(isolated_cache,
                                                                                      tmp_path) -> None:
    toml = tmp_path / "manifolds.toml"
    toml.write_text(HEADER + '\n[[steps]]\nanalysis = "manifolds"\nimages_per_class = 4\nm = 4\n')
    study = load_study(toml, isolated_cache)
    assert [status.state for status in run_study(study, isolated_cache, LocalEngine())] == ["done"]
    summary, files = exported(study, isolated_cache, tmp_path / "a.zip")
    for stem in ("class_distances_pixels-32-final", "pair_histograms", "map_pixels-32-final", "radii"):
        assert b"plotly" in files[f"01_manifolds_demo/{stem}.html"], stem
    assert "Not drawn" not in section(files["methods.md"].decode(), "1. manifolds · demo")


@pytest.mark.slow
def test_static_formats_carry_the_provenance(ran, isolated_cache, tmp_path) -> None:
    if not static_export_status()[0]:
        pytest.skip("no Chromium/kaleido here: PNG, SVG and PDF cannot be rendered")
    summary, files = exported(dataclasses.replace(ran, steps=ran.steps[:1]), isolated_cache, tmp_path / "a.zip",
                              static=True)
    assert summary.note == "" and summary.n_figures == len(AFFECT_FIGURES)
    png = files["01_affect_demo/r2.png"]
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert json.loads(Image.open(io.BytesIO(png)).text["provenance"])["dataset"] == "demo"
    assert b'<metadata id="provenance">' in files["01_affect_demo/r2.svg"]
    assert files["01_affect_demo/r2.pdf"].startswith(b"%PDF") and b"/Keywords" in files["01_affect_demo/r2.pdf"]


def test_a_study_with_no_finished_step_still_writes_methods(isolated_cache, tmp_path, capsys) -> None:
    toml, out = tmp_path / "pending.toml", tmp_path / "pending.zip"
    toml.write_text(HEADER + PROBES)
    assert main(["--cache", str(isolated_cache), "study", "export", str(toml), str(out)]) == 0
    assert f"{out}: 0 figures, 0 tables, methods.md" in capsys.readouterr().out
    with zipfile.ZipFile(out) as archive:
        assert set(archive.namelist()) == {"methods.md", "pending.toml"}
        methods = archive.read("methods.md").decode()
    assert "No step of this study has finished" in methods and "**Not run** (pending)" in methods
    assert "| scheme | loto |" in methods and "| `pixels:32` | `none` |" in methods


def test_a_failed_step_is_listed_with_its_error(study, isolated_cache, tmp_path) -> None:
    context = open_context(study, isolated_cache)
    key = study_status(study, isolated_cache)[RUN].key
    context.results.fail(STEP_KIND, key, {}, "ValueError: no categories (written by the test)")
    try:
        _, files = exported(dataclasses.replace(study, steps=study.steps[RUN:]), isolated_cache, tmp_path / "a.zip")
    finally:
        (context.results.folder(STEP_KIND, key) / FAILED_FILE).unlink()
    probes = section(files["methods.md"].decode(), "4. probes · demo")
    assert "**Not run** (failed): ValueError: no categories (written by the test)" in probes


@pytest.mark.slow
def test_the_command_line_exports(ran, study_file, isolated_cache, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(study_export, "static_export_status", lambda: NO_CHROMIUM)
    out = tmp_path / "cli.zip"
    assert main(["--cache", str(isolated_cache), "study", "export", str(study_file), str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{out}: {len(FIGURES)} figures, {N_TABLES} tables, methods.md (figures as HTML only" in printed
    with zipfile.ZipFile(out) as archive:
        assert "methods.md" in archive.namelist() and "03_alignment_demo/matching.csv" in archive.namelist()
