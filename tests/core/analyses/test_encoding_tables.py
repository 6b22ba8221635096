"""Encoding models of a dataset's response patterns (core.analyses.encoding_tables) on simulated data with known
answers (tests/simulated_patterns.py): reliability 1 / (1 + σ²/R), best r its square root, a noise group near 0."""
from __future__ import annotations


import numpy as np
import pytest

from core.analyses.encoding import encoding_scores, split_half_reliability
from core.analyses.encoding_tables import layer_summary
from core.data.datasets import neural
from core.encoders.registry import describe
from core.features.extract import extract
from core.features.store import FeatureStore
from core.progress import Progress
from core.studies.analyses.encoding import EncodingSettings, compute
from tests.simulated_patterns import expected_reliability, write_pattern_folder

NOISE_SD, N_REPS = 1.0, 4


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    root = write_pattern_folder(tmp_path_factory.mktemp("encoding") / "set", noise_sd=NOISE_SD, n_reps=N_REPS)
    image_set = neural(root)
    found = extract(image_set, describe("pixels:8"), ["final"], FeatureStore(root.parent / "features"), device="cpu")
    return image_set, {("pixels:8", "final"): np.asarray(found["final"].features)}


def test_reliability_and_predictivity_are_close_to_their_known_values(simulated) -> None:
    image_set, features = simulated
    reports = []
    tables = compute(EncodingSettings(), image_set, features, {"pixels:8": ["final"]}, reports.append)
    layers = tables["layers"].set_index(["group", "subject"])
    ceilings = tables["ceilings"].set_index(["group", "subject"])
    reliability = expected_reliability(NOISE_SD, N_REPS)  # 0.8; split-half without Spearman-Brown would give 0.67
    it = ceilings.loc["IT"]
    # seeds 0..9 put a subject's median reliability 0.79 ± 0.03 (SD); the two subjects' mean within 0.06
    assert it["median_reliability"].mean() == pytest.approx(reliability, abs=0.06)
    assert (it["n_reliable"] == 40).all() and (it["repetitions"] == N_REPS).all()
    # the best any model can do is √reliability (0.894); cross-validated ridge from 19 items loses a little
    r = layers.loc["IT", "median_r"]
    assert (r < np.sqrt(reliability) + 0.02).all() and (r > np.sqrt(reliability) - 0.1).all(), r
    normalised = layers.loc["IT", "median_r_normalised"]
    assert ((normalised > 0.88) & (normalised < 1.02)).all(), normalised  # in-sample fits would pass 1
    noise = tables["units"][tables["units"]["group"] == "noise"]
    assert abs(np.median(noise["reliability"])) < 0.12 and np.median(noise["r"]) < 0.05
    assert reports[0] == Progress(0, 3 * 5) and reports[-1].done == 15 and "fold 5/5" in reports[-1].message


def test_the_tables_are_encoding_scores_unit_by_unit(simulated) -> None:
    image_set, features = simulated
    settings = EncodingSettings(pattern_groups=("IT",), n_splits=4, min_reliability=0.5, seed=3)
    tables = compute(settings, image_set, features, {"pixels:8": ["final"]})
    group = image_set.pattern_references[1]
    expected = encoding_scores(features["pixels:8", "final"], group.responses(1), n_splits=4, seed=3,
                               min_reliability=0.5)
    units = tables["units"][tables["units"]["subject"] == "monkey2"]
    np.testing.assert_allclose(units["r"], expected.r, atol=1e-12)
    np.testing.assert_allclose(units["reliability"], expected.reliability, atol=1e-12)
    row = tables["layers"].set_index("subject").loc["monkey2"]
    assert row["median_r"] == pytest.approx(expected.median_r, abs=1e-12)
    assert row["fraction_reliable"] == expected.n_reliable / 40
    ceiling = tables["ceilings"].set_index("subject").loc["monkey2"]
    reliability = split_half_reliability(group.responses(1), seed=3)
    assert ceiling["median_reliability"] == pytest.approx(np.median(reliability[reliability > 0.5]), abs=1e-12)
    assert set(tables["layers"]["group"]) == {"IT"}
    curve = layer_summary(tables["layers"], "IT")
    assert curve["value"].iloc[0] == pytest.approx(tables["layers"]["median_r"].mean(), abs=1e-12)
    assert curve["n_subjects"].iloc[0] == 2
