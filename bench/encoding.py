"""Encoding models at a layer's width: the dual form against scikit-learn's RidgeCV on the same folds and alphas.

    .venv/bin/python bench/encoding.py [--quick] [--items 92] [--features 20000] [--units 500] [--reps 4]

Random features (N × D, seed 0) and repetitions of a random linear map plus noise (R × N × U) stand in for a layer
and a subject's recorded units. Prints seconds of `encoding_scores` (5-fold CV, 21 alphas per unit, split-half
reliability included; best of 3) and of the baseline: the probes' StandardScaler + clip + `RidgeCV(alphas,
alpha_per_target=True)` refitted per fold (`core.analyses.affect.cross_validated_predictions`, one run), their ratio,
and the largest difference of the two out-of-fold predictions and the share of (fold, unit) alphas that agree.
`--quick`: 40 items × 2,000 features × 50 units, a check that the bench runs.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.analyses.affect import cross_validated_predictions  # noqa: E402
from core.analyses.cv import CrossValidation  # noqa: E402
from core.analyses.encoding import ENCODING_ALPHAS, encoding_scores  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--items", type=int, default=92)
    parser.add_argument("--features", type=int, default=20000)
    parser.add_argument("--units", type=int, default=500)
    parser.add_argument("--reps", type=int, default=4)
    args = parser.parse_args()
    n_items, n_features, n_units = (40, 2000, 50) if args.quick else (args.items, args.features, args.units)
    rng = np.random.default_rng(0)
    features = rng.standard_normal((n_items, n_features))
    signal = features @ rng.standard_normal((n_features, n_units)) / np.sqrt(n_features)
    repetitions = signal + rng.standard_normal((args.reps, n_items, n_units))
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        scores = encoding_scores(features, repetitions)
        timings.append(time.perf_counter() - start)
    start = time.perf_counter()
    baseline = cross_validated_predictions(features, repetitions.mean(axis=0), np.zeros(n_items),
                                           CrossValidation("kfold", 5, 0), alphas=ENCODING_ALPHAS,
                                           target_names=[str(unit) for unit in range(n_units)])
    baseline_s = time.perf_counter() - start
    print(f"N = {n_items} items, D = {n_features} features, U = {n_units} units, R = {args.reps}, "
          f"{len(ENCODING_ALPHAS)} alphas, 5 folds ({scores.form} form)")
    print(f"encoding_scores  {min(timings):8.3f} s (best of 3)")
    print(f"RidgeCV per fold {baseline_s:8.3f} s   ratio {baseline_s / min(timings):6.1f}x")
    print(f"max |prediction difference| {np.abs(scores.predictions - baseline.predictions).max():.2e}, "
          f"alphas equal in {np.mean(scores.alphas == baseline.alphas):.1%} of (fold, unit)")


if __name__ == "__main__":
    main()
