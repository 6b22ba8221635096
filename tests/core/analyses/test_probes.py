"""Layer-probe curves: summaries with known answers, category probe, equality with the Affect probe."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.analyses import probes
from core.analyses.affect import cross_validated_predictions, metrics_table
from core.analyses.cv import CrossValidation
from core.analyses.probes import (ProbeSettings, ProbeTargets, category_probe, curve_summary, fold_r2,
                                  layer_probe_curves, layer_probe_table, layer_scores, normalised_depth,
                                  summary_table)
from core.data.datasets import demo
from core.encoders.registry import describe
from core.features.extract import extract
from core.features.store import FeatureStore, ResultCache
from core.figures.probes import probe_curves_figure
from core.jobs import JobCancelled
from core.progress import Progress

RNG = np.random.default_rng(3)


def test_flat_curve_has_its_centre_of_mass_in_the_middle() -> None:
    summary = curve_summary(normalised_depth(13), np.full(13, 0.4))
    assert summary.centre_of_mass == pytest.approx(0.5) and summary.late_fraction == pytest.approx(1 / 3, abs=0.01)


def test_step_at_the_end_puts_everything_late() -> None:
    score = np.zeros(13)
    score[-1] = 0.6
    summary = curve_summary(normalised_depth(13), score)
    assert summary.late_fraction == pytest.approx(1.0) and summary.peak_depth == 1.0
    assert summary.centre_of_mass == pytest.approx(1.0)


def test_a_single_layer_has_a_peak_but_no_distribution_over_depth() -> None:
    summary = curve_summary(normalised_depth(1), np.array([0.4]))
    assert summary.peak_depth == 1.0 and np.isnan(summary.centre_of_mass) and np.isnan(summary.late_fraction)


def test_negative_scores_count_as_no_information() -> None:
    summary = curve_summary(normalised_depth(5), np.array([-0.5, 0.2, 0.2, -0.1, -3.0]))
    assert summary.peak_depth == pytest.approx(0.25) and summary.centre_of_mass == pytest.approx(0.375)
    assert np.isnan(curve_summary(normalised_depth(3), np.array([-1.0, -2.0, 0.0])).centre_of_mass)


def grouped_data(n_categories: int = 3, groups_per_category: int = 5, per_group: int = 6):
    categories = np.repeat([f"c{i}" for i in range(n_categories)], groups_per_category * per_group)
    groups = np.array([f"{c}-{i // per_group}" for i, c in enumerate(categories)])
    return categories, groups


def test_category_probe_finds_a_category_signal_and_refuses_loco() -> None:
    categories, groups = grouped_data()
    informative = (categories[:, None] == np.unique(categories)).astype(float) + RNG.normal(0, 0.3, (90, 3))
    noise = RNG.normal(size=(90, 3))
    assert category_probe(informative, categories, groups, CrossValidation("loto")).balanced_accuracy > 0.9
    assert category_probe(noise, categories, groups, CrossValidation("loto")).balanced_accuracy < 0.6
    with pytest.raises(ValueError, match="meaningless"):
        category_probe(informative, categories, groups, CrossValidation("loco"))


def test_final_layer_numbers_equal_the_affect_probe() -> None:
    categories, groups = grouped_data()
    layers = {"blocks.0": RNG.normal(size=(90, 8)), "final": RNG.normal(size=(90, 8))}
    ratings = layers["final"][:, :2] @ np.array([[1.0, 0.2], [0.3, 1.0]]) + RNG.normal(0, 0.2, (90, 2))
    curves = layer_probe_table(layers, ProbeTargets(ratings, categories, groups))
    affect = metrics_table(cross_validated_predictions(layers["final"], ratings, groups,
                                                       CrossValidation("loto"))).set_index("target")
    final = curves[curves["layer"] == "final"].set_index("probe")
    for target in ("valence", "arousal"):
        assert final.loc[target, "score"] == affect.loc[target, "r2"]
        assert (final.loc[target, "ci_lo"], final.loc[target, "ci_hi"]) == (affect.loc[target, "r2_lo"],
                                                                          affect.loc[target, "r2_hi"])
    assert list(curves["depth"].unique()) == [0.0, 1.0] and set(curves["probe"]) == {"valence", "arousal", "category"}
    assert (curves["n_folds"] == 15).all()  # LOTO: one fold per theme group
    summaries = summary_table(curves).set_index("probe")
    assert summaries.loc["valence", "peak_layer"] == "final" and summaries.loc["valence", "peak_depth"] == 1.0


def test_fold_scores_average_to_the_pooled_r2() -> None:
    categories, groups = grouped_data()
    features = RNG.normal(size=(90, 6))
    ratings = features[:, :2] + RNG.normal(0, 0.5, (90, 2))
    cv = cross_validated_predictions(features, ratings, groups, CrossValidation("loto"))
    scores, sizes = fold_r2(cv)
    pooled = metrics_table(cv)["r2"].to_numpy()
    assert scores.shape == (15, 2) and sizes.sum() == 90
    np.testing.assert_allclose(np.average(scores, axis=0, weights=sizes), pooled, atol=1e-12)


def test_category_probe_ci_brackets_the_score_and_collapses_when_perfect() -> None:
    categories, groups = grouped_data()
    separable = (categories[:, None] == np.unique(categories)).astype(float) * 10
    perfect = category_probe(separable, categories, groups, CrossValidation("loto"))
    assert perfect.balanced_accuracy == 1.0 and perfect.ci == (1.0, 1.0)
    noisy = category_probe(separable / 10 + RNG.normal(0, 0.7, (90, 3)), categories, groups, CrossValidation("loto"))
    assert noisy.ci[0] <= noisy.balanced_accuracy <= noisy.ci[1] and noisy.ci[1] - noisy.ci[0] > 0.05


def test_affect_probe_needs_ratings() -> None:
    categories, groups = grouped_data()
    with pytest.raises(ValueError, match="no valence/arousal"):
        layer_scores(RNG.normal(size=(90, 3)), ProbeTargets(None, categories, groups), ProbeSettings(), "affect")


@pytest.fixture(scope="module")
def small_demo(isolated_cache: Path):
    image_set = demo(isolated_cache)
    return image_set.subset(np.arange(0, len(image_set), 4))  # 96 images, every theme group of 8 keeps 2


def test_cached_scores_are_never_refit_and_a_new_encoder_computes_only_itself(small_demo, tmp_path: Path,
                                                                              monkeypatch) -> None:
    store = FeatureStore(tmp_path / "features")
    results = ResultCache(tmp_path / "results")
    settings = ProbeSettings(scheme="kfold", category_scheme="kfold", n_splits=3)
    for spec in ("pixels:8", "bundled:efficientnet_lite0"):
        extract(small_demo, describe(spec), "all", store)
    fits = []
    real_layer_scores = probes.layer_scores
    monkeypatch.setattr(probes, "layer_scores",
                        lambda *args, **kwargs: fits.append(args[-1]) or real_layer_scores(*args, **kwargs))
    first = layer_probe_curves(small_demo, [describe("pixels:8")], store, settings=settings, results=results)
    assert len(fits) == 2  # one layer x (affect, category)
    both = layer_probe_curves(small_demo, [describe("pixels:8"), describe("bundled:efficientnet_lite0")], store, settings=settings,
                              results=results)
    assert len(fits) == 2 + 2 * 9  # only the added encoder's nine layers were fitted
    pd.testing.assert_frame_equal(both[both["encoder"] == "pixels:8"].reset_index(drop=True), first)
    bundled = both[both["encoder"] == "bundled:efficientnet_lite0"]
    assert list(bundled["layer"].unique()) == ["stem", *(f"blocks.{i}" for i in range(7)), "final"]
    assert bundled["depth"].min() == 0.0 and bundled["depth"].max() == 1.0 and (bundled["n_layers"] == 9).all()
    layer_probe_curves(small_demo, [describe("pixels:8")], store, settings=ProbeSettings(scheme="kfold", n_splits=3),
                       results=results)  # a new category scheme refits only the category probe
    assert fits[-1] == "category" and len(fits) == 2 + 2 * 9 + 1


def test_curves_refuse_encoders_with_layers_not_extracted(small_demo, tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "features")
    extract(small_demo, describe("bundled:efficientnet_lite0"), ["final"], store)
    with pytest.raises(ValueError, match=r"stem, blocks.0.*not extracted yet"):
        layer_probe_curves(small_demo, [describe("bundled:efficientnet_lite0")], store)


def test_se_band_is_the_fold_sd_over_root_n_folds() -> None:
    curves = pd.DataFrame({"encoder": "e", "layer": ["a", "b"], "layer_index": [0, 1], "depth": [0.0, 1.0],
                           "probe": "valence", "score": [0.1, 0.3], "ci_lo": [0.0, 0.2], "ci_hi": [0.2, 0.4],
                           "fold_sd": [0.8, 0.4], "n_folds": [16, 4]})
    widths = {}
    for band in ("fold_se", "fold_sd", "ci"):
        fill = next(trace for trace in probe_curves_figure(curves, band=band).data if trace.fill == "toself")
        upper = np.asarray(fill.y[:2])  # the band is drawn along its upper edge first
        widths[band] = upper - curves["score"].to_numpy()
    np.testing.assert_allclose(widths["fold_se"], [0.2, 0.2])
    np.testing.assert_allclose(widths["fold_sd"], [0.8, 0.4])
    np.testing.assert_allclose(widths["ci"], [0.1, 0.1])
    assert not [trace for trace in probe_curves_figure(curves, band="none").data if trace.fill == "toself"]


def test_row_span_newton_fit_is_the_plain_logistic_regression() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    features = RNG.normal(size=(60, 300))  # wider than tall, as pixels or a 1280-d embedding on a small set
    labels = np.repeat(["a", "b", "c"], 20)
    features[labels == "a", :5] += 1.0
    plain = LogisticRegression(max_iter=10_000, tol=1e-10).fit(features, labels)
    spanned = make_pipeline(probes.RowSpanProjection(), LogisticRegression(solver="newton-cholesky", tol=1e-10))
    spanned.fit(features, labels)
    held_out = RNG.normal(size=(15, 300))
    assert spanned[0].basis_.shape == (300, 60)
    np.testing.assert_allclose(spanned.predict_proba(held_out), plain.predict_proba(held_out), atol=1e-5)


@pytest.mark.parametrize("probe", ["affect", "category"])
def test_a_fit_reports_every_fold_and_the_same_numbers_as_without_a_report(probe: str) -> None:
    """A fit of K folds moves K times (a wide layer's LOTO fit was one silent step of minutes); the report only
    watches: the scores are bit-identical with and without it."""
    categories, groups = grouped_data()
    features = RNG.normal(size=(90, 40))
    ratings = features[:, :2] + RNG.normal(0, 0.5, (90, 2))
    targets, settings = ProbeTargets(ratings, categories, groups), ProbeSettings("loto", "gkfold", 4)
    reports = []
    watched = layer_scores(features, targets, settings, probe, progress=reports.append)
    folds = 15 if probe == "affect" else 4  # LOTO: one fold per theme group; grouped K-fold: K
    assert len(reports) >= folds and [report.done for report in reports] == list(range(folds + 1))
    assert {report.total for report in reports} == {folds} and reports[-1].done == reports[-1].total
    assert watched == layer_scores(features, targets, settings, probe)  # dataclass equality: every float exactly


def test_a_cancelled_run_keeps_its_fits_and_reports_only_the_fits_it_computes(small_demo, tmp_path: Path) -> None:
    store, results = FeatureStore(tmp_path / "features"), ResultCache(tmp_path / "results")
    spec = "pixels:8"
    extract(small_demo, describe(spec), "all", store)
    settings = ProbeSettings(scheme="kfold", category_scheme="kfold", n_splits=3)
    assert probes.pending_fits(small_demo, describe(spec), settings=settings, results=results) == [("final", "affect"),
                                                                                          ("final", "category")]
    reports = []

    def cancel_after_the_first_fit(progress: Progress) -> None:
        reports.append(progress)
        if progress.done == 3:
            raise JobCancelled("stop")

    with pytest.raises(JobCancelled):
        probes.encoder_curves(small_demo, describe(spec), store, settings=settings, results=results,
                              progress=cancel_after_the_first_fit)
    # 2 fits of 3 folds each: every fold counts, the fit's last once it is stored (a cancel there keeps it)
    assert reports == [Progress(0, 6, "starting"), Progress(0, 6, "fit 1/2: final · affect · fold 0/3"),
                       Progress(1, 6, "fit 1/2: final · affect · fold 1/3"),
                       Progress(2, 6, "fit 1/2: final · affect · fold 2/3"), Progress(3, 6, "fit 1/2: final · affect")]
    assert probes.pending_fits(small_demo, describe(spec), settings=settings, results=results) == [("final", "category")]
    reports.clear()
    curves = probes.encoder_curves(small_demo, describe(spec), store, settings=settings, results=results,
                                   progress=reports.append)
    # the affect fit came from the cache
    assert reports[0] == Progress(0, 3, "starting") and reports[-1] == Progress(3, 3, "fit 1/1: final · category")
    assert [report.done for report in reports] == [0, 0, 1, 2, 3]
    assert list(curves["probe"]) == ["valence", "arousal", "category"] and (curves["depth"] == 1.0).all()
    assert probes.pending_fits(small_demo, describe(spec), settings=settings, results=results) == []
    key = probes.fit_rate_key(small_demo, spec, [("final", "category")], settings)
    assert key == f"probe-folds|demo|96|{spec}|auto|category:kfold|3"  # seconds per fold (was per fit: a new key)


def test_a_single_layer_encoder_sits_at_depth_one_on_a_zero_to_one_axis() -> None:
    curves = pd.DataFrame({"encoder": "pixels:32", "layer": "final", "layer_index": 0, "depth": normalised_depth(1),
                           "probe": "valence", "score": [0.2], "ci_lo": [0.1], "ci_hi": [0.3], "fold_sd": [0.1],
                           "n_folds": [5]})
    figure = probe_curves_figure(curves, x="depth")
    assert list(figure.data[-1].x) == [1.0]
    low, high = figure.layout.xaxis.range
    assert -0.05 < low < 0 and 1 < high < 1.05  # plotly's own range for a lone point at 1 was [0, 2]
    assert list(probe_curves_figure(curves, x="layer_index").layout.xaxis.range) == pytest.approx([-0.04, 1.04])
