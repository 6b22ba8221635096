"""Inference on RDM-model evaluations (docs/science.md §9): rsatoolbox's fixed evaluation, noise ceiling and
bootstrap over subjects, stimuli or both (dual bootstrap with its variance correction), for all models at once.

The resamples are drawn once; each is evaluated for every model in one vectorised pass (`core.analyses.rsa`), so
adding models costs little. Semantics follow rsatoolbox 0.3: a stimulus resample keeps duplicated stimuli and leaves
out the pairs of a stimulus with its own copy; a subject resample weights each subject's comparison by its copies;
the t-tests use rsatoolbox's variance estimates (for the dual bootstrap `_dual_bootstrap`'s small-sample formula).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from core.analyses.rsa import NoiseCeiling, compare_prepared, compare_rdms, n_items_of, noise_ceiling, prepare
from core.progress import Progress, Report

RESAMPLES = ("none", "subjects", "stimuli", "both")
MIN_SUBJECTS = 3
MIN_ITEMS = 10


@dataclass(frozen=True)
class PairwiseDifference:
    """Model a minus model b: the point difference, its bootstrap 95% CI and the t-test's p, raw and corrected."""

    model_a: str
    model_b: str
    difference: float
    ci_low: float
    ci_high: float
    p: float
    p_fdr: float  # Benjamini-Hochberg across all pairs
    p_bonferroni: float


@dataclass(frozen=True)
class RsaEvaluation:
    """Models evaluated against a group of data RDMs with a noise ceiling and (optionally) bootstrap inference."""

    method: str
    model_names: tuple[str, ...]
    per_subject: np.ndarray  # (M, S) comparator of each model with each subject's RDM
    mean: np.ndarray  # (M,) mean over subjects (rsatoolbox's eval_fixed)
    ceiling: NoiseCeiling  # point estimate (rsatoolbox's boot_noise_ceiling)
    resample: str  # none | subjects | stimuli | both
    n_bootstrap: int
    samples: np.ndarray  # (B, M) bootstrap evaluations (the both-resampled ones for the dual bootstrap); NaN = invalid
    ceiling_samples: np.ndarray  # (B, 2) lower, upper bound in each resample
    ci_low: np.ndarray  # (M,) 2.5% percentile of the samples
    ci_high: np.ndarray  # (M,) 97.5% percentile
    variance: np.ndarray  # (M,) rsatoolbox's variance of a model's evaluation
    dof: int
    p_vs_zero: np.ndarray  # (M,) one-sided t-test, evaluation > 0
    p_vs_lower_ceiling: np.ndarray  # (M,) two-sided t-test against the lower bound (rsatoolbox's t_test_nc)
    pairwise: tuple[PairwiseDifference, ...]
    warnings: tuple[str, ...]

    @property
    def ceiling_normalised(self) -> np.ndarray:
        """(M,) mean / lower noise-ceiling bound: 1 = as good as the subjects predict each other (can exceed 1)."""
        return self.mean / self.ceiling.lower


def draw_index_sets(n_subjects: int, n_items: int, n_bootstrap: int, resample: str,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Resampled subject (B, S) and stimulus (B, N) indices; the dimension not resampled keeps 0..S-1 / 0..N-1."""
    subjects = np.tile(np.arange(n_subjects), (n_bootstrap, 1))
    items = np.tile(np.arange(n_items), (n_bootstrap, 1))
    if resample in ("subjects", "both"):
        subjects = rng.integers(0, n_subjects, size=(n_bootstrap, n_subjects))
    if resample in ("stimuli", "both"):
        items = rng.integers(0, n_items, size=(n_bootstrap, n_items))
    return subjects, items


def resample_items(vectors: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Condensed RDMs (K, P) of the stimuli `items` (N,) with copies, NaN at pairs of a stimulus with its copy."""
    n = n_items_of(vectors.shape[1])
    sel = np.sort(items)
    i, j = np.triu_indices(n, 1)
    a, b = np.minimum(sel[i], sel[j]), np.maximum(sel[i], sel[j])
    same = a == b
    index = np.where(same, 0, a * n - a * (a + 1) // 2 + b - a - 1)
    out = vectors[:, index]
    out[:, same] = np.nan
    return out


def _variances(matrices: list[np.ndarray], n_models: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per covariance (M + 2, M + 2) of [models, lower, upper]: model, model - ceiling (M, 2) and pair variances."""
    model, ceiling, pair = [], [], []
    a, b = np.triu_indices(n_models, 1)
    for v in matrices:
        d = np.diag(v)
        model.append(d[:n_models])
        ceiling.append(d[:n_models, None] - 2 * v[:n_models, n_models:] + d[None, n_models:])
        pair.append(d[a] + d[b] - 2 * v[a, b])
    return np.array(model), np.array(ceiling), np.array(pair)


def _dual(variances: np.ndarray, n_rdm: int, n_pattern: int) -> np.ndarray:
    """rsatoolbox's `_dual_bootstrap`: the variance from the both / subject / stimulus bootstraps' variances."""
    fr, fp = n_rdm / (n_rdm - 1), n_pattern / (n_pattern - 1)
    both, rdm, pattern = variances
    v = fr * rdm + fp * pattern - fr * fp * (both - rdm - pattern)
    return np.minimum(np.maximum(np.maximum(v, fr * rdm), fp * pattern), both)


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (scipy's false_discovery_control, guarding the empty case)."""
    return stats.false_discovery_control(p) if p.size else p


def _percentiles(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = samples[~np.isnan(samples).any(axis=1)]
    if len(ok) == 0:
        nan = np.full(samples.shape[1], np.nan)
        return nan, nan
    return np.quantile(ok, 0.025, axis=0), np.quantile(ok, 0.975, axis=0)


def evaluate_rsa(models: np.ndarray, data: np.ndarray, method: str = "corr", model_names: list[str] | None = None,
                 n_bootstrap: int = 0, resample: str = "both", seed: int = 0,
                 index_sets: tuple[np.ndarray, np.ndarray] | None = None,
                 progress: Report | None = None) -> RsaEvaluation:
    """Models (M, P) against data RDMs (S, P), condensed: evaluation, ceiling, bootstrap CIs and tests -> result.

    `index_sets` (subjects (B, S), stimuli (B, N)) replaces the seeded draws, e.g. to replay rsatoolbox's.
    """
    models, data = np.atleast_2d(np.asarray(models, float)), np.atleast_2d(np.asarray(data, float))
    n_models, n_subjects = len(models), len(data)
    n_items = n_items_of(data.shape[1])
    names = tuple(model_names or [f"model {k + 1}" for k in range(n_models)])
    if resample not in RESAMPLES:
        raise ValueError(f"resample must be one of {', '.join(RESAMPLES)}; got {resample!r}")
    if n_bootstrap == 0:
        resample = "none"
    warnings = []
    if n_subjects < MIN_SUBJECTS:
        warnings.append(f"only {n_subjects} subject(s): the noise ceiling and any subject bootstrap are unreliable "
                        f"(at least {MIN_SUBJECTS} advised)")
    if n_items < MIN_ITEMS:
        warnings.append(f"only {n_items} stimuli: comparisons and any stimulus bootstrap are unreliable "
                        f"(at least {MIN_ITEMS} advised)")
    per_subject = compare_rdms(models, data, method)
    ceiling = noise_ceiling(data, method)
    b_total = n_bootstrap if resample != "none" else 0
    if index_sets is None:
        index_sets = draw_index_sets(n_subjects, n_items, b_total, resample, np.random.default_rng(seed))
    subject_sets, item_sets = index_sets
    b_total = len(subject_sets)
    # kinds: 0 both, 1 subjects only, 2 stimuli only (rsatoolbox's order); a single bootstrap fills one of them
    evals = np.full((3, b_total, n_models), np.nan)
    ceils = np.full((3, b_total, 2), np.nan)
    subject_ceilings: dict[bytes, tuple[float, float]] = {}
    for b in range(b_total):
        counts = np.bincount(subject_sets[b], minlength=n_subjects).astype(float)
        items = item_sets[b]
        if resample in ("subjects", "both"):
            evals[1, b] = per_subject @ counts / counts.sum()
            key = counts.tobytes()  # few distinct subject multisets (35 for 4 subjects): each ceiling computed once
            if key not in subject_ceilings:
                nc = noise_ceiling(data, method, counts)
                subject_ceilings[key] = nc.lower, nc.upper
            ceils[1, b] = subject_ceilings[key]
        if resample in ("stimuli", "both") and len(np.unique(items)) >= 3:
            m_b, d_b = resample_items(models, items), resample_items(data, items)
            keep = ~np.isnan(d_b[0])
            by_item = compare_prepared(prepare(m_b, method, keep), prepare(d_b, method, keep), method)
            evals[2, b] = by_item.mean(axis=1)
            nc = noise_ceiling(d_b, method)
            ceils[2, b] = nc.lower, nc.upper
            if resample == "both":
                evals[0, b] = by_item @ counts / counts.sum()
                nc = noise_ceiling(d_b, method, counts)
                ceils[0, b] = nc.lower, nc.upper
        if progress is not None and (b + 1 == b_total or (b + 1) % 20 == 0):
            progress(Progress(b + 1, b_total, f"bootstrap over {resample}"))
    kind = {"none": 0, "both": 0, "subjects": 1, "stimuli": 2}[resample]
    samples, ceiling_samples = evals[kind], ceils[kind]
    return _infer(method, names, per_subject, ceiling, resample, samples, ceiling_samples, evals, ceils,
                  n_subjects, n_items, tuple(warnings))


def _infer(method, names, per_subject, ceiling, resample, samples, ceiling_samples, evals, ceils,
           n_subjects, n_items, warnings) -> RsaEvaluation:
    """CIs, rsatoolbox's t-tests and the pairwise table from the bootstrap samples (or the subjects when none)."""
    n_models = len(names)
    mean = per_subject.mean(axis=1)
    a, b = np.triu_indices(n_models, 1)
    diff_samples = samples[:, a] - samples[:, b]
    ok = ~np.isnan(samples).any(axis=1)
    if resample == "none":
        # rsatoolbox's eval_fixed: covariance over subjects (ddof 0) / S, dof S - 1, fixed ceiling
        # (rsatoolbox then scales the variance by S / (S - 1))
        cov = (np.atleast_2d(np.cov(per_subject, ddof=0)) / (n_subjects - 1) if n_subjects > 1
               else np.zeros((n_models,) * 2))
        model_var, pair_var = np.diag(cov), np.diag(cov)[a] + np.diag(cov)[b] - 2 * cov[a, b]
        ceiling_var = np.repeat(model_var[:, None], 2, axis=1)
        dof, centre, lower_ref = n_subjects - 1, mean, ceiling.lower
        ci_low, ci_high = np.full(n_models, np.nan), np.full(n_models, np.nan)
        diff_low, diff_high = np.full(len(a), np.nan), np.full(len(a), np.nan)
    else:
        ci_low, ci_high = _percentiles(samples)
        diff_low, diff_high = _percentiles(diff_samples) if len(a) else (np.empty(0), np.empty(0))
        centre = samples[ok].mean(axis=0)
        if resample == "both":
            # rsatoolbox's t-tests centre on the bootstrap mean averaged over the three bootstraps
            centre = np.nanmean(np.nanmean(evals, axis=1), axis=0)
            covs = [np.atleast_2d(np.cov(np.concatenate([evals[k], ceils[k]], axis=1)[ok].T)) for k in range(3)]
            mv, cv, pv = _variances(covs, n_models)
            model_var, ceiling_var, pair_var = (_dual(x, n_subjects, n_items) for x in (mv, cv, pv))
            dof = min(n_subjects, n_items) - 1
            lower_ref = np.nanmean(ceils[:, ok, 0])  # rsatoolbox averages the lower bound over all three bootstraps
        else:
            n = n_subjects if resample == "subjects" else n_items
            cov = np.atleast_2d(np.cov(np.concatenate([samples, ceiling_samples], axis=1)[ok].T)) * n / (n - 1)
            mv, cv, pv = (x[0] for x in _variances([cov], n_models))
            model_var, pair_var = mv, pv
            # rsatoolbox's eval_bootstrap_rdm leaves the ceiling's variance out of the test against it
            ceiling_var = np.repeat(mv[:, None], 2, axis=1) if resample == "subjects" else cv
            dof = n - 1
            lower_ref = np.nanmean(ceiling_samples[ok, 0])
    eps = np.finfo(float).eps
    p_zero = 1 - stats.t.cdf(centre / np.sqrt(np.maximum(model_var, eps)), dof)
    t_nc = (centre - lower_ref) / np.sqrt(np.maximum(ceiling_var[:, 0], eps))
    p_nc = 2 * (1 - stats.t.cdf(np.abs(t_nc), dof))
    centre_diff = centre[a] - centre[b]
    p_pair = 2 * (1 - stats.t.cdf(np.abs(centre_diff / np.sqrt(np.maximum(pair_var, eps))), dof))
    p_fdr, p_bonf = _bh(p_pair), np.minimum(1.0, p_pair * len(p_pair))
    pairwise = tuple(PairwiseDifference(names[i], names[j], float(mean[i] - mean[j]), float(lo), float(hi),
                                        float(p), float(q), float(bf))
                     for i, j, lo, hi, p, q, bf in zip(a, b, diff_low, diff_high, p_pair, p_fdr, p_bonf))
    return RsaEvaluation(method=method, model_names=names, per_subject=per_subject, mean=mean, ceiling=ceiling,
                         resample=resample, n_bootstrap=len(samples), samples=samples,
                         ceiling_samples=ceiling_samples, ci_low=ci_low, ci_high=ci_high, variance=model_var,
                         dof=int(dof), p_vs_zero=p_zero, p_vs_lower_ceiling=p_nc, pairwise=pairwise,
                         warnings=warnings)
