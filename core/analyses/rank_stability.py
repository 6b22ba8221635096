"""How stable is a ranking of models, and do the measures rank them alike? (docs/science.md §12)

Rank stability reads bootstrap samples of a score, (B, n_models), drawn on the same resamples for every model
(items or subjects), higher = better: each resample ranks the models; a model's share of 1st places and top-3
places and its 95% rank interval show how much the leaderboard order is worth. A paired difference of two models
uses the same resamples. Agreement of measures: Kendall's W over all measures, and pairwise Spearman between them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from core.analyses.similarity.matrices import percentile_interval


@dataclass(frozen=True, eq=False)
class RankStability:
    """Per model: how its rank varies over bootstrap resamples (rank 1 = highest score; ties share the best rank)."""

    names: tuple[str, ...]
    share_first: np.ndarray  # (n_models,) share of resamples in which the model is ranked 1st
    share_top3: np.ndarray  # (n_models,) share ranked 1st to 3rd
    rank_low: np.ndarray  # (n_models,) 2.5th percentile of its ranks (an actual rank, rounded outwards)
    rank_high: np.ndarray  # (n_models,) 97.5th percentile of its ranks
    median_rank: np.ndarray  # (n_models,)
    ranks: np.ndarray  # (B', n_models) ranks in each resample with every score finite
    n_dropped: int  # resamples dropped because some model's score was NaN there

    def table(self) -> pd.DataFrame:
        """One row per model: share_first, share_top3, rank_low, rank_high, median_rank."""
        return pd.DataFrame({"share_first": self.share_first, "share_top3": self.share_top3,
                             "rank_low": self.rank_low, "rank_high": self.rank_high,
                             "median_rank": self.median_rank}, index=pd.Index(self.names, name="model"))


def rank_stability(samples: np.ndarray, names: Sequence[str]) -> RankStability:
    """Ranks of n_models over bootstrap samples (B, n_models) of a score (same resamples for all, higher = better)."""
    samples = np.asarray(samples, dtype=np.float64)
    names = tuple(names)
    if samples.ndim != 2 or samples.shape[1] != len(names):
        raise ValueError(f"samples must be (B, n_models) with n_models = {len(names)} names; got {samples.shape}.")
    complete = np.isfinite(samples).all(axis=1)
    if not complete.any():
        raise ValueError("No bootstrap resample has a finite score for every model.")
    # Competition ranking ("1224"): tied models share the better rank, so two identical models rank alike.
    ranks = rankdata(-samples[complete], method="min", axis=1)
    return RankStability(names, np.mean(ranks == 1, axis=0), np.mean(ranks <= 3, axis=0),
                         np.percentile(ranks, 2.5, axis=0, method="lower"),
                         np.percentile(ranks, 97.5, axis=0, method="higher"), np.median(ranks, axis=0), ranks,
                         int(np.sum(~complete)))


@dataclass(frozen=True)
class PairedDifference:
    """Score of model a − score of model b, with its bootstrap CI and p over the same resamples."""

    difference: float  # observed_a − observed_b
    ci_low: float  # 2.5th percentile of the bootstrapped differences
    ci_high: float  # 97.5th percentile
    p_value: float  # two-sided: min(1, 2 min(share <= 0, share >= 0)) of the bootstrapped differences
    n_bootstrap: int  # resamples where both scores are finite


def paired_difference(samples_a: np.ndarray, samples_b: np.ndarray, observed_a: float,
                      observed_b: float) -> PairedDifference:
    """Paired bootstrap test of two models' scores, samples_a and samples_b (B,) drawn on the same resamples."""
    samples_a, samples_b = np.asarray(samples_a, dtype=np.float64), np.asarray(samples_b, dtype=np.float64)
    if samples_a.shape != samples_b.shape or samples_a.ndim != 1:
        raise ValueError(f"Paired samples must be two (B,) arrays of the same resamples; got {samples_a.shape} "
                         f"and {samples_b.shape}.")
    differences = samples_a - samples_b
    differences = differences[np.isfinite(differences)]
    low, high = percentile_interval(differences)
    p_value = min(1.0, 2 * min(np.mean(differences <= 0), np.mean(differences >= 0))) if len(differences) else np.nan
    return PairedDifference(float(observed_a - observed_b), low, high, float(p_value), len(differences))


def kendalls_w(scores: np.ndarray) -> float:
    """Kendall's W (tie-corrected) of how alike the measures rank the models, scores (n_models, n_measures).

    Every column oriented higher = better (or all lower); models missing any measure (NaN) are left out.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (n_models, n_measures); got shape {scores.shape}.")
    scores = scores[np.isfinite(scores).all(axis=1)]
    n, m = scores.shape
    if n < 2 or m < 2:
        raise ValueError(f"Kendall's W needs at least 2 models with every measure and 2 measures; got {n} and {m}.")
    ranks = rankdata(scores, axis=0)  # average ranks of the models within each measure
    totals = ranks.sum(axis=1)
    spread = np.sum((totals - totals.mean()) ** 2)
    ties = sum(np.sum(counts ** 3 - counts) for counts in
               (np.unique(column, return_counts=True)[1].astype(np.float64) for column in scores.T))
    denominator = m ** 2 * (n ** 3 - n) - m * ties
    return float(12 * spread / denominator) if denominator > 0 else float("nan")


def measure_agreement(scores: np.ndarray, measure_names: Sequence[str]) -> pd.DataFrame:
    """(n_measures, n_measures) Spearman ρ between the columns of scores (n_models, n_measures) across models;
    a model missing either measure (NaN) is left out of that pair; NaN where fewer than 3 models remain."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] != len(measure_names):
        raise ValueError(f"scores must be (n_models, {len(measure_names)}); got shape {scores.shape}.")
    table = pd.DataFrame(scores, columns=list(measure_names))
    return table.corr(method="spearman", min_periods=3)
