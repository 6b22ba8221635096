"""RDM comparators, noise ceilings and bootstrap inference: known answers, and equality with rsatoolbox (the field's
reference library) for every comparator on the real human IT data (Kriegeskorte et al. 2008)."""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

from core.analyses.rsa import METHODS, compare_rdms, noise_ceiling
from core.analyses.rsa_inference import draw_index_sets, evaluate_rsa, resample_items

rsatoolbox = pytest.importorskip("rsatoolbox")
from rsatoolbox.inference import boot_noise_ceiling  # noqa: E402
from rsatoolbox.rdm import RDMs, compare  # noqa: E402

MODEL_FILES = ("animacy", "FaceBodyManmadeNatobj", "EVA", "HMAX", "V1", "Silhouette", "RADON")


def condensed(matrix: np.ndarray) -> np.ndarray:
    return squareform(matrix, checks=False)


@pytest.fixture(scope="module")
def hit(kriegeskorte92: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Human IT data RDMs (4, P) with sessions averaged per subject, and the 7 model RDMs plus monkey IT (8, P)."""
    folder = kriegeskorte92 / "rdms"
    data = np.array([condensed(m) for m in np.load(folder / "hIT_subjects_sessions.npy").mean(axis=1)])
    names = [f"model_{name}" for name in MODEL_FILES] + ["mIT_674neurons"]
    models = np.array([condensed(np.load(folder / f"{name}.npy")) for name in names])
    return models, data, names


def synthetic_group(rng: np.random.Generator, n_items: int = 20, n_subjects: int = 6, noise: float = 1.0):
    """A true RDM from random patterns, and subjects' RDMs of the same patterns plus independent noise."""
    patterns = rng.normal(size=(n_items, 10))
    truth = pdist(patterns, "correlation")
    data = np.array([pdist(patterns + noise * rng.normal(size=patterns.shape), "correlation")
                     for _ in range(n_subjects)])
    return truth, data


@pytest.mark.parametrize("method", METHODS)
def test_compare_and_ceiling_equal_rsatoolbox_on_human_it(hit, method):
    models, data, _ = hit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = compare(RDMs(models), RDMs(data), method)
        lower, upper = boot_noise_ceiling(RDMs(data), method=method)
    ours = compare_rdms(models, data, method)
    assert ours.shape == (8, 4)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-10)
    ceiling = noise_ceiling(data, method)
    assert ceiling.lower == pytest.approx(lower, abs=1e-10)
    assert ceiling.upper == pytest.approx(upper, abs=1e-10)
    assert ceiling.lower < ceiling.upper


@pytest.mark.parametrize("method", METHODS)
def test_stimulus_resample_with_copies_equals_rsatoolbox(hit, method):
    """Duplicated stimuli: the pairs of a stimulus with its copy are left out (NaN), as rsatoolbox's subsample_pattern."""
    models, data, _ = hit
    items = np.random.default_rng(3).integers(0, 92, size=92)
    m_b, d_b = resample_items(models[:3], items), resample_items(data, items)
    reference_rdms = RDMs(data).subsample_pattern("index", items)
    np.testing.assert_array_equal(np.isnan(d_b), np.isnan(reference_rdms.get_vectors()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = compare(RDMs(models[:3]).subsample_pattern("index", items), reference_rdms, method)
    np.testing.assert_allclose(compare_rdms(m_b, d_b, method), reference, rtol=0, atol=1e-10)


def test_known_answers_of_the_ceiling():
    rng = np.random.default_rng(0)
    truth, data = synthetic_group(rng)
    # S identical subjects: each predicts the others perfectly, lower = upper = 1
    same = noise_ceiling(np.repeat(data[:1], 5, axis=0), "corr")
    assert same.lower == pytest.approx(1.0, abs=1e-12) and same.upper == pytest.approx(1.0, abs=1e-12)
    # a model equal to the mean data RDM reaches the upper bound (corr pools z-scored RDMs; cosine unit-RMS RDMs)
    for method, pooled in (("corr", data - data.mean(1, keepdims=True)), ("cosine", data)):
        scale = np.sqrt(np.mean(pooled ** 2, axis=1, keepdims=True)) if method == "cosine" else pooled.std(1, keepdims=True)
        best = (pooled / scale).mean(axis=0)
        result = evaluate_rsa(best[None], data, method)
        assert result.mean[0] == pytest.approx(noise_ceiling(data, method).upper, abs=1e-12)


def test_shuffled_model_is_near_zero_and_its_ci_covers_zero():
    rng = np.random.default_rng(1)
    truth, data = synthetic_group(rng, n_items=30, n_subjects=8, noise=0.7)
    order = rng.permutation(30)
    shuffled = condensed(squareform(truth)[np.ix_(order, order)])
    result = evaluate_rsa(np.array([truth, shuffled]), data, "corr", ["truth", "shuffled"], n_bootstrap=300,
                          resample="both", seed=0)
    assert result.mean[0] > 0.4 and result.p_vs_zero[0] < 0.001
    assert abs(result.mean[1]) < 0.1 and result.ci_low[1] < 0 < result.ci_high[1]
    assert result.p_vs_zero[1] > 0.05
    (pair,) = result.pairwise
    assert (pair.model_a, pair.model_b) == ("truth", "shuffled") and pair.p < 0.001 and pair.ci_low > 0
    assert result.ceiling_normalised[0] == pytest.approx(result.mean[0] / result.ceiling.lower)
    assert result.warnings == ()


def test_subject_bootstrap_ci_covers_the_population_value_about_95_percent():
    """A population of subjects whose comparator values are model + noise: the CI of the mean over 12 subjects
    covers the population mean in ~95% of 120 seeded repeats (a percentile bootstrap with 12 subjects runs a bit
    narrow: the accepted band is 86-99%)."""
    rng = np.random.default_rng(7)
    truth, _ = synthetic_group(rng, n_items=12, n_subjects=1)
    big = np.array([truth + rng.normal(scale=0.25, size=truth.size) for _ in range(4000)])
    population = compare_rdms(truth[None], big, "corr")[0].mean()
    start, covered, repeats = time.perf_counter(), 0, 120
    for repeat in range(repeats):
        subjects = big[rng.choice(len(big), 12, replace=False)]
        result = evaluate_rsa(truth[None], subjects, "corr", n_bootstrap=150, resample="subjects", seed=repeat)
        covered += result.ci_low[0] <= population <= result.ci_high[0]
    assert 0.86 <= covered / repeats <= 0.99
    assert time.perf_counter() - start < 10


def test_few_subjects_or_stimuli_warn_not_raise():
    rng = np.random.default_rng(2)
    truth, data = synthetic_group(rng, n_items=6, n_subjects=2)
    result = evaluate_rsa(truth[None], data, "spearman", n_bootstrap=20, resample="both")
    assert any("2 subject" in w for w in result.warnings) and any("6 stimuli" in w for w in result.warnings)
    assert result.samples.shape == (20, 1)


def test_draws_are_seeded_and_shared_by_all_models():
    a = draw_index_sets(4, 92, 5, "both", np.random.default_rng(0))
    b = draw_index_sets(4, 92, 5, "both", np.random.default_rng(0))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[1].shape == (5, 92) and a[1].max() < 92 and not (a[1] == np.arange(92)).all()
    subjects, items = draw_index_sets(4, 92, 5, "subjects", np.random.default_rng(0))
    np.testing.assert_array_equal(items, np.tile(np.arange(92), (5, 1)))


@pytest.mark.parametrize("method", ["corr", "spearman", "tau-a"])
def test_dual_bootstrap_replays_rsatoolbox(hit, method, monkeypatch):
    """rsatoolbox's eval_dual_bootstrap with its draws recorded; the same index sets fed to ours give the same
    samples, ceilings, variances and p-values (the dual-bootstrap correction included)."""
    import rsatoolbox.inference.evaluate as evaluate
    from rsatoolbox.model import ModelFixed

    models, data, names = hit
    models, names = models[[0, 3, 7]], [names[k] for k in (0, 3, 7)]
    draws, original = [], evaluate.bootstrap_sample

    def recording(*args, **kwargs):
        sample, rdm_idx, pattern_idx = original(*args, **kwargs)
        draws.append((np.asarray(rdm_idx), np.asarray(pattern_idx)))
        return sample, rdm_idx, pattern_idx

    monkeypatch.setattr(evaluate, "bootstrap_sample", recording)
    np.random.seed(11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = evaluate.eval_dual_bootstrap([ModelFixed(n, squareform(m)) for n, m in zip(names, models)],
                                                 RDMs(data), method=method, N=12)
        p_pairs, p_zero, p_noise = reference.test_all()
    index_sets = (np.array([d[0] for d in draws]), np.array([d[1] for d in draws]))
    ours = evaluate_rsa(models, data, method, names, n_bootstrap=12, resample="both", index_sets=index_sets)
    np.testing.assert_allclose(ours.samples, reference.evaluations[:, :, 0, 0, 0], rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.ceiling_samples, reference.noise_ceiling[:, :, 0, 0].T, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.variance, reference.model_var, rtol=1e-8)
    np.testing.assert_allclose(ours.p_vs_zero, p_zero, atol=1e-10)
    np.testing.assert_allclose(ours.p_vs_lower_ceiling, p_noise, atol=1e-10)
    np.testing.assert_allclose([d.p for d in ours.pairwise], p_pairs[np.triu_indices(3, 1)], atol=1e-10)


def test_monkey_it_is_far_above_zero_and_below_the_human_lower_ceiling(hit):
    models, data, names = hit
    result = evaluate_rsa(models, data, "corr", names, n_bootstrap=200, resample="both", seed=0)
    monkey = names.index("mIT_674neurons")
    assert result.mean[monkey] == pytest.approx(0.3345, abs=1e-3)
    assert result.ceiling.lower == pytest.approx(0.3944, abs=1e-3) and result.ceiling.upper == pytest.approx(0.6804, abs=1e-3)
    assert result.ci_low[monkey] > 0.2 and result.p_vs_zero[monkey] < 0.01  # t-test, dof = 3 (4 subjects)
    assert result.mean[monkey] < result.ceiling.lower
    low_level = [names.index(f"model_{name}") for name in ("V1", "HMAX", "Silhouette", "RADON", "EVA")]
    assert result.mean[monkey] > result.mean[low_level].max()  # above every low-level model (animacy is 0.387)
    fdr = [d.p_fdr for d in result.pairwise]
    assert all(q >= p for q, p in zip(fdr, (d.p for d in result.pairwise)))


@pytest.mark.parametrize("resample", ["subjects", "stimuli"])
def test_single_bootstraps_replay_rsatoolbox(hit, resample, monkeypatch):
    """eval_bootstrap_rdm / eval_bootstrap_pattern with their draws recorded: same samples, ceilings and p-values."""
    import rsatoolbox.inference.evaluate as evaluate
    from rsatoolbox.model import ModelFixed

    models, data, names = hit
    models, names = models[[0, 7]], [names[0], names[7]]
    draws = []
    name = "bootstrap_sample_rdm" if resample == "subjects" else "bootstrap_sample_pattern"
    original = getattr(evaluate, name)

    def recording(*args, **kwargs):
        sample, index = original(*args, **kwargs)
        draws.append(np.asarray(index))
        return sample, index

    monkeypatch.setattr(evaluate, name, recording)
    np.random.seed(5)
    fixed_models = [ModelFixed(n, squareform(m)) for n, m in zip(names, models)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = evaluate.eval_bootstrap_rdm if resample == "subjects" else evaluate.eval_bootstrap_pattern
        reference = run(fixed_models, RDMs(data), method="spearman", N=15)
        p_pairs, p_zero, p_noise = reference.test_all()
    drawn = np.array(draws)
    index_sets = ((drawn, np.tile(np.arange(92), (15, 1))) if resample == "subjects"
                  else (np.tile(np.arange(4), (15, 1)), drawn))
    ours = evaluate_rsa(models, data, "spearman", names, n_bootstrap=15, resample=resample, index_sets=index_sets)
    np.testing.assert_allclose(ours.samples, reference.evaluations, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.ceiling_samples, reference.noise_ceiling.T, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.p_vs_zero, p_zero, atol=1e-10)
    np.testing.assert_allclose(ours.p_vs_lower_ceiling, p_noise, atol=1e-10)
    np.testing.assert_allclose(ours.pairwise[0].p, p_pairs[0, 1], atol=1e-10)


def test_progress_reports_every_sample_count_up_to_the_total():
    rng = np.random.default_rng(4)
    truth, data = synthetic_group(rng)
    seen = []
    evaluate_rsa(truth[None], data, "corr", n_bootstrap=45, resample="both", progress=seen.append)
    assert [p.done for p in seen] == [20, 40, 45] and all(p.total == 45 for p in seen)
