"""Objective lab budget: train all four objectives with the page's defaults on the demo, against 15 minutes.

Prints each objective's time and loss per epoch, the ratio of the total to the 15-minute budget
(< 1 passes), and the four encoders' geometry on the Manifolds page's Full preset (25 images per
class, m = 16 views, r_s 8.5): contrastive objectives should spread features more uniformly
than supervised training.

    .venv/bin/python bench/lab.py [--quick] [--cache DIR]   (a fresh DIR times training from scratch)

`--quick` (a check that the bench runs, in seconds; its ratio and geometry mean little): each objective trains
1 epoch on 32 demo images at 32 px, batch 16, in a temporary cache (unless --cache names one); the geometry uses
3 images per class and m = 4 views.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.analyses.manifolds import MANIFOLD_PRESETS, ViewPreset, manifold_summary  # noqa: E402
from core.data.datasets import demo, per_class_subset  # noqa: E402
from core.encoders.registry import describe  # noqa: E402
from core.features.extract import view_features  # noqa: E402
from core.stores import Stores  # noqa: E402
from core.lab.runs import OBJECTIVES, TrainConfig, load_run  # noqa: E402
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
    args = parser.parse_args()
    if args.quick and args.cache is None:  # never the repository's cache/
        with temporary_cache() as cache:
            measure(cache, quick=True)
    else:
        measure(args.cache or cache_root(), quick=args.quick)


def measure(cache: Path, quick: bool) -> None:
    os.environ["REPSCOPE_CACHE"] = str(cache)  # where lab:<run id> encoders are looked up
    image_set = demo(cache)
    began, specs = time.perf_counter(), []
    for objective in OBJECTIVES:
        start = time.perf_counter()
        config = TrainConfig(objective, **QUICK_CONFIG) if quick else TrainConfig(objective)
        run = load_run(cache, train(config, cache).name)
        epochs = pd.DataFrame(run.history).groupby("epoch")["loss"].mean().round(3).tolist()
        print(f"{objective:>10}  {time.perf_counter() - start:6.1f} s  loss per epoch {epochs}", flush=True)
        specs.append(run.spec)
    total = time.perf_counter() - began
    print(f"all four: {total:.1f} s; ratio to the 15-minute budget {total / BUDGET_S:.2f} (< 1 passes; a run "
          "already on disk counts ~0 s)")
    full = QUICK_VIEWS if quick else MANIFOLD_PRESETS["full"]
    subset = image_set.subset(per_class_subset(image_set, full.per_class))
    rows = []
    for spec in specs:
        views = view_features(subset, describe(spec), "final", Stores.at(cache).features, m=full.m)
        summary = manifold_summary(views, subset.metadata["category"].to_numpy())
        rows.append({"encoder": spec, **summary.row()})
    print(pd.DataFrame(rows).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
