"""Cross-validated affect regression: no leakage, known answers, metrics and paired tests."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import pipeline

from core.analyses import affect
from core.analyses.affect import (RIDGE_ALPHAS, ceiling_table, cross_validated_predictions, metrics_table,
                                  paired_difference, per_group_metrics, reliability_ceiling, target_ceiling,
                                  target_metrics, with_ceiling)
from core.analyses.cv import CrossValidation

RNG = np.random.default_rng(1)


def synthetic(n_categories: int = 4, groups_per_category: int = 6, per_group: int = 5):
    categories = np.repeat([f"c{i}" for i in range(n_categories)], groups_per_category * per_group)
    groups = np.array([f"{c}-g{i // per_group}" for i, c in enumerate(categories)])
    return categories, groups


@pytest.mark.parametrize("scheme, label", [("loco", "categories"), ("loto", "groups")])
def test_no_image_ever_trains_its_own_prediction(scheme: str, label: str, monkeypatch) -> None:
    categories, groups = synthetic()
    labels = categories if label == "categories" else groups
    features, targets = RNG.normal(size=(len(labels), 6)), RNG.normal(size=(len(labels), 2))
    seen_training_rows: list[np.ndarray] = []
    original_fit = pipeline.Pipeline.fit

    def recording_fit(self, X, y=None, **kwargs):
        seen_training_rows.append(X.copy())
        return original_fit(self, X, y, **kwargs)

    monkeypatch.setattr(pipeline.Pipeline, "fit", recording_fit)
    cv = cross_validated_predictions(features, targets, labels, CrossValidation(scheme))
    assert len(seen_training_rows) == len(np.unique(labels))
    for fold, training in enumerate(seen_training_rows):
        test_rows = np.flatnonzero(cv.fold == fold)
        trained_on = {tuple(row) for row in training}
        assert not any(tuple(features[row]) in trained_on for row in test_rows)
        assert len(np.unique(labels[test_rows])) == 1
        assert not np.isin(labels[test_rows[0]], labels[np.setdiff1d(np.arange(len(labels)), test_rows)])
        np.testing.assert_allclose(cv.train_means[test_rows[0]],
                                   np.delete(targets, test_rows, axis=0).mean(axis=0))


def test_grouped_kfold_keeps_every_theme_in_one_fold() -> None:
    _, groups = synthetic()  # 24 theme groups of 5 images
    splits = CrossValidation("gkfold", n_splits=5).split(groups)
    assert len(splits) == 5
    assert sorted(np.concatenate([test for _, test in splits])) == list(range(len(groups)))
    for train, test in splits:
        assert not set(groups[train]) & set(groups[test])
    with pytest.raises(ValueError, match="Grouped K-fold needs 2 <= K <= 24"):
        CrossValidation("gkfold", n_splits=25).split(groups)


def test_linear_data_is_recovered_and_alphas_come_from_the_grid() -> None:
    features = RNG.normal(size=(300, 10))
    targets = features @ RNG.normal(size=(10, 2)) + RNG.normal(0, 0.1, (300, 2))
    cv = cross_validated_predictions(features, targets, np.zeros(300), CrossValidation("kfold", n_splits=5))
    table = metrics_table(cv, n_boot=200)
    assert (table["r2"] > 0.9).all() and cv.alphas.shape == (5, 2)
    assert np.isin(cv.alphas, RIDGE_ALPHAS).all()
    assert list(np.unique(cv.held_out_group)) == [f"fold {k}" for k in range(1, 6)]


def test_category_only_information_generalises_across_themes_but_not_categories() -> None:
    """The study's key contrast as a known answer: a feature that encodes only category."""
    categories, groups = synthetic(n_categories=6, groups_per_category=8, per_group=4)
    category_effect = dict(zip(np.unique(categories), np.linspace(2, 6, 6)))
    valence = np.array([category_effect[c] for c in categories]) + RNG.normal(0, 0.3, len(categories))
    targets = np.column_stack([valence, valence])
    one_hot = (categories[:, None] == np.unique(categories)[None, :]).astype(float)
    features = np.hstack([one_hot, RNG.normal(size=(len(categories), 5))])
    loto = metrics_table(cross_validated_predictions(features, targets, groups, CrossValidation("loto")), n_boot=100)
    loco = metrics_table(cross_validated_predictions(features, targets, categories, CrossValidation("loco")), n_boot=100)
    assert loto["r2"].iloc[0] > 0.8 and loco["r2"].iloc[0] < 0.1


def test_single_category_under_loco_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least two categories"):
        CrossValidation("loco").split(np.array(["same"] * 10))
    with pytest.raises(ValueError, match="Unknown cross-validation scheme"):
        CrossValidation("loo").split(np.arange(10))
    with pytest.raises(ValueError, match="NaN"):
        cross_validated_predictions(np.full((10, 2), np.nan), np.ones((10, 2)), np.arange(10) % 2, CrossValidation("loto"))


def test_bootstrap_intervals_contain_the_estimate_and_are_seeded() -> None:
    truth = RNG.normal(size=500)
    guess = truth + RNG.normal(0, 0.5, 500)
    first, second = target_metrics(truth, guess, "valence", seed=3), target_metrics(truth, guess, "valence", seed=3)
    assert first == second
    for estimate, (low, high) in [(first.r, first.r_ci), (first.r2, first.r2_ci), (first.rmse, first.rmse_ci)]:
        assert low <= estimate <= high
    assert first.r == pytest.approx(np.corrcoef(truth, guess)[0, 1])


def test_paired_difference_of_identical_and_clearly_different_models() -> None:
    truth = RNG.normal(size=400)
    good, bad = truth + RNG.normal(0, 0.3, 400), truth + RNG.normal(0, 1.5, 400)
    same = paired_difference(truth, good, good, "valence")
    assert same.difference == 0 and same.p_value == 1.0
    better = paired_difference(truth, good, bad, "valence")
    assert better.difference > 0.5 and better.ci[0] > 0 and better.p_value <= 0.01


def test_per_group_metrics_rows() -> None:
    categories, groups = synthetic(n_categories=2, groups_per_category=2, per_group=3)
    cv = cross_validated_predictions(RNG.normal(size=(12, 3)), RNG.normal(size=(12, 2)), categories, CrossValidation("loco"))
    table = per_group_metrics(cv)
    assert len(table) == 4 and set(table["group"]) == {"c0", "c1"} and (table["n"] == 6).all()


def test_bootstrap_is_fast_enough_for_the_page() -> None:
    import time
    truth = RNG.normal(size=900)
    started = time.perf_counter()
    target_metrics(truth, truth + RNG.normal(size=900), "valence", n_boot=1000)
    assert time.perf_counter() - started < 2.0  # generous: ~0.05 s measured
    assert affect.TARGETS == ("valence", "arousal")


def test_a_channel_silent_in_training_cannot_blow_up_held_out_predictions() -> None:
    categories, groups = synthetic(n_categories=3, groups_per_category=4, per_group=5)
    features = RNG.normal(size=(len(groups), 4))
    features[:, 0] = 1e-6 * RNG.normal(size=len(groups))
    held_out = groups == groups[0]
    features[held_out, 0] = 5.0  # a post-ReLU channel that fires only in one theme
    targets = np.column_stack([features[:, 1], features[:, 2]]) + RNG.normal(0, 0.1, (len(groups), 2))
    unguarded = cross_validated_predictions(features, targets, groups, CrossValidation("loto"), clip_sd=None)
    guarded = cross_validated_predictions(features, targets, groups, CrossValidation("loto"))
    assert np.abs(unguarded.predictions[held_out]).max() > 100
    assert np.abs(guarded.predictions[held_out] - targets[held_out]).max() < 3


def simulated_ratings(n_images: int, seed: int = 5):
    """True scores t (var 1), then N_i raters each t_i + N(0, s_i): mean rating, sample SD (ddof=1), N."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(4, 1, n_images)
    counts = rng.integers(10, 41, n_images)
    spread = rng.uniform(0.8, 2.0, n_images)
    ratings = [t + rng.normal(0, s, n) for t, s, n in zip(truth, spread, counts)]
    return (truth, np.array([r.mean() for r in ratings]), np.array([r.std(ddof=1) for r in ratings]),
            counts.astype(float))


def test_ceiling_is_the_r2_the_true_scores_reach() -> None:
    truth, means, sds, counts = simulated_ratings(2000)
    ceiling = reliability_ceiling(means, sds, counts)
    r2_of_truth = target_metrics(means, truth, "valence", n_boot=10).r2
    # ceiling − R²(t) = mean((y−t)² − SD²/N) / var(y) exactly, a mean of zero-expectation terms: 4 of its SEs.
    terms = (means - truth) ** 2 - sds ** 2 / counts
    tolerance = 4 * terms.std() / np.sqrt(len(terms)) / means.var()
    assert tolerance < 0.02  # ~0.014 here, a fifth of the noise share the ceiling measures
    assert ceiling == pytest.approx(r2_of_truth, abs=tolerance)
    assert 0.88 < ceiling < 0.94  # mean(s²/N) ≈ 0.09 against var(y) ≈ 1.07: the noise is visible, not negligible


def test_ceiling_uses_the_population_variance_and_is_one_without_rater_noise() -> None:
    means = np.array([1.0, 2.0, 3.0, 4.0])  # var (ddof=0) = 1.25; SD²/N = 1/4 for every image
    assert reliability_ceiling(means, np.ones(4), np.full(4, 4)) == pytest.approx(1 - 0.25 / 1.25)
    exact = target_ceiling(means, np.zeros(4), np.full(4, 4), "valence", n_boot=200)
    assert exact.ceiling == 1.0 and exact.ci == (1.0, 1.0)


def test_ceiling_interval_is_seeded_and_contains_the_estimate() -> None:
    _, means, sds, counts = simulated_ratings(300)
    first, second = (target_ceiling(means, sds, counts, "arousal", seed=4) for _ in range(2))
    assert first == second and first.ci[0] < first.ceiling < first.ci[1]
    assert first.ci[1] - first.ci[0] < 0.1


def test_ceiling_table_reads_sd_and_n_columns_and_explains_bad_ones() -> None:
    _, means, sds, counts = simulated_ratings(50)
    metadata = pd.DataFrame({"image_id": [f"i{k}" for k in range(50)], "valence": means, "arousal": means,
                             "Valence_SD": sds, "Valence_N": counts, "arousal_sd": sds})  # arousal lacks its N
    table = ceiling_table(metadata, n_boot=100)
    assert list(table["target"]) == ["valence"] and table["ceiling_from"].iloc[0] == "Valence_SD / Valence_N"
    assert table["ceiling"].iloc[0] == pytest.approx(reliability_ceiling(means, sds, counts))
    assert ceiling_table(metadata[["image_id", "valence", "arousal"]]).empty
    metrics = pd.DataFrame({"target": ["valence", "arousal"], "r2": [0.45, 0.3]})
    merged = with_ceiling(metrics, table)
    assert merged["share_explainable"].iloc[0] == pytest.approx(0.45 / table["ceiling"].iloc[0])
    assert merged.loc[1, ["ceiling", "share_explainable"]].isna().all()
    broken = metadata.assign(Valence_N=metadata["Valence_N"].where(metadata.index != 7, 1))
    with pytest.raises(ValueError, match=r"column Valence_N has 1 unusable value\(s\) \(images i7\)"):
        ceiling_table(broken)


def test_stored_predictions_are_read_back_instead_of_refitted(tmp_path) -> None:
    """Out-of-fold predictions kept in the result store (by a study, another session) come back equal, unfitted."""
    from core.analyses.affect import assemble_predictions, fit_folds
    from core.analyses.affect_report import load_predictions, predictions_key, save_predictions
    from core.features.results import ResultStore
    categories, groups = synthetic()
    rng = np.random.default_rng(0)
    features, targets = rng.normal(size=(len(groups), 12)), rng.normal(size=(len(groups), 2))
    cv = CrossValidation("loto")
    fitted = cross_validated_predictions(features, targets, groups, cv)
    splits = cv.split(groups)  # the same folds fitted in two chunks, as a study engine sends them, then merged
    chunks = fit_folds(features, targets, splits, range(0, 10)) + fit_folds(features, targets, splits, range(10, 24))
    np.testing.assert_array_equal(assemble_predictions(chunks[::-1], targets, groups, cv).predictions, fitted.predictions)
    store = ResultStore(tmp_path)
    key = predictions_key("digest", cv)
    assert load_predictions(store, key) is None
    save_predictions(store, key, fitted, {"label": "synthetic"})
    stored = load_predictions(store, key)
    for name in ("targets", "predictions", "fold", "held_out_group", "alphas", "train_means"):
        np.testing.assert_array_equal(getattr(stored, name), getattr(fitted, name))
    assert (stored.scheme, stored.target_names) == (fitted.scheme, fitted.target_names)
    assert predictions_key("digest", CrossValidation("loco")) != key
