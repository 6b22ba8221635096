"""Encoding models of a dataset's response patterns (docs/science.md §11): every encoder layer × pattern group ×
subject through `core.analyses.encoding.encoding_scores`, as the tables an `encoding` study step stores and the
Brain page's encoding section shows.

`layers`: one row per encoder · layer · group · subject (median r, ceiling-normalised median r, median R², the
fraction of reliable units); `units`: one row per unit of each of those (r, R², reliability, reliable);
`ceilings`: per group · subject the units' reliability (the ceiling of r is √reliability).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from core.analyses.encoding import N_SPLIT_HALVES, split_half_reliability, encoding_scores
from core.data.patterns import PatternReference
from core.progress import Progress, Report

LAYER_COLUMNS = ["encoder", "layer", "depth", "group", "subject", "median_r", "median_r_normalised", "median_r2",
                 "n_reliable", "n_units", "fraction_reliable", "form"]
UNIT_COLUMNS = ["encoder", "layer", "group", "subject", "unit", "r", "r2", "reliability", "reliable"]
CEILING_COLUMNS = ["group", "subject", "repetitions", "n_units", "n_reliable", "median_reliability",
                   "median_ceiling_r"]


def encoding_tables(features: Mapping[tuple[str, str], np.ndarray], layer_order: Mapping[str, Sequence[str]],
                    groups: Sequence[PatternReference], *, alphas: np.ndarray, alpha_per_unit: bool = True,
                    n_splits: int = 5, seed: int = 0, min_reliability: float = 0.1,
                    progress: Report | None = None) -> dict[str, pd.DataFrame]:
    """(spec, layer) -> (N, D) features against every subject of `groups` -> {"layers", "units", "ceilings"}.

    Depth is 0..1 within each encoder's `layer_order`. `progress` counts the folds of all fits."""
    subjects = [(group, index) for group in groups for index in range(group.n_subjects)]
    total, done = len(features) * len(subjects) * n_splits, 0
    if progress is not None:
        progress(Progress(0, total))
    layers, units = [], []
    for (spec, layer), array in features.items():
        names = list(layer_order[spec])
        depth = names.index(layer) / max(len(names) - 1, 1)
        for group, index in subjects:
            subject = group.subjects[index]

            def fold_done(folds: Progress, start=done, where=f"{spec} · {layer} · {group.name} · {subject}") -> None:
                if folds.done:
                    progress(Progress(start + folds.done, total, f"{where} · fold {folds.done}/{folds.total}"))

            scores = encoding_scores(array, group.responses(index), alphas=alphas, alpha_per_unit=alpha_per_unit,
                                     n_splits=n_splits, seed=seed, min_reliability=min_reliability,
                                     progress=None if progress is None else fold_done)
            done += n_splits
            layers.append([spec, layer, depth, group.name, subject, scores.median_r, scores.median_r_normalised,
                           scores.median_r2, scores.n_reliable, len(scores.r), scores.n_reliable / len(scores.r),
                           scores.form])
            units += [[spec, layer, group.name, subject, unit, float(r), float(r2), float(reliability),
                       bool(reliable)] for unit, (r, r2, reliability, reliable)
                      in enumerate(zip(scores.r, scores.r2, scores.reliability, scores.reliable))]
    return {"layers": pd.DataFrame(layers, columns=LAYER_COLUMNS), "units": pd.DataFrame(units, columns=UNIT_COLUMNS),
            "ceilings": ceiling_table(groups, min_reliability, seed)}


def ceiling_table(groups: Sequence[PatternReference], min_reliability: float, seed: int = 0) -> pd.DataFrame:
    """Per group · subject: repetitions, units, reliable units and the median reliability and √reliability over the
    reliable ones (NaN without repetitions: no ceiling)."""
    rows = []
    for group in groups:
        for index, subject in enumerate(group.subjects):
            responses = group.responses(index)
            if responses.ndim == 2:
                rows.append([group.name, subject, 1, group.n_units, group.n_units, np.nan, np.nan])
                continue
            reliability = split_half_reliability(responses, n_splits=N_SPLIT_HALVES, seed=seed)
            with np.errstate(invalid="ignore"):
                kept = reliability[np.isfinite(reliability) & (reliability > min_reliability)]
            rows.append([group.name, subject, len(responses), group.n_units, len(kept),
                         float(np.median(kept)) if len(kept) else np.nan,
                         float(np.median(np.sqrt(kept))) if len(kept) else np.nan])
    return pd.DataFrame(rows, columns=CEILING_COLUMNS)


def layer_summary(layers: pd.DataFrame, group: str, column: str = "median_r") -> pd.DataFrame:
    """One group's layer rows averaged over its subjects, in depth_curves' columns: encoder, layer, depth, value
    (the mean over subjects of `column`), ci_low, ci_high (NaN: no interval), n_subjects."""
    rows = layers[layers["group"] == group]
    summary = rows.groupby(["encoder", "layer", "depth"], sort=False)[column].agg(["mean", "count"]).reset_index()
    return summary.rename(columns={"mean": "value", "count": "n_subjects"}).assign(ci_low=np.nan, ci_high=np.nan)
