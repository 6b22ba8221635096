"""Page defaults on the demo: each page's default computation, from a cold cache, against one baseline.

    .venv/bin/python bench/pages.py [--quick] [--full] [--pages manifolds,inductive_bias]

Runs what each page computes with its default widgets and the sidebar's default encoders
(bundled:efficientnet_lite0 and pixels:32, final layer) on the demo, in a fresh temporary
REPSCOPE_CACHE, by calling the same core functions. The baseline, measured in the same run,
is the Features page's default: extracting both encoders' final layer (the demo is generated
before any clock starts). Each row prints seconds and seconds / baseline. Pages that need the
Features page's extraction (Affect, Layer probes, Alignment) start from it, as in the app.

Manifolds and Inductive bias read their settings from `MANIFOLD_PRESETS` / `BIAS_PRESETS`, the
same objects the pages draw their widgets from; `--full` also times the "full" preset and prints
quick / full. Affect, Layer probes and Alignment have no shared defaults module: their defaults
are copied below from the page sources (marked), so check them when those pages change.

`--quick` (a check that the bench runs, in seconds; its ratios mean little): the same pages on 96 demo images (24
per category) with pixels:32 and pixels:8 instead of the sidebar's CNN, 2 epsilons in Alignment instead of 10, and
the quick presets made smaller (6 images per class, m 4 views; 6 per class, 2 splits in Inductive bias); `--full` is
ignored.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.analyses.affect import TARGETS, cross_validated_predictions, metrics_table  # noqa: E402
from core.analyses.cv import CrossValidation  # noqa: E402
from core.analyses.gwot import DEFAULT_EPS  # noqa: E402
from core.analyses.gwot_search import align  # noqa: E402
from core.analyses.inductive_bias import BIAS_PRESETS, BiasPreset, BiasSettings, corruption_metrics  # noqa: E402
from core.analyses.manifolds import MANIFOLD_PRESETS, ViewPreset, analyse_manifolds  # noqa: E402
from core.analyses.probes import ProbeSettings, encoder_curves  # noqa: E402
from core.analyses.rdm import rdm  # noqa: E402
from core.data.datasets import ImageSet, demo  # noqa: E402
from core.data.selections import per_class_subset  # noqa: E402
from core.data.demo import KNOWN_ITEM_MATCH  # noqa: E402
from core.encoders.registry import describe  # noqa: E402
from core.features.extract import extract, view_features  # noqa: E402
from core.features.store import FeatureStore, ResultCache  # noqa: E402
from core.stores import Stores  # noqa: E402

ENCODERS = ("bundled:efficientnet_lite0", "pixels:32")  # views/ui/sidebar.py DEFAULT_ENCODERS
LAYER = "final"  # the sidebar's default layer
PAGES = ("affect", "probes", "alignment", "manifolds", "inductive_bias")
# --- copied from the page sources (no shared defaults module): keep in step with them ---
AFFECT_SCHEMES, AFFECT_FOLDS = ("loto", "loco"), 5  # views/affect.py: schemes default, K
PROBE_SETTINGS = ProbeSettings("loto", "gkfold", 5)  # views/probes.py: first scheme, gkfold, K = 5
ALIGNMENT = dict(eps_range=DEFAULT_EPS["cosine"], n_eps=10, n_inits=1, init="random", search="grid",
                 warm_start=True, backend="numpy", max_iter=1000)  # views/alignment.py: cosine, human -> pixels:32
# --- end of copied defaults ---
QUICK_ENCODERS = ("pixels:32", "pixels:8")  # --quick: no CNN
QUICK_EPSILONS = 2
QUICK_PER_CLASS = 24  # --quick: 96 of the demo's 384 images
QUICK_VIEWS = ViewPreset(per_class=6, m=4)
QUICK_BIAS = replace(BIAS_PRESETS["quick"], per_class=6, n_splits=2)


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def features(image_set: ImageSet, store: FeatureStore, encoders=ENCODERS) -> None:
    for spec in encoders:
        extract(image_set, describe(spec), [LAYER], store, device="cpu")


def affect(image_set: ImageSet, store: FeatureStore, encoders=ENCODERS) -> None:
    metadata = image_set.metadata
    targets = metadata[list(TARGETS)].to_numpy(dtype=float)
    for spec in encoders:
        x = np.asarray(extract(image_set, describe(spec), [LAYER], store, device="cpu")[LAYER].features)
        for scheme in AFFECT_SCHEMES:
            cv = CrossValidation(scheme, AFFECT_FOLDS)
            metrics_table(cross_validated_predictions(x, targets, cv.groups(metadata), cv))


def layer_probes(image_set: ImageSet, store: FeatureStore, results: ResultCache, encoders=ENCODERS) -> None:
    for spec in encoders:
        extract(image_set, describe(spec), "all", store, device="cpu")
        encoder_curves(image_set, describe(spec), store, settings=PROBE_SETTINGS, probes=(*TARGETS, "category"),
                       results=results)


def alignment(image_set: ImageSet, store: FeatureStore, n_eps: int = ALIGNMENT["n_eps"]) -> None:
    target = extract(image_set, describe(KNOWN_ITEM_MATCH), [LAYER], store, device="cpu")[LAYER].features
    align(rdm(image_set.reference_embedding, "cosine"), rdm(target, "cosine"), **{**ALIGNMENT, "n_eps": n_eps})


def manifolds(image_set: ImageSet, store: FeatureStore, preset: ViewPreset, encoders=ENCODERS) -> None:
    subset = image_set.subset(per_class_subset(image_set, preset.per_class))
    categories, ids = subset.metadata["category"].to_numpy(), subset.metadata["image_id"].to_numpy()
    for spec in encoders:
        views = view_features(subset, describe(spec), LAYER, store, m=preset.m, device="cpu")
        analyse_manifolds(views, categories, ids)  # the page's defaults: r_s 8.5, t-SNE, perplexity 30


def inductive_bias(image_set: ImageSet, store: FeatureStore, results: ResultCache, preset: BiasPreset,
                   encoders=ENCODERS) -> None:
    subset = image_set.subset(per_class_subset(image_set, preset.per_class))
    settings = BiasSettings(n_splits=preset.n_splits)  # k, scheme and train_on: BiasSettings' defaults, as the page
    for spec in encoders:
        corruption_metrics(subset, describe(spec), LAYER, store, preset.corruptions(), settings, device="cpu", results=results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="also time the full Manifolds / Inductive bias settings")
    parser.add_argument("--pages", default=",".join(PAGES), help=f"comma-separated subset of {', '.join(PAGES)} "
                                                                 "(the baseline always runs)")
    parser.add_argument("--quick", action="store_true", help="pixel encoders, smaller settings: checks that the "
                                                             "bench runs")
    args = parser.parse_args()
    full, pages, quick = args.full and not args.quick, set(args.pages.split(",")), args.quick
    encoders = QUICK_ENCODERS if quick else ENCODERS
    if pages - set(PAGES):
        parser.error(f"unknown page(s) {', '.join(sorted(pages - set(PAGES)))}; choose from {', '.join(PAGES)}")
    with tempfile.TemporaryDirectory() as folder:
        cache = Path(folder)
        os.environ["REPSCOPE_CACHE"] = str(cache)  # as the app: encoders and results look here
        image_set = demo(cache)
        if quick:
            image_set = image_set.subset(per_class_subset(image_set, QUICK_PER_CLASS))
        stores = Stores.at(cache)
        store, results = stores.features, stores.scores
        print(f"{'QUICK: ' if quick else ''}demo ({len(image_set)} images), encoders {', '.join(encoders)}, "
              f"{torch.get_num_threads()} torch "
              f"threads, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
        quick_views, quick_bias = ((QUICK_VIEWS, QUICK_BIAS) if quick
                                   else (MANIFOLD_PRESETS["quick"], BIAS_PRESETS["quick"]))
        n_eps = QUICK_EPSILONS if quick else ALIGNMENT["n_eps"]
        full_views, full_bias = MANIFOLD_PRESETS["full"], BIAS_PRESETS["full"]
        runs = [  # (page, row name, work)
            ("features", "Features (final layer, baseline)", lambda: features(image_set, store, encoders)),
            ("affect", f"Affect ({' + '.join(AFFECT_SCHEMES)})", lambda: affect(image_set, store, encoders)),
            ("probes", "Layer probes (all layers + fits)", lambda: layer_probes(image_set, store, results, encoders)),
            ("alignment", f"Alignment (human -> {KNOWN_ITEM_MATCH}{f', {n_eps} eps' if quick else ''})",
             lambda: alignment(image_set, store, n_eps)),
            ("manifolds", f"Manifolds quick ({quick_views.per_class}/class, m {quick_views.m})",
             lambda: manifolds(image_set, store, quick_views, encoders)),
            ("inductive_bias", f"Inductive bias quick ({quick_bias.per_class}/class, "
                               f"{len(quick_bias.corruptions()) + 1} cond.)",
             lambda: inductive_bias(image_set, store, results, quick_bias, encoders)),
        ] + ([
            ("manifolds", f"Manifolds full ({full_views.per_class}/class, m {full_views.m})",
             lambda: manifolds(image_set, store, full_views)),
            ("inductive_bias", f"Inductive bias full ({full_bias.per_class}/class, "
                               f"{len(full_bias.corruptions()) + 1} cond.)",
             lambda: inductive_bias(image_set, store, results, full_bias)),
        ] if full else [])
        seconds = {}
        print(f"{'page (defaults, cold cache)':<52}{'seconds':>9}{'/ baseline':>12}", flush=True)
        for page, name, run in runs:
            if page != "features" and page not in pages:
                continue
            seconds[name] = timed(run)
            baseline = next(iter(seconds.values()))
            print(f"{name:<52}{seconds[name]:9.1f}{seconds[name] / baseline:12.2f}", flush=True)
        if full:
            names = list(seconds)
            for page in ("Manifolds", "Inductive bias"):
                pair = [seconds[name] for name in names if name.startswith(f"{page} ")]
                if len(pair) == 2:
                    print(f"{page}: quick / full = {pair[0] / pair[1]:.2f}")


if __name__ == "__main__":
    main()
