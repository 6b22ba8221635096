"""Similarity matrices: shared preparations, bootstrap coverage, paired tests, controls, noise ceilings, storage;
real data: the noise ceiling of the four THINGS participant groups."""
from __future__ import annotations

import numpy as np
import pytest

from core.analyses.similarity import (MEASURES, SimilaritySettings, SimilarityStore, compare, controls, matrix_key,
                                      measure_agreement, noise_ceiling, paired_test, prepare, similarity)

RNG = np.random.default_rng(1)
BASE = RNG.normal(size=(60, 10))
LAYERS = {f"layer{depth}": BASE @ RNG.normal(size=(10, 10)) + depth * RNG.normal(size=(60, 10)) for depth in range(4)}


def test_every_cell_equals_the_pair_computed_alone() -> None:
    measures = tuple(MEASURES)
    matrix = compare(LAYERS, measures=measures, settings=SimilaritySettings(k=5))
    assert matrix.values.shape == (len(measures), 4, 4)
    config = SimilaritySettings(k=5)
    for measure in measures:
        assert matrix.value(measure, "layer1", "layer3") == pytest.approx(
            similarity(prepare(LAYERS["layer1"], config), prepare(LAYERS["layer3"], config), measure), abs=1e-12)
        np.testing.assert_allclose(np.diag(matrix.values[measures.index(measure)]), MEASURES[measure].identity,
                                   atol=1e-7)
    table = matrix.table()
    assert len(table) == len(measures) * 16 and table["ci_low"].isna().all()


def test_layer_by_layer_and_vs_reference_shapes() -> None:
    other = {f"block{index}": array[:, :6] for index, array in enumerate(LAYERS.values())}
    assert compare(LAYERS, other, ("cka_linear",)).values.shape == (1, 4, 4)
    assert compare(LAYERS, {"human": BASE}, ("cka_linear",)).values.shape == (1, 4, 1)
    with pytest.raises(ValueError, match="different numbers of items: .*layer0 60.*short 59"):
        compare(LAYERS, {"short": BASE[:59]})


def population(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two noisy nonlinear views of one 6-d latent: a population with a definite similarity between them."""
    mixing = np.random.default_rng(0)
    first, second = mixing.normal(size=(6, 6)), mixing.normal(size=(6, 5))
    latent = rng.normal(size=(n, 6))
    return latent @ first + rng.normal(size=(n, 6)), np.tanh(latent @ second) + 0.8 * rng.normal(size=(n, 5))


def test_bootstrap_intervals_cover_the_population_value_about_95_percent_of_the_time() -> None:
    measures, config = ("rsa_spearman", "cka_linear", "cka_debiased"), SimilaritySettings(rdm_metric="euclidean")
    large = population(3000, np.random.default_rng(99))  # the population value, to ±0.01
    truth = compare({"x": large[0]}, {"y": large[1]}, measures, config).values[:, 0, 0]
    hits = np.zeros(len(measures))
    for repeat in range(40):
        first, second = population(80, np.random.default_rng(repeat))
        matrix = compare({"x": first}, {"y": second}, measures, config, n_bootstrap=200, seed=repeat)
        hits += [matrix.interval(measure, "x", "y")[0] <= value <= matrix.interval(measure, "x", "y")[1]
                 for measure, value in zip(measures, truth)]
    assert np.all(hits / 40 >= 0.85), dict(zip(measures, hits / 40))


def test_bootstrap_is_seeded_and_warns_instead_of_failing_on_few_items() -> None:
    first = compare(LAYERS, measures=("cka_linear",), n_bootstrap=30, seed=4)
    second = compare(LAYERS, measures=("cka_linear",), n_bootstrap=30, seed=4)
    np.testing.assert_array_equal(first.resamples, second.resamples)
    few = compare({name: array[:6] for name, array in LAYERS.items()}, measures=("cka_linear", "mutual_knn"),
                  settings=SimilaritySettings(k=10), n_bootstrap=100)
    assert few.resamples is None and any("too few for a bootstrap" in warning for warning in few.warnings)
    assert any("k = 10 is not below" in warning for warning in few.warnings) and few.settings.k == 4


def test_paired_test_finds_the_closer_model_and_not_a_difference_between_equals() -> None:
    reference = BASE
    close, far = BASE + 0.3 * RNG.normal(size=BASE.shape), BASE + 3.0 * RNG.normal(size=BASE.shape)
    matrix = compare({"close": close, "far": far, "same_as_close": close.copy()}, {"reference": reference},
                     ("cka_linear", "rsa_spearman"), n_bootstrap=200, seed=0)
    test = paired_test(matrix, "cka_linear", "close", "far", "reference")
    assert test.difference > 0.2 and test.ci_low > 0 and test.p_value < 0.01
    equal = paired_test(matrix, "rsa_spearman", "close", "same_as_close", "reference")
    assert equal.difference == 0 and equal.p_value == 1.0
    with pytest.raises(ValueError, match="needs a bootstrapped matrix"):
        paired_test(compare({"a": close, "b": far}, {"reference": reference}), "cka_linear", "a", "b", "reference")


def test_controls_give_identity_for_self_and_rotation_and_chance_for_shuffled_items() -> None:
    measures = ("cka_linear", "rsa_spearman", "procrustes", "mutual_knn")
    table = controls({"layer0": LAYERS["layer0"]}, measures, SimilaritySettings(k=5)).set_index(["control", "measure"])
    for measure in measures:
        identity = MEASURES[measure].identity
        assert table.loc[("self", measure), "value"] == pytest.approx(identity, abs=1e-9)
        assert table.loc[("rotation", measure), "value"] == pytest.approx(identity, abs=1e-7)
    assert abs(table.loc[("shuffle", "rsa_spearman"), "value"]) < 0.1
    assert table.loc[("shuffle", "mutual_knn"), "value"] < 3 * 5 / 59


def test_noise_ceiling_of_identical_references_is_one_one_and_lower_is_below_upper_for_noisy_ones() -> None:
    measures = ("rsa_spearman", "cka_linear", "cka_debiased", "mutual_knn")
    identical = noise_ceiling({f"copy{index}": BASE for index in range(3)}, measures)
    for measure in measures:
        assert (identical[measure].lower, identical[measure].upper) == pytest.approx((1.0, 1.0), abs=1e-9)
    noisy = noise_ceiling({f"subject{index}": BASE + RNG.normal(size=BASE.shape) for index in range(4)}, measures)
    for measure in measures:
        assert noisy[measure].lower < noisy[measure].upper < 1.0


def test_measure_agreement_is_one_on_the_diagonal_and_signs_distances() -> None:
    agreement = measure_agreement(compare(LAYERS, measures=("cka_linear", "procrustes", "rsa_pearson")))
    np.testing.assert_allclose(np.diag(agreement.to_numpy()), 1.0)
    assert agreement.loc["cka_linear", "procrustes"] > 0  # a distance, negated: high CKA goes with small distance


def test_a_stored_matrix_reads_back_equal(tmp_path) -> None:
    matrix = compare(LAYERS, measures=("cka_linear",), n_bootstrap=20)
    key = matrix_key(matrix.fingerprints, {}, matrix.measures, matrix.settings, 20, 0)
    store = SimilarityStore(tmp_path)
    assert store.get(key) is None
    store.put(key, matrix)
    stored = store.get(key)
    np.testing.assert_array_equal(stored.values, matrix.values)
    np.testing.assert_array_equal(stored.resamples, matrix.resamples)
    assert stored.rows == matrix.rows and stored.settings == matrix.settings
    store.path(key).write_bytes(b"truncated")  # a damaged file is recomputed, never trusted
    assert store.get(key) is None


@pytest.mark.slow
def test_things_groups_noise_ceiling_is_ordered_and_above_random_embeddings(shared_data) -> None:
    folder = shared_data / "gwtune" / "THINGS"
    groups = {f"Group{index}": np.load(folder / f"THINGS_embedding_Group{index}.npy")[0] for index in range(1, 5)}
    measures = ("rsa_spearman", "cka_linear")
    settings = SimilaritySettings(rdm_metric="euclidean")
    ceiling = noise_ceiling(groups, measures, settings)
    rng = np.random.default_rng(0)
    randoms = {f"random{index}": np.abs(rng.normal(size=(1854, 90))) for index in range(2)}
    chance = compare(randoms, groups, measures, settings).values
    for index, measure in enumerate(measures):
        assert ceiling[measure].lower < ceiling[measure].upper <= 1.0
        assert ceiling[measure].lower > np.max(chance[index]) + 0.3, (measure, ceiling[measure], chance[index])


def test_the_streamed_path_for_many_items_gives_the_dense_numbers() -> None:
    # The streamed measures (no N × N matrix per representation) are forced here on 150 items in row blocks of
    # 1024 > N, and in blocks of 40 below through a direct call.
    from core.analyses.similarity.large import StreamedRepresentation, streamed_similarity
    rng = np.random.default_rng(5)
    first = rng.normal(size=(150, 20))
    second = np.tanh(first @ rng.normal(size=(20, 15))) + 0.5 * rng.normal(size=(150, 15))
    measures = tuple(MEASURES)
    for metric in ("cosine", "correlation", "euclidean"):
        config = SimilaritySettings(rdm_metric=metric, k=7)
        dense = compare({"a": first}, {"b": second}, measures, config)
        streamed = compare({"a": first}, {"b": second}, measures, config, dense_max_items=100, n_bootstrap=10)
        np.testing.assert_allclose(streamed.values, dense.values, rtol=2e-5, atol=2e-6)
        assert streamed.resamples is None and any("not offered" in warning for warning in streamed.warnings)
        blocks = [StreamedRepresentation(array, config, row_block=40) for array in (first, second)]
        for index, measure in enumerate(measures):
            assert streamed_similarity(*blocks, measure) == pytest.approx(dense.values[index, 0, 0], rel=2e-5,
                                                                          abs=2e-6), (metric, measure)
