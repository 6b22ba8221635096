"""Similarity with representations given as RDMs only (an RDM group's mean RDM): RSA as given, the rest not applicable."""
from __future__ import annotations

import numpy as np
import pytest

from core.analyses.rdm import rdm
from core.analyses.rsa import compare_rdms, condensed
from core.analyses.similarity import SimilaritySettings, compare, controls, noise_ceiling
from core.analyses.similarity.given_rdms import not_applicable
from core.analyses.similarity.measures import RDM_MEASURES
from core.data.datasets import neural
from core.studies.analyses.brain import BrainSettings, compute
from core.analyses.brain import model_table

# The Similarity page's RSA measures and the rsatoolbox comparators they are (docs/science.md §8, §9).
RSATOOLBOX = {"rsa_spearman": "spearman", "rsa_pearson": "corr", "rsa_tau_a": "tau-a", "rsa_cosine": "cosine"}
ALL = tuple(RSATOOLBOX) + ("cka_linear", "procrustes", "mutual_knn")


def features(n=30, d=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    return x, x @ rng.normal(size=(d, 7)) + 0.5 * rng.normal(size=(n, 7))


def test_an_rdm_given_equals_the_features_it_came_from_on_rsa_and_the_rest_say_why_not() -> None:
    x, y = features()
    given = rdm(y, "euclidean", dtype=np.float64)
    from_features = compare({"x": x}, {"y": y}, ALL, n_bootstrap=50, seed=3,
                            settings=SimilaritySettings(rdm_metric="euclidean"))
    from_rdm = compare({"x": x}, {"y": given}, ALL, n_bootstrap=50, seed=3, rdm_only=["y"],
                       settings=from_features.settings)
    for measure in RSATOOLBOX:
        assert from_rdm.value(measure, "x", "y") == pytest.approx(from_features.value(measure, "x", "y"), abs=1e-12)
        np.testing.assert_allclose(from_rdm.resamples[from_rdm.measures.index(measure)],
                                   from_features.resamples[from_features.measures.index(measure)], atol=1e-6)
    for measure in ("cka_linear", "procrustes", "mutual_knn"):
        assert np.isnan(from_rdm.value(measure, "x", "y"))
    table = from_rdm.table().set_index("measure")
    assert table.loc["cka_linear", "note"] == not_applicable("y") == "not applicable: y is given as RDMs only"
    assert table.loc["rsa_spearman", "note"] == ""
    assert any("y is given as RDMs only" in warning for warning in from_rdm.warnings)


def test_rdm_only_values_equal_core_rsa_for_every_comparator() -> None:
    x, y = features(seed=1)
    a, b = rdm(x, "cosine", dtype=np.float64), rdm(y, "correlation", dtype=np.float64)
    matrix = compare({"a": a}, {"b": b}, tuple(RSATOOLBOX), rdm_only=["a", "b"])
    for measure, method in RSATOOLBOX.items():
        expected = compare_rdms(condensed(a[None]), condensed(b[None]), method)[0, 0]
        assert matrix.value(measure, "a", "b") == pytest.approx(expected, abs=1e-10)


def test_controls_and_noise_ceiling_of_rdm_only_references() -> None:
    x, y = features(seed=2)
    rdms = {"x": rdm(x, "cosine", dtype=np.float64), "y": rdm(y, "cosine", dtype=np.float64)}
    table = controls(rdms, ("rsa_spearman", "cka_linear"), rdm_only=["x", "y"]).set_index(
        ["representation", "control", "measure"])["value"]
    assert table["x", "self", "rsa_spearman"] == pytest.approx(1.0)
    assert np.isnan(table["x", "rotation", "rsa_spearman"]) and np.isnan(table["x", "self", "cka_linear"])
    assert abs(table["x", "shuffle", "rsa_spearman"]) < 0.2
    given = noise_ceiling(rdms, ("rsa_pearson", "cka_linear"), rdm_only=["x", "y"])
    vectors = noise_ceiling({"x": x, "y": y}, ("rsa_pearson",))
    assert given["rsa_pearson"].lower == pytest.approx(vectors["rsa_pearson"].lower, abs=1e-12)
    assert given["rsa_pearson"].upper == pytest.approx(vectors["rsa_pearson"].upper, abs=1e-12)
    assert np.isnan(given["cka_linear"].lower)


def test_an_rdm_that_is_not_one_is_named() -> None:
    with pytest.raises(ValueError, match="bad: expected an .N, N. RDM"):
        compare({"a": np.eye(5)}, {"bad": np.ones((5, 3))}, ("rsa_spearman",), rdm_only=["bad"])


def test_on_the_92_images_two_rdm_groups_compare_as_the_brain_analysis_does(kriegeskorte92) -> None:
    """hIT's mean RDM vs monkey IT (one subject): the similarity matrix's RSA equals the Brain analysis's evaluation
    of `rdm · hIT` against mIT for the same comparator, and `core.analyses.rsa` on the two mean RDMs."""
    image_set = neural(kriegeskorte92)
    hit, mit = image_set.rdm_reference("hIT"), image_set.rdm_reference("mIT_674neurons")
    matrix = compare({"rdm · hIT": hit.mean}, {"rdm · mIT": mit.mean}, ALL, rdm_only=["rdm · hIT", "rdm · mIT"])
    for measure, method in RSATOOLBOX.items():
        settings = BrainSettings(reference_groups=("mIT_674neurons",), models=("rdm · hIT",), method=method,
                                 n_bootstrap=0)
        brain = model_table(compute(settings, image_set, {}, {})).set_index("model").loc["rdm · hIT", "mean"]
        assert matrix.value(measure, "rdm · hIT", "rdm · mIT") == pytest.approx(brain, abs=1e-9), measure
        expected = compare_rdms(condensed(hit.mean[None]), condensed(mit.mean[None]), method)[0, 0]
        assert matrix.value(measure, "rdm · hIT", "rdm · mIT") == pytest.approx(expected, abs=1e-9)
    assert matrix.value("rsa_pearson", "rdm · hIT", "rdm · mIT") > 0.3
    assert all(np.isnan(matrix.value(m, "rdm · hIT", "rdm · mIT")) for m in ALL if m not in RDM_MEASURES)


def test_the_heatmap_says_n_a_where_a_side_is_given_as_rdms() -> None:
    from core.figures.similarity import similarity_heatmap

    x, y = features(seed=4)
    matrix = compare({"x": x, "y": rdm(y, "cosine", dtype=np.float64)}, measures=("cka_linear", "rsa_spearman"),
                     rdm_only=["y"])
    heatmap = similarity_heatmap(matrix, "cka_linear").data[0]
    assert heatmap.text[0][0] == "1.00" and heatmap.text[0][1] == heatmap.text[1][1] == "n/a"
    assert "not applicable: y is given as RDMs only" in heatmap.hovertext[1][0]
    assert similarity_heatmap(matrix, "rsa_spearman").data[0].text[0][1] != "n/a"
