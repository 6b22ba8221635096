"""Inductive-bias measures: known answers, no leakage across held-out themes, cached probes, real extraction."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import neighbors

from core.analyses import inductive_bias
from core.analyses.cv import CrossValidation
from core.analyses.inductive_bias import (BIAS_PRESETS, BiasSettings, clean_similarity, corruption_metrics,
                                          corruption_table, knn_probe, unrelated_similarity)
from core.data.corruptions import CLEAN, gamma, global_shuffle
from core.data.datasets import demo
from core.data.selections import per_class_subset
from core.encoders.registry import describe
from core.features.store import FeatureStore, ResultCache
from core.progress import Progress
from core.figures.inductive_bias import corruption_curves_figure, corruption_curves_table

RNG = np.random.default_rng(3)


def clustered(n_categories: int = 4, themes: int = 5, per_theme: int = 4, dims: int = 16, noise: float = 0.1):
    """Features = category prototype + noise; themes nested in categories."""
    categories = np.repeat(np.arange(n_categories), themes * per_theme).astype(str)
    groups = np.array([f"{category}-{index // per_theme % themes}" for index, category in enumerate(categories)])
    prototypes = RNG.normal(size=(n_categories, dims))
    features = prototypes[categories.astype(int)] + noise * RNG.normal(size=(len(categories), dims))
    return features, categories, groups


def test_separable_categories_give_perfect_knn_and_linear_probes() -> None:
    features, categories, groups = clustered()
    table = corruption_table({CLEAN: features}, categories, groups, BiasSettings(k=5))
    assert table.loc[0, "knn_accuracy"] == 1.0 and table.loc[0, "linear_balanced_accuracy"] == 1.0
    assert table.loc[0, "clean_similarity"] == pytest.approx(1.0) and table.loc[0, "knn_drop"] == 0.0


def test_knn_never_uses_a_neighbour_from_the_held_out_theme(monkeypatch) -> None:
    features, categories, groups = clustered()
    fitted: list[np.ndarray] = []
    original_fit = neighbors.KNeighborsClassifier.fit

    def recording_fit(self, X, y):
        fitted.append(np.asarray(X).copy())
        return original_fit(self, X, y)

    monkeypatch.setattr(neighbors.KNeighborsClassifier, "fit", recording_fit)
    for scheme, folds in (("loto", 20), ("gkfold", 5)):
        fitted.clear()
        knn_probe(features, categories, groups, CrossValidation(scheme), k=3)
        assert len(fitted) == folds
        for training in fitted:
            rows = [int(np.flatnonzero((features == row).all(axis=1))[0]) for row in training]
            trained = np.isin(np.arange(len(groups)), rows)
            for group in np.unique(groups):  # a theme is wholly in training or wholly held out
                assert trained[groups == group].all() or not trained[groups == group].any()
            assert not trained.all()


def test_theme_siblings_cannot_vote_for_each_other() -> None:
    # Two images per theme that are near-duplicates but belong to different categories: a shuffled
    # K-fold lets a held-out image find its sibling (always wrong); grouped schemes never do.
    n_themes, dims = 40, 32
    theme_vectors = RNG.normal(size=(n_themes, dims)) * 5
    features = np.repeat(theme_vectors, 2, axis=0) + 0.01 * RNG.normal(size=(2 * n_themes, dims))
    categories = np.tile(["a", "b"], n_themes)
    groups = np.repeat(np.arange(n_themes), 2).astype(str)
    assert knn_probe(features, categories, groups, CrossValidation("kfold"), k=1).accuracy < 0.2
    assert knn_probe(features, categories, groups, CrossValidation("gkfold"), k=1).accuracy > 0.3


def test_similarities_have_known_values() -> None:
    x = RNG.normal(size=(30, 8))
    np.testing.assert_allclose(clean_similarity(x, 3 * x), 1.0)
    np.testing.assert_allclose(clean_similarity(x, -x), -1.0)
    assert unrelated_similarity(np.eye(6)) == pytest.approx(0.0)
    assert unrelated_similarity(np.ones((5, 3)) + 0 * RNG.normal(size=(5, 3))) == pytest.approx(1.0)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    gram = unit @ unit.T
    assert unrelated_similarity(x) == pytest.approx((gram.sum() - np.trace(gram)) / (30 * 29))


def test_destroyed_features_drop_to_chance_and_identical_ones_do_not_drop() -> None:
    features, categories, groups = clustered(noise=0.05)
    noise = RNG.normal(size=features.shape)
    table = corruption_table({CLEAN: features, global_shuffle(2): features.copy(), global_shuffle(8): noise},
                             categories, groups, BiasSettings(k=5))
    assert list(table["corruption"]) == ["clean", "glo_2", "glo_8"]
    assert table.loc[1, "knn_drop"] == 0.0 and table.loc[1, "linear_drop"] == 0.0
    assert table.loc[2, "knn_accuracy"] < 0.5 and table.loc[2, "linear_drop"] > 0.4
    assert abs(table.loc[2, "clean_similarity"]) < 0.2
    assert table.loc[2, "knn_drop"] == pytest.approx(1 - table.loc[2, "knn_accuracy"])


def test_clean_training_tests_corrupted_features_with_a_clean_readout() -> None:
    features, categories, groups = clustered(noise=0.05)
    shifted = features + 100.0  # far from every clean training image, in the same direction
    settings = BiasSettings(k=5, train_on="clean")
    table = corruption_table({CLEAN: features, gamma(2): shifted}, categories, groups, settings)
    # Against clean training images every shifted image points the same way, so the clean readout
    # fails; among the shifted features themselves the neighbour order survives.
    assert table.loc[0, "knn_accuracy"] == 1.0
    assert table.loc[1, "knn_accuracy"] < table.loc[0, "knn_accuracy"]
    assert corruption_table({CLEAN: features, gamma(2): shifted}, categories, groups,
                            BiasSettings(k=5)).loc[1, "knn_accuracy"] == 1.0


def test_settings_refuse_leave_one_category_out_and_need_the_clean_row() -> None:
    with pytest.raises(ValueError, match="Leave-One-Category-Out"):
        BiasSettings(scheme="loco")
    features, categories, groups = clustered()
    with pytest.raises(ValueError, match="clean features are needed"):
        corruption_table({gamma(2): features}, categories, groups)


def test_metrics_extract_once_and_reuse_cached_probes(tmp_path, monkeypatch) -> None:
    image_set = demo(tmp_path)
    subset = image_set.subset(per_class_subset(image_set, 6))
    store, results = FeatureStore(tmp_path / "features"), ResultCache(tmp_path / "results")
    corruptions = [global_shuffle(1), global_shuffle(4), gamma(0.5)]
    reports: list[Progress] = []
    settings = BiasSettings(k=3)
    first = corruption_metrics(subset, describe("pixels:8"), "final", store, corruptions, settings, results=results,
                               progress=reports.append)
    # Two stages: each of the 24 images once per condition (24 x 4), then the linear probe fold by fold (4 x K)
    folds = settings.cv.get_n_splits(settings.cv.groups(subset.metadata))
    extracting = [report for report in reports if report.stage == "extracting"]
    probing = [report for report in reports if report.stage == "probing"]
    assert reports == extracting + probing and {report.total for report in extracting} == {24 * 4}
    assert {report.total for report in probing} == {4 * folds} and len(probing) >= 4 * folds
    for stage in (extracting, probing):
        done = [report.done for report in stage]
        assert done == sorted(done) and done[-1] == stage[-1].total
    assert probing[1].message == f"probing clean: fold 1/{folds} (0/4 conditions probed)"
    assert probing[-1].message == "done (4/4 conditions probed)"
    assert probing[-1].skipped == folds  # glo_1 shows the clean pixels: its score is the clean one's, from the cache
    assert list(first["corruption"]) == ["clean", "glo_1", "glo_4", "gamma_0.5"]
    assert len(store.entries()) == 3  # glo_1 shows the clean pixels, so it shares the clean array
    assert first.loc[1, "clean_similarity"] == pytest.approx(1.0)
    assert first.loc[2, "clean_similarity"] < 0.99 and first.loc[3, "clean_similarity"] < 0.999
    calls = []
    monkeypatch.setattr(inductive_bias, "category_probe", lambda *args, **kwargs: calls.append(1))
    reports.clear()
    again = corruption_metrics(subset, describe("pixels:8"), "final", store, corruptions, BiasSettings(k=3), results=results,
                               progress=reports.append)
    assert not calls
    assert reports[-1] == Progress(4 * folds, 4 * folds, "done (4/4 conditions probed)", 4 * folds, "probing")
    np.testing.assert_allclose(again["linear_balanced_accuracy"], first["linear_balanced_accuracy"])


def test_similarity_band_stays_within_cosine_bounds_where_mean_plus_sd_would_not() -> None:
    features, categories, groups = clustered(noise=0.05)
    flipped = features.copy()
    flipped[:8] *= -1  # 8 of 80 images point the opposite way: cosines 1 (72 images) and -1 (8)
    table = corruption_table({CLEAN: features, gamma(2): flipped}, categories, groups, BiasSettings(k=5))
    row = table.iloc[1]
    assert row["clean_similarity"] == pytest.approx(0.8)
    assert row["clean_similarity"] + row["clean_similarity_sd"] == pytest.approx(1.4)  # what ± SD drew
    assert (row["clean_similarity_lo"], row["clean_similarity_hi"]) == pytest.approx((-1.0, 1.0))
    metrics = table.assign(model="m")
    bars = corruption_curves_figure(metrics, ["clean_similarity"], title="t").data[0].error_y
    y = corruption_curves_table(metrics, ["clean_similarity"])["clean_similarity"].to_numpy()
    assert np.all(y + np.asarray(bars.array) <= 1 + 1e-12) and np.all(y - np.asarray(bars.arrayminus) >= -1 - 1e-12)
    np.testing.assert_allclose(np.asarray(bars.array), [0.0, 0.2], atol=1e-12)  # clean: all cosines 1, no bar


def test_each_curve_figure_table_holds_exactly_its_points() -> None:
    features, categories, groups = clustered(noise=0.05)
    table = corruption_table({CLEAN: features, global_shuffle(2): features + 0.1, gamma(2): features * 2},
                             categories, groups, BiasSettings(k=5))
    metrics = pd.concat([table.assign(model="a"), table.assign(model="b")], ignore_index=True)
    accuracy = corruption_curves_table(metrics, ["knn_accuracy", "linear_balanced_accuracy"])
    assert list(accuracy.columns) == ["model", "family", "corruption", "level", "knn_accuracy",
                                      "linear_balanced_accuracy", "linear_ci_lo", "linear_ci_hi"]
    # Two models x two families x (clean as level 1 + one level): the clean row appears in both panels.
    assert len(accuracy) == 8 and list(accuracy["corruption"][:4]) == ["clean", "glo_2", "clean", "glo_2"]
    assert set(accuracy.loc[accuracy["family"] == "gamma", "corruption"]) == {"clean", "gamma_2"}
    assert list(corruption_curves_table(metrics, ["uniformity"]).columns) == [
        "model", "family", "corruption", "level", "uniformity"]
    similarity = corruption_curves_table(metrics, ["clean_similarity"], floor="unrelated_similarity")
    assert list(similarity.columns)[4:] == ["clean_similarity", "clean_similarity_lo", "clean_similarity_hi",
                                            "unrelated_similarity"]
    figure = corruption_curves_figure(metrics, ["knn_accuracy", "linear_balanced_accuracy"], title="t")
    drawn = np.concatenate([trace.y for trace in figure.data if trace.yaxis in ("y", "y2")])
    np.testing.assert_allclose(np.sort(drawn), np.sort(accuracy["knn_accuracy"].to_numpy()))


def test_presets_list_their_families_levels_in_order() -> None:
    quick, full = BIAS_PRESETS["quick"], BIAS_PRESETS["full"]
    assert [c.name for c in quick.corruptions()] == ["glo_2", "glo_8", "loc_2", "loc_8"]
    assert [c.name for c in full.corruptions()] == ["glo_2", "glo_4", "glo_8", "loc_2", "loc_4", "loc_8"]
    assert quick.per_class * (len(quick.corruptions()) + 1) < full.per_class * (len(full.corruptions()) + 1) / 2
