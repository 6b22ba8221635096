"""A Layer probes run from scratch: extract the missing layers, then fit, one progress in two stages."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.analyses.probe_runs import ProbeRun, probe_run, run_probe_curves, run_rate_key
from core.analyses.probes import ProbeSettings, encoder_curves, fit_rate_key
from core.data.datasets import demo
from core.encoders.registry import describe
from core.features.extract import extract, feature_keys
from core.features.store import FeatureStore, ResultCache
from core.jobs import JobCancelled
from core.progress import Progress

SETTINGS = ProbeSettings(scheme="kfold", category_scheme="kfold", n_splits=3)
SMALL_ENCODER = "untrained:timm:test_vit"  # 6 blocks + final, 160 px: seconds on a CPU


@pytest.fixture(scope="module")
def small_demo(isolated_cache: Path):
    image_set = demo(isolated_cache)
    return image_set.subset(np.arange(0, len(image_set), 8))  # 48 images, every theme group keeps one


def test_the_plan_says_what_is_missing_in_words() -> None:
    fits = (("final", "affect"), ("final", "category"))
    assert ProbeRun("pixels:32", 1, ("final",), 384, fits).describe() == "extract pixels:32 (one layer), then 2 fits"
    assert ProbeRun("e", 9, tuple("abcdefghi"), 384, fits * 9).describe() == "extract all 9 layers of e, then 18 fits"
    assert ProbeRun("e", 9, ("a", "b"), 384, ()).describe() == "extract the 2 missing layers of e"
    assert ProbeRun("e", 9, (), 0, fits[:1]).describe() == "1 fit of e"
    assert ProbeRun("e", 9, ("a",), 384, ()).pending and ProbeRun("e", 9, (), 0, fits[:1]).pending
    assert not ProbeRun("e", 9, (), 0, ()).pending


def test_one_run_extracts_then_fits_with_one_progress_and_a_cancel_keeps_both(small_demo, tmp_path: Path) -> None:
    store, results = FeatureStore(tmp_path / "features"), ResultCache(tmp_path / "scores")
    encoder = describe(SMALL_ENCODER)
    plan = probe_run(small_demo, encoder, store, settings=SETTINGS, results=results)
    assert plan.missing_layers == encoder.layers and plan.n_images == 48 and len(plan.fits) == 14
    assert plan.n_folds == 14 * 3
    reports = []

    def cancel_after_two_fits(progress: Progress) -> None:
        reports.append(progress)
        if progress.stage == "fitting" and progress.done == 2 * 3:
            raise JobCancelled("stop")

    with pytest.raises(JobCancelled):
        run_probe_curves(small_demo, encoder, store, settings=SETTINGS, results=results, batch_size=16,
                         progress=cancel_after_two_fits)
    extracting = [report for report in reports if report.stage == "extracting"]
    fitting = [report for report in reports if report.stage == "fitting"]
    assert reports == extracting + fitting  # two stages, one after the other, each counting its own units
    assert [(report.done, report.total) for report in extracting] == [(0, 48), (16, 48), (32, 48), (48, 48)]
    assert extracting[1].message.startswith("extracting 7 layers: 16/48 images") and \
        extracting[1].message.endswith(" · then 14 fits")
    assert {report.total for report in fitting} == {14 * 3} and fitting[0] == Progress(0, 42, "fitting",
                                                                                        stage="fitting")
    assert [report.done for report in fitting] == [0, 0, 1, 2, 3, 3, 4, 5, 6]  # fold by fold
    assert fitting[2].message == "fit 1/14: blocks.0 · affect · fold 1/3"
    assert fitting[-1].message == "fit 2/14: blocks.0 · category"
    left = probe_run(small_demo, encoder, store, settings=SETTINGS, results=results)
    assert left.missing_layers == () and left.n_images == 0 and len(left.fits) == 12  # features and 2 fits kept
    assert run_rate_key(small_demo, left, SETTINGS, "auto", "cpu") == fit_rate_key(small_demo, SMALL_ENCODER,
                                                                                   left.fits, SETTINGS)
    assert run_rate_key(small_demo, plan, SETTINGS, "auto", "cpu").endswith("|extract 7 layers on cpu")

    reports.clear()
    curves = run_probe_curves(small_demo, encoder, store, settings=SETTINGS, results=results,
                              progress=reports.append)
    assert reports[0] == Progress(0, 36, "fitting", stage="fitting") and reports[-1].done == reports[-1].total == 36
    assert len(curves) == 7 * 3 and list(curves["layer"].unique()) == list(encoder.layers)
    # the same numbers as fitting features extracted on their own, without any cache
    other = FeatureStore(tmp_path / "other")
    extract(small_demo, encoder, "all", other)
    plain = encoder_curves(small_demo, encoder, other, settings=SETTINGS)
    np.testing.assert_allclose(curves["score"], plain["score"], rtol=0, atol=1e-12)
    assert all(store.has(key) for key in feature_keys(small_demo, encoder, "all").values())
