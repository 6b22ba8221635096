"""The scoreboard of a study reads its stored steps unchanged: every stored number sits in its cell, a failed step's
cells say failed (with the error), a step never run says missing; known answers on the demo (GWOT top-1 vs the demo
human: pixels:32 far above pixels:1); paired tests on the stored resamples; the CLI's CSV, JSON and LaTeX."""
from __future__ import annotations

import contextlib
import io
import json
import tomllib
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scipy.stats import spearmanr

from core.analyses.rank_stability import kendalls_w
from core.analyses.scoreboard import (Measure, Scoreboard, agreement, paired_test, paradigm_of, per_layer_board,
                                      percentile_ci, stability, versus)
from core.cli import main
from core.studies.scoreboard_nulls import compute_nulls, stored_nulls
from core.studies.run import STEP_KIND, open_context, step_key, study_status
from core.studies.board import LayerRule
from core.studies.scoreboard import dataset_scoreboard, stored_steps, study_scoreboard
from core.data.datasets import demo
from core.studies.spec import StudyError, load_study
from core.encoders.catalogue import CATALOGUE, PARADIGMS
from tests.paths import REPO_ROOT
from tests.studies import run_scoreboard_study, run_step

REFERENCE = "human · demo human"
# The small study runs once per module (about 20 s of CPU, with the demo's images); its tests are marked slow.
needs_study = pytest.mark.slow


@pytest.fixture(scope="module")
def small_study(tmp_path_factory, isolated_cache):
    return run_scoreboard_study(tmp_path_factory.mktemp("scoreboard"), isolated_cache)


@pytest.fixture(scope="module")
def stored(small_study, isolated_cache):
    """(study, board, analysis -> its stored tables)."""
    study = load_study(small_study, isolated_cache)
    context = open_context(study, isolated_cache)
    tables = {}
    for step in study.steps:
        found = context.results.get(STEP_KIND, step_key(step, context))
        tables[step.analysis] = {name: found.table(name) for name in found.table_names}
    return study, study_scoreboard(study, isolated_cache), tables


def _cell(board, model, measure):
    cell = board.cell(model, measure)
    assert cell["status"] == "ok", (model, measure, cell["error"])
    return cell


@needs_study
def test_every_stored_number_is_its_cell_unchanged(stored):
    study, board, tables = stored
    checked = 0
    for row in tables["affect"]["metrics"].to_dict("records"):
        cell = _cell(board, row["model"].removesuffix(" [final]"), f"affect_r2_{row['scheme']}_{row['target']}")
        assert (cell["value"], cell["ci_low"], cell["ci_high"]) == (row["r2"], row["r2_lo"], row["r2_hi"])
        checked += 1
    metrics = tables["affect"]["metrics"].set_index(["model", "scheme", "target"])["r2"]
    for spec in study.encoders:
        drop = metrics[(f"{spec} [final]", "loto", "valence")] - metrics[(f"{spec} [final]", "loco", "valence")]
        assert _cell(board, spec, "affect_r2_drop_valence")["value"] == drop
    for row in tables["affect"]["measures"].to_dict("records"):
        assert _cell(board, row["model"].removesuffix(" [final]"), "affect_plv")["value"] == row["plv"]
        assert _cell(board, row["model"].removesuffix(" [final]"), "affect_occupancy_entropy")["value"] == \
            row["trajectory_entropy"]
    pairs = tables["similarity"]["pairs"]
    for row in pairs[pairs["column"] == REFERENCE].to_dict("records"):
        if row["row"] != REFERENCE:
            cell = _cell(board, row["row"].removesuffix(" · final"), f"{row['measure']} vs {REFERENCE}")
            assert (cell["value"], cell["ci_low"], cell["ci_high"]) == (row["value"], row["ci_low"], row["ci_high"])
            checked += 1
    for row in tables["alignment"]["matching"].to_dict("records"):
        spec = row["target"].removesuffix(" · final")
        assert _cell(board, spec, f"gwot_top1 vs {REFERENCE}")["value"] == row["top-1"]
        assert _cell(board, spec, f"gwot_category vs {REFERENCE}")["value"] == row["category"]
        checked += 2
    for row in tables["manifolds"]["metrics"].to_dict("records"):
        for column in ("uniformity", "view_alignment", "alpha"):
            cell = board.cell(row["encoder"].removesuffix(" · final"), f"manifold_{column}")
            if np.isnan(row[column]):  # stored as undefined (pixels:1's 3 features have no power law): n/a
                assert cell["status"] == "n/a" and np.isnan(cell["value"]) and "no finite value" in cell["error"]
            else:
                assert cell["status"] == "ok" and cell["value"] == row[column]
            checked += 1
    assert checked == 8 + 4 + 4 + 6
    assert set(board.cells["status"]) <= {"ok", "n/a"}
    # the export table carries the same numbers, a row per model × reference, with _ci_low / _ci_high / _status
    table = board.table().set_index(["model", "reference"])
    assert table.loc[("pixels:32", REFERENCE), "gwot_top1"] == \
        board.cell("pixels:32", f"gwot_top1 vs {REFERENCE}")["value"]
    assert table.loc[("pixels:1", REFERENCE), "cka_linear_ci_low"] == \
        board.cell("pixels:1", f"cka_linear vs {REFERENCE}")["ci_low"]
    assert set(table["paradigm"]) == {"control"}


@needs_study
def test_known_answer_pixels32_matches_the_demo_human_far_better_than_pixels1(stored):
    _, board, _ = stored
    top1 = {spec: board.cell(spec, f"gwot_top1 vs {REFERENCE}")["value"] for spec in ("pixels:32", "pixels:1")}
    assert top1["pixels:32"] > 0.6 and top1["pixels:32"] > top1["pixels:1"] + 0.3, top1
    measure = board.measures[f"gwot_top1 vs {REFERENCE}"]
    assert measure.higher_better and measure.chance == pytest.approx(1 / 384)


@needs_study
def test_paired_test_uses_the_stored_resamples(stored, isolated_cache):
    study, board, _ = stored
    measure = f"rsa_spearman vs {REFERENCE}"
    context = open_context(study, isolated_cache)
    meta = context.results.get(STEP_KIND, step_key(study.steps[1], context)).meta
    matrix = context.similarity.get(meta["matrix_key"])
    m, column = matrix.measures.index("rsa_spearman"), matrix.columns.index(REFERENCE)
    first, second = (matrix.resamples[m, matrix.rows.index(f"{spec} · final"), column] for spec in ("pixels:32", "pixels:1"))
    result = paired_test(board, measure, "pixels:32", "pixels:1")
    assert (result.ci_low, result.ci_high) == pytest.approx(tuple(np.percentile(first - second, [2.5, 97.5])))
    assert result.difference == pytest.approx(board.cell("pixels:32", measure)["value"]
                                              - board.cell("pixels:1", measure)["value"])
    assert result.n_bootstrap == 20
    assert paired_test(board, measure, "pixels:1", "pixels:32").difference == pytest.approx(-result.difference)
    ranks = stability(board, measure).table()
    # every resample ranks pixels:32 first exactly when its resampled RSA is higher
    assert ranks.loc["pixels:32", "share_first"] == pytest.approx(np.mean(first >= second))
    assert ranks.loc["pixels:1", "share_first"] == pytest.approx(np.mean(second >= first))
    with pytest.raises(KeyError, match="no bootstrap resamples"):
        paired_test(board, f"gwot_top1 vs {REFERENCE}", "pixels:32", "pixels:1")


@needs_study
def test_permutation_nulls_of_similarity_cells_are_stored_beside_them(stored, isolated_cache):
    study, board, _ = stored
    assert stored_nulls(study, isolated_cache, n_perm=50, seed=3) is None  # never computed: nothing is shown
    nulls = compute_nulls(study, isolated_cache, n_perm=50, seed=3)
    assert len(nulls) == 2 * 2  # two models × two measures vs the one reference
    for row in nulls.to_dict("records"):  # the null's observed value is the stored cell, computed again
        assert row["observed"] == pytest.approx(board.cell(row["model"], row["measure"])["value"], abs=1e-9)
    rsa = nulls.set_index(["model", "measure"]).loc[("pixels:32", f"rsa_spearman vs {REFERENCE}")]
    assert rsa["null_p"] == pytest.approx(1 / 51) and rsa["beats_null"] and rsa["null_q95"] < rsa["observed"]
    again = stored_nulls(study, isolated_cache, n_perm=50, seed=3)
    pd.testing.assert_frame_equal(again, nulls, check_dtype=False)
    table = replace(board, nulls=again).table().set_index(["model", "reference"])
    assert table.loc[("pixels:32", REFERENCE), "rsa_spearman_null_p"] == rsa["null_p"]
    assert "gwot_top1_null_p" not in table.columns  # no null for a GWOT cell: no column


@needs_study
def test_a_failed_step_shows_as_failed_and_a_pending_one_as_missing(small_study, isolated_cache, tmp_path):
    text = small_study.read_text() + '\n[[steps]]\nanalysis = "inductive_bias"\ncorruptions = ["glo_2"]\n' \
                                      '\n[[steps]]\nanalysis = "manifolds"\nm = 3\nimages_per_class = 3\n'
    path = tmp_path / "with_failure.toml"
    path.write_text(text)
    study = load_study(path, isolated_cache)
    context = open_context(study, isolated_cache)
    failing = study.steps[4]
    context.results.fail(STEP_KIND, step_key(failing, context), {"label": failing.label}, "ValueError: boom at glo_2")
    try:
        board = study_scoreboard(study, isolated_cache)
        failed = board.cells[board.cells["measure"] == "bias_linear_drop_glo_2"]
        assert list(failed["status"]) == ["failed", "failed"]
        assert set(failed["error"]) == {"ValueError: boom at glo_2"}
        row = board.table().set_index("model").loc["pixels:1"]
        assert row["bias_knn_drop_glo_2_status"] == "failed: ValueError: boom at glo_2" and row["status"] == "failed"
        # the second manifolds step never ran, but the first one's cells are kept: the first stored step wins
        assert board.cell("pixels:32", "manifold_uniformity")["status"] == "ok"
        assert [status.state for status in study_status(study, isolated_cache)][4:] == ["failed", "pending"]
    finally:
        context.results.delete(STEP_KIND, step_key(failing, context))


def test_agreement_orients_lower_is_better_measures():
    # four models; "drop" is lower-is-better and ranks them exactly in reverse of "r2": once oriented, W = 1
    r2, drop, noise = [0.1, 0.2, 0.3, 0.4], [0.9, 0.5, 0.3, 0.0], [0.3, 0.1, 0.4, 0.2]
    cells = pd.DataFrame([{"model": f"m{i}", "paradigm": "other", "measure": measure, "layer": "final", "value": value,
                           "ci_low": np.nan, "ci_high": np.nan, "status": "ok", "error": "", "step": "1",
                           "analysis": "x"}
                          for measure, values in (("r2", r2), ("drop", drop), ("noise", noise))
                          for i, value in enumerate(values)])
    measures = {"r2": Measure("r2", "R²", "", True, "x"), "drop": Measure("drop", "drop", "", False, "x"),
                "noise": Measure("noise", "noise", "", True, "x")}
    board = Scoreboard(cells, measures, "rule")
    w, rho = agreement(Scoreboard(cells[cells["measure"] != "noise"], {k: measures[k] for k in ("r2", "drop")}, "r"))
    assert w == pytest.approx(1.0)
    w, rho = agreement(board)
    oriented_scores = np.column_stack([r2, -np.asarray(drop), noise])
    assert w == pytest.approx(kendalls_w(oriented_scores))
    assert rho.loc["r2", "drop"] == pytest.approx(1.0)
    assert rho.loc["r2", "noise"] == pytest.approx(spearmanr(r2, noise).statistic)


def test_export_table_is_one_row_per_model_and_reference():
    # two references: a reference measure splits by its Measure.reference, a measure of the model alone repeats
    measures = [versus("rsa", "human · a", "RSA", "", True, "x"), versus("rsa", "human · b", "RSA", "", True, "x"),
                versus("top1", "human · b", "top-1", "", True, "x"), Measure("plv", "PLV", "", False, "y")]
    cells = [("m1", "rsa vs human · a", 0.1, "ok"), ("m1", "rsa vs human · b", 0.2, "ok"),
             ("m1", "top1 vs human · b", 0.5, "ok"), ("m1", "plv", 0.7, "ok"), ("m2", "rsa vs human · a", 0.3, "ok"),
             ("m2", "rsa vs human · b", np.nan, "missing"), ("m2", "plv", np.nan, "failed")]
    table = pd.DataFrame([{"model": model, "paradigm": "other", "measure": measure, "layer": "", "value": value,
                           "ci_low": value - 0.05, "ci_high": value + 0.05, "status": status,
                           "error": "boom" if status == "failed" else "", "step": "1", "analysis": "x"}
                          for model, measure, value, status in cells])
    board = Scoreboard(table, {measure.name: measure for measure in measures}, "rule")
    assert board.measures["rsa vs human · a"].base == "rsa" and board.measures["plv"].base == "plv"
    assert board.references == ["human · a", "human · b"]
    out = board.table()
    assert list(zip(out["model"], out["reference"])) == [("m1", "human · a"), ("m1", "human · b"),
                                                         ("m2", "human · a"), ("m2", "human · b")]
    assert list(out.columns) == ["model", "paradigm", "reference", "status"] + [
        f"{base}{suffix}" for base in ("rsa", "top1", "plv") for suffix in ("", "_ci_low", "_ci_high", "_status")]
    indexed = out.set_index(["model", "reference"])
    assert list(indexed["rsa"].iloc[:3]) == [0.1, 0.2, 0.3] and indexed.loc[("m1", "human · b"), "rsa_ci_high"] == 0.25
    assert list(indexed["plv"].iloc[:2]) == [0.7, 0.7]  # repeated on each of the model's rows
    assert indexed.loc[("m1", "human · a"), "top1_status"] == "n/a" and np.isnan(indexed.loc[("m1", "human · a"),
                                                                                               "top1"])
    assert list(indexed["status"]) == ["ok", "ok", "failed", "failed"]
    assert indexed.loc[("m2", "human · b"), "rsa_status"] == "missing"
    assert indexed.loc[("m2", "human · a"), "plv_status"] == "failed: boom"
    # no measure against a reference: one row per model, reference ""
    alone = Scoreboard(table[table["measure"] == "plv"], {"plv": measures[3]}, "rule").table()
    assert list(alone["reference"]) == ["", ""] and list(alone["model"]) == ["m1", "m2"]
    # the paper table stays wide: a row per model, a column per measure (reference in its label)
    assert "RSA vs a" in board.latex() and "RSA vs b" in board.latex()


def test_layer_rule_and_paradigms():
    rule = LayerRule("final")
    assert rule.pick(["blocks.0", "blocks.1", "final"]) == "final"
    assert rule.pick(["blocks.0", "blocks.1"]) == "blocks.1"  # no final: the deepest stored layer
    assert LayerRule("blocks.0").pick(["blocks.0", "final"]) == "blocks.0"
    assert "never" in rule.sentence
    assert paradigm_of("bundled:efficientnet_lite0") == "supervised"
    assert paradigm_of("open_clip:ViT-B-16@openai") == "CLIP"
    assert paradigm_of("untrained:timm:vit_base_patch16_224") == "control"
    assert paradigm_of("pixels:32 · final") == "control"
    assert paradigm_of("human · demo human") == "reference"
    assert paradigm_of("timm:some_other_model") == "other"


@needs_study
def test_cli_writes_csv_latex_and_json(small_study, stored, tmp_path):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["study", "scoreboard", str(small_study), "--csv", str(tmp_path / "board.csv"),
                     "--latex", str(tmp_path / "board.tex"), "--json"])
    assert code == 0
    records = json.loads(out.getvalue())
    # the shape: one row per encoder × reference (the demo has one reference), a column per measure named
    # without its reference, _ci_low / _ci_high, a status per row and per measure
    assert [(record["model"], record["reference"]) for record in records] == [("pixels:32", REFERENCE),
                                                                              ("pixels:1", REFERENCE)]
    csv = pd.read_csv(tmp_path / "board.csv")
    assert list(zip(csv["model"], csv["reference"])) == [("pixels:32", REFERENCE), ("pixels:1", REFERENCE)]
    assert list(csv.columns[:4]) == ["model", "paradigm", "reference", "status"] and (csv["status"] == "ok").all()
    assert not any(" vs " in column for column in csv.columns)
    assert {"cka_linear_ci_low", "cka_linear_ci_high", "gwot_top1_status", "affect_plv", "manifold_uniformity"} \
        <= set(csv.columns)
    assert (csv["gwot_top1_status"] == "ok").all()
    # every cell value equals the stored number (the JSON exactly, the CSV to its text round trip)
    study, _, tables = stored
    by_json = {(record["model"], record["reference"]): record for record in records}
    pairs = tables["similarity"]["pairs"]
    checked = 0
    for row in pairs[(pairs["column"] == REFERENCE) & (pairs["row"] != REFERENCE)].to_dict("records"):
        record = by_json[(row["row"].removesuffix(" · final"), REFERENCE)]
        assert (record[row["measure"]], record[f"{row['measure']}_ci_low"], record[f"{row['measure']}_ci_high"]) \
            == (row["value"], row["ci_low"], row["ci_high"])
        checked += 1
    for row in tables["alignment"]["matching"].to_dict("records"):
        record = by_json[(row["target"].removesuffix(" · final"), REFERENCE)]
        assert (record["gwot_top1"], record["gwot_category"]) == (row["top-1"], row["category"])
        checked += 1
    for row in tables["affect"]["measures"].to_dict("records"):
        assert by_json[(row["model"].removesuffix(" [final]"), REFERENCE)]["affect_plv"] == row["plv"]
        checked += 1
    assert checked == 4 + 2 + 2
    for column in ("gwot_top1", "cka_linear", "cka_linear_ci_low", "affect_plv"):
        assert csv[column].tolist() == pytest.approx([record[column] for record in records], rel=1e-12)
    latex = (tmp_path / "board.tex").read_text()  # the paper table stays wide: a row per model
    cka = csv.set_index("model").loc["pixels:32"]
    assert f"{cka['cka_linear']:.3f} [{cka['cka_linear_ci_low']:.3f}, {cka['cka_linear_ci_high']:.3f}]" in latex
    assert "\\begin{tabular}" in latex and "fixed layer" in latex


@needs_study
def test_study_export_holds_the_scoreboard(small_study, isolated_cache, tmp_path):
    from core.studies.export import export_study

    study = load_study(small_study, isolated_cache)
    export_study(study, isolated_cache, tmp_path / "out.zip")
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        exported = pd.read_csv(io.BytesIO(archive.read("scoreboard.csv")))
        latex = archive.read("scoreboard.tex").decode()
    table = study_scoreboard(study, isolated_cache).table()
    assert list(exported["model"]) == list(table["model"]) and list(exported["reference"]) == list(table["reference"])
    assert exported["gwot_top1"].tolist() == pytest.approx(table["gwot_top1"].tolist(), abs=1e-12)
    assert "\\begin{tabular}" in latex


def test_scoreboard_table_in_a_study_file(tmp_path, isolated_cache):
    path = tmp_path / "s.toml"
    path.write_text('datasets = ["demo"]\nencoders = ["pixels:8"]\n[scoreboard]\nlayer = "final"\n'
                    '[[steps]]\nanalysis = "manifolds"\n')
    assert load_study(path, isolated_cache).scoreboard == {"layer": "final"}
    path.write_text('datasets = ["demo"]\nencoders = ["pixels:8"]\n[scoreboard]\nbest = true\n'
                    '[[steps]]\nanalysis = "manifolds"\n')
    with pytest.raises(StudyError, match=r"\[scoreboard\] takes layer"):
        load_study(path, isolated_cache)


def test_things_paradigms_study_validates_up_to_its_image_path(isolated_cache):
    path = REPO_ROOT / "studies" / "things_paradigms.toml"
    with pytest.raises(StudyError, match=r"things_paradigms\.toml:11: datasets: .*THINGS root /data/things") as refused:
        load_study(path, isolated_cache)
    if not Path("/data/things").exists():  # what the Studies page tells a user to set
        assert (refused.value.key, refused.value.missing_path) == ("datasets", Path("/data/things"))
    data = tomllib.loads(path.read_text())
    # every catalogue encoder of the four paradigms and the controls is a GWOT target against the human embedding
    assert data["steps"][0]["targets"] == [f"{entry.spec} · final" for entry in CATALOGUE]
    assert {value.partition(":")[2] for value in data["encoders"]} == set(PARADIGMS)
    assert data["scoreboard"] == {"layer": "final"}
    assert tomllib.loads((REPO_ROOT / "studies" / "oasis_clip_vs_in21k.toml").read_text())["scoreboard"] == \
        {"layer": "final"}


@pytest.mark.slow
def test_the_demo_study_end_to_end_keeps_its_known_answers(isolated_cache):
    """studies/demo.toml run here (about a minute on two cores): on GWOT top-1 against the demo's human embedding,
    pixels:32 (which the embedding is built from) ranks far above the ImageNet EfficientNet; every cell of a stored
    step is ok or n/a, and the models the demo leaves out of a step are missing, not failed."""
    from core.studies.engines import LocalEngine
    from core.studies.run import run_study

    study = load_study(REPO_ROOT / "studies" / "demo.toml", isolated_cache)
    assert all(status.state == "done" for status in run_study(study, isolated_cache, LocalEngine()))
    board = study_scoreboard(study, isolated_cache)
    top1 = {spec: board.cell(spec, f"gwot_top1 vs {REFERENCE}")["value"] for spec in study.encoders}
    assert top1["pixels:32"] > 0.5 > 0.1 > top1["bundled:efficientnet_lite0"], top1
    lab = [model for model in board.models if model.startswith("lab:")]  # the lab step's runs: a row each
    assert board.models == ["bundled:efficientnet_lite0", *lab, "pixels:32"]  # supervised first, the control last
    assert sorted(spec.split(":")[1].split("-")[0] for spec in lab) == ["clamp", "language", "simclr", "supervised"]
    for spec in lab:
        assert board.cell(spec, "lab_knn_accuracy")["status"] == "ok"
        assert 0 <= board.cell(spec, "lab_knn_accuracy")["value"] <= 1
        assert board.cell(spec, "lab_knn_accuracy")["layer"] == "epoch 2"
    assert not (board.cells["status"] == "failed").any()
    missing = board.cells[board.cells["status"] == "missing"]
    assert set(missing["model"]) == {"pixels:32"} and set(missing["analysis"]) == {"probes", "manifolds",
                                                                                   "inductive_bias"}
    assert board.cell("pixels:32", "affect_r2_loco_valence")["status"] == "ok"


def test_per_layer_cells_are_held_out_scores_never_the_in_sample_best():
    # 13 layers of pure noise per item: the best layer on all items looks good, its held-out score is ~0
    rng = np.random.default_rng(0)
    layers = [f"blocks.{index}" for index in range(12)] + ["final"]
    per_item = {(f"m{model}", "noise"): {layer: rng.normal(size=400) for layer in layers} for model in range(6)}
    measures = {"noise": Measure("noise", "noise", "", True, "x")}
    samples = {key: {layer: rng.normal(size=50) for layer in layers} for key in per_item}
    board = per_layer_board(per_item, samples, measures)
    in_sample_best = [max(np.mean(values) for values in by_layer.values()) for by_layer in per_item.values()]
    assert np.mean(in_sample_best) > 0.05  # the optimism a best-layer table would report
    assert abs(board.cells["value"].mean()) < 0.02 and (board.cells["value"] < np.array(in_sample_best)).all()
    assert "half" in board.rule
    cell = board.cell("m0", "noise")
    assert (cell["ci_low"], cell["ci_high"]) == percentile_ci(samples[("m0", "noise")][cell["layer"]])
    assert board.samples["noise"]["m0"] is not None and len(board.samples["noise"]) == 6
    fixed = per_layer_board(per_item, samples, measures, layer="final")
    assert fixed.cell("m3", "noise")["value"] == pytest.approx(np.mean(per_item[("m3", "noise")]["final"]))
    assert set(fixed.cells["layer"]) == {"final"} and "fixed in advance" in fixed.rule
    # two identical models: their rank intervals over the same resamples overlap fully
    twins = per_layer_board({("a", "noise"): per_item[("m0", "noise")], ("b", "noise"): per_item[("m0", "noise")],
                             ("c", "noise"): per_item[("m1", "noise")]},
                            {("a", "noise"): samples[("m0", "noise")], ("b", "noise"): samples[("m0", "noise")],
                             ("c", "noise"): samples[("m1", "noise")]}, measures, layer="final")
    ranks = stability(twins, "noise").table()
    assert (ranks.loc["a", ["rank_low", "rank_high"]] == ranks.loc["b", ["rank_low", "rank_high"]]).all()


def test_a_brain_step_s_cells_and_its_held_out_layer_column(kriegeskorte92, isolated_cache, tmp_path):
    path = tmp_path / "brain.toml"
    path.write_text(f'''name = "brain"
datasets = ["neural:{kriegeskorte92}"]
encoders = ["pixels:32"]
layers = "all"
[[steps]]
analysis = "brain"
reference_groups = ["hIT"]
models = ["rdm · mIT_674neurons"]
n_bootstrap = 20
''')
    from core.studies.engines import LocalEngine
    from core.studies.run import run_study

    study = load_study(path, isolated_cache)
    assert [status.state for status in run_study(study, isolated_cache, LocalEngine())] == ["done"]
    context = open_context(study, isolated_cache)
    tables = context.results.get(STEP_KIND, step_key(study.steps[0], context))
    models, best = tables.table("models").set_index("model"), tables.table("best_layers")
    board = study_scoreboard(study, isolated_cache)
    cell = _cell(board, "pixels:32", "brain vs hIT")
    row = models.loc["pixels:32 · final"]
    assert (cell["value"], cell["ci_low"], cell["ci_high"]) == (row["mean"], row["ci_low"], row["ci_high"])
    assert _cell(board, "pixels:32", "brain_normalised vs hIT")["value"] == row["ceiling_normalised"]
    held_out = _cell(board, "pixels:32", "brain_held_out vs hIT")
    assert (held_out["value"], held_out["layer"]) == (best["score"].iloc[0], best["layer"].iloc[0])
    monkey = _cell(board, "rdm · mIT_674neurons", "brain vs hIT")
    assert monkey["value"] == pytest.approx(0.3335, abs=5e-5) and monkey["paradigm"] == "reference"
    assert board.models == ["pixels:32", "rdm · mIT_674neurons"]
    assert list(board.table()["reference"]) == ["hIT", "hIT"] and "brain_held_out" in board.table()

    # permutation nulls of the brain cells: computed from the cached features, the observed value is the stored mean
    # over subjects, shown beside the cell (export table, verdicts)
    assert stored_nulls(study, isolated_cache, n_perm=50, seed=2) is None
    nulls = compute_nulls(study, isolated_cache, n_perm=50, seed=2)
    assert sorted(nulls["model"]) == ["pixels:32", "rdm · mIT_674neurons"]
    assert set(nulls["measure"]) == {"brain vs hIT"}
    for row in nulls.to_dict("records"):
        assert abs(row["observed"] - board.cell(row["model"], "brain vs hIT")["value"]) < 1e-9
    monkey_null = nulls.set_index("model").loc["rdm · mIT_674neurons"]
    assert monkey_null["null_p"] == pytest.approx(1 / 51) and monkey_null["beats_null"]
    pd.testing.assert_frame_equal(stored_nulls(study, isolated_cache, n_perm=50, seed=2), nulls, check_dtype=False)
    table = replace(board, nulls=nulls).table().set_index("model")
    assert table.loc["pixels:32", "brain_null_p"] == nulls.set_index("model").loc["pixels:32", "null_p"]

    # known answers with the per-subject (S, M) form on hIT: a model RDM equal to the subjects' mean beats its null
    # with the smallest p there is; the same RDM with its items shuffled does not
    from core.analyses.permutation_null import rsa_null
    from core.analyses.rsa import condensed

    [group] = [item for item in context.image_set(study.steps[0]).rdm_references if item.name == "hIT"]
    subjects = condensed(group.rdms)
    mean = subjects.mean(axis=0)
    exact = rsa_null(mean, subjects, method="corr", n_perm=200, seed=0)
    assert exact.p == pytest.approx(1 / 201) and exact.beats_null and exact.observed > exact.q95
    order = np.random.default_rng(5).permutation(group.rdms.shape[1])
    shuffled = condensed(group.rdms.mean(axis=0)[np.ix_(order, order)][None])[0]
    assert not rsa_null(shuffled, subjects, method="corr", n_perm=200, seed=0).beats_null


@needs_study
def test_the_dataset_scoreboard_gathers_every_stored_step_of_the_dataset(isolated_cache, tmp_path):
    """Two study files run on the demo into one cache: the dataset's scoreboard holds the cells of both, each equal to
    the stored value its study's scoreboard reads; rows are every encoder any step scored, and a model a step left
    out is missing there (with the step that would fill it)."""
    import shutil

    cache = tmp_path / "cache"  # its own: the session's cache holds other tests' studies of the demo
    shutil.copytree(demo(isolated_cache).root, cache / "demo")
    isolated_cache = cache
    small_study = run_scoreboard_study(tmp_path, cache)
    second = run_step(tmp_path, cache, "demo", "manifolds", {"m": 2, "images_per_class": 3},
                      encoders=("pixels:4",))[0].path  # a second study file: a new model on a measure of the first
    image_set = demo(cache)
    board = dataset_scoreboard(image_set, isolated_cache)
    assert {"pixels:32", "pixels:1", "pixels:4"} <= set(board.models)
    keys = {item.label: item.key for item in stored_steps(image_set, isolated_cache)}
    compared = 0
    for path in (small_study, second):
        study = load_study(path, isolated_cache)
        context = open_context(study, isolated_cache)
        own = {step_key(step, context) for step in study.steps}
        assert own <= set(keys.values())
        for cell in study_scoreboard(study, isolated_cache).cells.to_dict("records"):
            if cell["status"] not in ("ok", "n/a"):
                continue
            found = board.cell(cell["model"], cell["measure"])
            assert found["status"] == cell["status"], (cell, found)
            if keys[found["step"]] not in own:  # a newer stored step (of another test's study) fills this cell
                continue
            assert found["value"] == cell["value"] or (np.isnan(found["value"]) and np.isnan(cell["value"]))
            assert (found["ci_low"], found["ci_high"]) == (cell["ci_low"], cell["ci_high"]) or \
                np.isnan(cell["ci_low"])
            compared += 1
    assert compared >= 8 + 4 + 4 + 3  # affect, similarity, alignment of the first study, manifolds of the second
    missing = board.cell("pixels:4", "affect_r2_loto_valence")
    assert missing["status"] == "missing" and missing["error"].startswith("not in ") \
        and " affect · demo (" in missing["error"]  # the newest stored affect step (another test's study may be newer)
    # another dataset's steps are not this one's
    other = replace(image_set, fingerprint="another")
    assert dataset_scoreboard(other, isolated_cache).cells.empty
