"""Page defaults on the demo: each page's default computation, from a cold cache, against one baseline.

    .venv/bin/python bench/pages.py [--full] [--pages manifolds,inductive_bias]

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
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
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
from core.data.datasets import (  # noqa: E402
    ImageSet,
    demo,
    per_class_subset,  # noqa: E402
)
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


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def features(image_set: ImageSet, store: FeatureStore) -> None:
    for spec in ENCODERS:
        extract(image_set, describe(spec), [LAYER], store, device="cpu")


def affect(image_set: ImageSet, store: FeatureStore) -> None:
    metadata = image_set.metadata
    targets = metadata[list(TARGETS)].to_numpy(dtype=float)
    for spec in ENCODERS:
        x = np.asarray(extract(image_set, describe(spec), [LAYER], store, device="cpu")[LAYER].features)
        for scheme in AFFECT_SCHEMES:
            cv = CrossValidation(scheme, AFFECT_FOLDS)
            metrics_table(cross_validated_predictions(x, targets, cv.groups(metadata), cv))


def layer_probes(image_set: ImageSet, store: FeatureStore, results: ResultCache) -> None:
    for spec in ENCODERS:
        extract(image_set, describe(spec), "all", store, device="cpu")
        encoder_curves(image_set, describe(spec), store, settings=PROBE_SETTINGS, probes=(*TARGETS, "category"),
                       results=results)


def alignment(image_set: ImageSet, store: FeatureStore) -> None:
    target = extract(image_set, describe(KNOWN_ITEM_MATCH), [LAYER], store, device="cpu")[LAYER].features
    align(rdm(image_set.reference_embedding, "cosine"), rdm(target, "cosine"), **ALIGNMENT)


def manifolds(image_set: ImageSet, store: FeatureStore, preset: ViewPreset) -> None:
    subset = image_set.subset(per_class_subset(image_set, preset.per_class))
    categories, ids = subset.metadata["category"].to_numpy(), subset.metadata["image_id"].to_numpy()
    for spec in ENCODERS:
        views = view_features(subset, describe(spec), LAYER, store, m=preset.m, device="cpu")
        analyse_manifolds(views, categories, ids)  # the page's defaults: r_s 8.5, t-SNE, perplexity 30


def inductive_bias(image_set: ImageSet, store: FeatureStore, results: ResultCache, preset: BiasPreset) -> None:
    subset = image_set.subset(per_class_subset(image_set, preset.per_class))
    settings = BiasSettings(n_splits=preset.n_splits)  # k, scheme and train_on: BiasSettings' defaults, as the page
    for spec in ENCODERS:
        corruption_metrics(subset, describe(spec), LAYER, store, preset.corruptions(), settings, device="cpu", results=results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="also time the full Manifolds / Inductive bias settings")
    parser.add_argument("--pages", default=",".join(PAGES), help=f"comma-separated subset of {', '.join(PAGES)} "
                                                                 "(the baseline always runs)")
    args = parser.parse_args()
    full, pages = args.full, set(args.pages.split(","))
    if pages - set(PAGES):
        parser.error(f"unknown page(s) {', '.join(sorted(pages - set(PAGES)))}; choose from {', '.join(PAGES)}")
    with tempfile.TemporaryDirectory() as folder:
        cache = Path(folder)
        os.environ["REPSCOPE_CACHE"] = str(cache)  # as the app: encoders and results look here
        image_set = demo(cache)
        stores = Stores.at(cache)
        store, results = stores.features, stores.scores
        print(f"demo ({len(image_set)} images), encoders {', '.join(ENCODERS)}, {torch.get_num_threads()} torch "
              f"threads, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
        quick_views, quick_bias = MANIFOLD_PRESETS["quick"], BIAS_PRESETS["quick"]
        full_views, full_bias = MANIFOLD_PRESETS["full"], BIAS_PRESETS["full"]
        runs = [  # (page, row name, work)
            ("features", "Features (final layer, baseline)", lambda: features(image_set, store)),
            ("affect", f"Affect ({' + '.join(AFFECT_SCHEMES)})", lambda: affect(image_set, store)),
            ("probes", "Layer probes (all layers + fits)", lambda: layer_probes(image_set, store, results)),
            ("alignment", f"Alignment (human -> {KNOWN_ITEM_MATCH})", lambda: alignment(image_set, store)),
            ("manifolds", f"Manifolds quick ({quick_views.per_class}/class, m {quick_views.m})",
             lambda: manifolds(image_set, store, quick_views)),
            ("inductive_bias", f"Inductive bias quick ({quick_bias.per_class}/class, "
                               f"{len(quick_bias.corruptions()) + 1} cond.)",
             lambda: inductive_bias(image_set, store, results, quick_bias)),
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
