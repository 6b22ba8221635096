"""Objective lab budget: train all four objectives with the page's defaults on the demo, against 15 minutes.

Prints each objective's time and loss per epoch, the ratio of the total to the 15-minute budget
(< 1 passes), the learning dynamics' cost: seconds per epoch with and without measuring the probe
set's geometry (`core.lab.dynamics`, default probe set; "without" is the same run's epoch time less
the measuring time each epoch recorded) and their ratio (target < 0.10), and the four encoders'
geometry on the Manifolds page's Full preset (25 images per class, m = 16 views, r_s 8.5): contrastive objectives should spread features more uniformly
than supervised training.

    .venv/bin/python bench/lab.py [--quick] [--epochs N] [--cache DIR]   (a fresh DIR times training from scratch)

`--quick` (a check that the bench runs, in seconds; its ratio and geometry mean little): each objective trains
1 epoch on 32 demo images at 32 px, batch 16, in a temporary cache (unless --cache names one); the geometry uses
3 images per class and m = 4 views.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.analyses.manifolds import MANIFOLD_PRESETS, ViewPreset, manifold_summary  # noqa: E402
from core.data.datasets import demo  # noqa: E402
from core.data.selections import per_class_subset  # noqa: E402
from core.encoders.registry import describe  # noqa: E402
from core.features.extract import view_features  # noqa: E402
from core.stores import Stores  # noqa: E402
from core.lab.dynamics import EpochGeometry, read_dynamics  # noqa: E402
from core.lab.runs import OBJECTIVES, TrainConfig, lab_dir, load_run  # noqa: E402
from core.lab.train import train  # noqa: E402
from core.paths import cache_root, temporary_cache  # noqa: E402

BUDGET_S = 15 * 60
QUICK_CONFIG = dict(epochs=1, max_images=32, image_size=32, batch_size=16)  # TrainConfig fields of --quick
QUICK_VIEWS = ViewPreset(per_class=3, m=4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None,
                        help="cache folder (runs go to <cache>/lab; default the cache, quick a temporary folder)")
    parser.add_argument("--quick", action="store_true",
                        help="1 epoch on 32 images at 32 px: checks that the bench runs")
    parser.add_argument("--epochs", type=int, default=None,
                        help="train the default setting this many epochs (the per-epoch costs need only 1 or 2)")
    args = parser.parse_args()
    if args.quick and args.cache is None:  # never the repository's cache/
        with temporary_cache() as cache:
            measure(cache, quick=True)
    else:
        measure(args.cache or cache_root(), quick=args.quick, train_epochs=args.epochs)


def measure(cache: Path, quick: bool, train_epochs: int | None = None) -> None:
    os.environ["REPSCOPE_CACHE"] = str(cache)  # where lab:<run id> encoders are looked up
    image_set = demo(cache)
    began, specs, costs = time.perf_counter(), [], []
    for objective in OBJECTIVES:
        start = time.perf_counter()
        config = TrainConfig(objective, **QUICK_CONFIG) if quick else TrainConfig(objective)
        if train_epochs and not quick:
            config = replace(config, epochs=train_epochs)
        run = load_run(cache, train(config, cache).name)
        epochs = pd.DataFrame(run.history).groupby("epoch")["loss"].mean().round(3).tolist()
        costs.append(dynamics_cost(run.result["seconds"], read_dynamics(lab_dir(cache) / run.run_id)))
        print(f"{objective:>10}  {time.perf_counter() - start:6.1f} s  loss per epoch {epochs}  measuring "
              f"{costs[-1][1]:.2f} s of {costs[-1][0]:.2f} s per epoch", flush=True)
        specs.append(run.spec)
    total = time.perf_counter() - began
    print(f"all four: {total:.1f} s; ratio to the 15-minute budget {total / BUDGET_S:.2f} (< 1 passes; a run "
          "already on disk counts ~0 s)")
    with_s, measuring_s = (sum(values) / len(costs) for values in zip(*costs))
    print(f"dynamics: seconds per epoch with the probe measurements {with_s:.2f}, without {with_s - measuring_s:.2f}; "
          f"measuring / training per epoch = {measuring_s / (with_s - measuring_s):.3f} (target < 0.10)")
    full = QUICK_VIEWS if quick else MANIFOLD_PRESETS["full"]
    subset = image_set.subset(per_class_subset(image_set, full.per_class))
    rows = []
    for spec in specs:
        views = view_features(subset, describe(spec), "final", Stores.at(cache).features, m=full.m)
        summary = manifold_summary(views, subset.metadata["category"].to_numpy())
        rows.append({"encoder": spec, **summary.row()})
    print(pd.DataFrame(rows).round(3).to_string(index=False))


def dynamics_cost(run_seconds: float, series: list[EpochGeometry]) -> tuple[float, float]:
    """(seconds per epoch with the measurements, measuring seconds per epoch) of a run that timed `run_seconds` from
    its first measurement (epoch 0, left out: it precedes training) to its end."""
    measuring = pd.DataFrame([(g.epoch, g.seconds) for g in series], columns=["epoch", "seconds"])
    per_epoch = measuring.groupby("epoch")["seconds"].sum()
    epochs = per_epoch.drop(0, errors="ignore")
    return (run_seconds - per_epoch.get(0, 0.0)) / len(epochs), float(epochs.mean())


if __name__ == "__main__":
    main()
