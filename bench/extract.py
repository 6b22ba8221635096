"""Extraction speed: ours (all layers, one pass) vs a bare forward loop vs one pass per layer; app path vs CLI path.

    python bench/extract.py [--quick] [--images 64] [--encoder untrained:timm:vit_base_patch16_224]
    python bench/extract.py --app-path [--quick] [--images 900] [--encoder bundled:efficientnet_lite0] [--repeat 3]

All three are timed end to end in the same run, from spec + image files to features:
model construction, image decoding + preprocessing, forward passes. `bare` is the floor
(`model(x)` over the batches, features discarded); `naive` is what many toolkits do (a
forward hook on one block, one full pass per layer); `ours` is `core.features.extract.extract`
on an empty cache, including its chunked writes. Targets: ours/bare <= 1.2, naive/ours >= 5.
Also reports a cache hit on the same request.

`--app-path`: the same extraction of OASIS images (final layer) run as the app runs it, on a
`core.jobs.JobRegistry` job thread with the page's progress callback (views/ui/extraction.py),
vs on the main thread as `python -m core extract` runs it; automatic worker count both ways,
plus the job thread with images loaded in-thread (0 workers, the app's behaviour before its
workers got a fork server). The first app run of a process also starts that server, so it is
reported apart; then `--repeat` rounds run each path once, in rotating order, and each path's
fastest run counts (other processes on a shared machine only ever slow a run down). Last, the
cost of starting DataLoader workers per start method (first batch of 32 images with 1 worker,
minus in-process). Target: app/CLI <= 1.1.

`--quick` (a check that the bench runs, in seconds; its ratios mean little), in a temporary REPSCOPE_CACHE: 8 demo
images through timm's 6-block test_vit (untrained), batch 4; with `--app-path`, 16 demo images (not OASIS) through
pixels:32, batch 8, one round. `--quick` without `--app-path` runs both, one after the other.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.data.datasets import demo, load_dataset  # noqa: E402
from core.data.images import load_image  # noqa: E402
from core.data.transforms import IDENTITY  # noqa: E402
from core.encoders.registry import describe, load_encoder  # noqa: E402
from core.features import extract as extract_module  # noqa: E402
from core.features.extract import _ImageRows, extract  # noqa: E402
from core.features.store import FeatureStore  # noqa: E402
from core.jobs import JobRegistry, job_key  # noqa: E402
from core.paths import cache_root, temporary_cache  # noqa: E402

OASIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "oasis"


def preprocessed_batches(encoder, paths, batch_size: int) -> list[torch.Tensor]:
    images = [encoder.transform(load_image(path)) for path in paths]
    return [torch.stack(images[start:start + batch_size]) for start in range(0, len(images), batch_size)]


def time_bare(spec: str, paths, batch_size: int) -> float:
    started = time.perf_counter()
    encoder = load_encoder(describe(spec))
    with torch.inference_mode():
        for batch in preprocessed_batches(encoder, paths, batch_size):
            encoder.model(batch)
    return time.perf_counter() - started


def time_naive(spec: str, paths, layers: list[str], batch_size: int) -> float:
    started = time.perf_counter()
    encoder = load_encoder(describe(spec))
    batches = preprocessed_batches(encoder, paths, batch_size)  # decoded once: generous to the baseline
    captured: list[torch.Tensor] = []
    for layer in layers:
        module = encoder.model.get_submodule(layer)
        hook = module.register_forward_hook(lambda _, __, output: captured.append(output[:, 0].clone()))
        with torch.inference_mode():
            for batch in batches:
                encoder.model(batch)
        hook.remove()
    return time.perf_counter() - started


def time_ours(image_set, spec: str, layers: list[str], batch_size: int, store: FeatureStore) -> float:
    started = time.perf_counter()
    extract(image_set, describe(spec), layers, store, batch_size=batch_size, device="cpu")
    return time.perf_counter() - started


def time_cli_path(image_set, spec: str, batch_size: int) -> float:
    """Seconds of `python -m core extract`'s call: extract on the main thread, automatic workers."""
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        extract(image_set, describe(spec), ["final"], FeatureStore(folder), batch_size=batch_size,
                progress=lambda progress: None)
        return time.perf_counter() - started


def time_app_path(image_set, spec: str, batch_size: int, num_workers: int | None = None) -> float:
    """Seconds from submit to done of the page's extraction job (views/ui/extraction.py `start_extraction`)."""
    registry = JobRegistry(max_workers=1)  # one job on its own thread, as the app runs an extraction
    with tempfile.TemporaryDirectory() as folder:
        store, encoder = FeatureStore(folder), describe(spec)

        def work(report):
            extract(image_set, encoder, ["final"], store, pooling="auto", device="auto", batch_size=batch_size,
                    num_workers=num_workers, progress=report)

        key = job_key("extract", image_set.fingerprint, spec, "final", "auto")
        started = time.perf_counter()
        registry.submit(key, spec, work)
        status = registry.wait(key, timeout_s=3600)
        seconds = time.perf_counter() - started
    if status is None or status.state != "done":
        raise SystemExit(f"app-path job ended {status.state if status else 'missing'}: {status and status.error}")
    return seconds


def first_batch_s(dataset, context, workers: int, on_thread: bool = True) -> float:
    """Seconds from DataLoader construction to its first batch, on a fresh thread (as a job runs) or this one."""
    seconds: list[float] = []

    def run() -> None:
        started = time.perf_counter()
        loader = iter(DataLoader(dataset, batch_size=len(dataset), num_workers=workers,
                                 multiprocessing_context=context))
        next(loader)
        seconds.append(time.perf_counter() - started)
        del loader  # shuts the workers down outside the timing

    if not on_thread:
        run()
        return seconds[0]
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return seconds[0]


def on_thread_context():
    """The DataLoader context extraction picks on a job thread (it starts the preloaded fork server)."""
    contexts = []
    thread = threading.Thread(target=lambda: contexts.append(extract_module._worker_context(1)))
    thread.start()
    thread.join()
    return contexts[0]


def worker_start_costs(image_set, spec: str) -> None:
    """Per start method: first batch of 32 images with 1 worker minus in-process, first and second loader."""
    dataset = _ImageRows(image_set.paths[:32], load_encoder(describe(spec)).transform, IDENTITY, 0)
    in_process = min(first_batch_s(dataset, None, 0) for _ in range(3))
    print(f"worker start-up: first batch of 32 images with 1 worker minus in-process ({in_process:.2f} s), seconds")
    print(f"  {'start method':<52}{'1st loader':>11}{'2nd loader':>11}")
    methods = [("fork (the CLI's; main thread, unsafe off it)", multiprocessing.get_context("fork"), False),
               ("spawn, job thread", multiprocessing.get_context("spawn"), True),
               ("fork server, preloaded as extraction uses it, job thread*", on_thread_context(), True)]
    for label, context, on_thread in methods:
        first, second = (first_batch_s(dataset, context, 1, on_thread) - in_process for _ in range(2))
        print(f"  {label:<52}{first:11.2f}{second:11.2f}", flush=True)
    print("  * warm: the app runs above started the server (its cold start shows in the app's first run)")


def app_path_main(args: argparse.Namespace) -> None:
    spec = args.encoder or ("pixels:32" if args.quick else "bundled:efficientnet_lite0")
    n_images = args.images or (16 if args.quick else 900)
    source = "demo" if args.quick else f"oasis:{args.oasis}"
    batch_size, repeat = args.batch_size or (8 if args.quick else 32), args.repeat or (1 if args.quick else 3)
    image_set = load_dataset(source, cache_root()).subset(range(n_images))
    print(f"{spec}, final layer, {n_images} {'demo' if args.quick else 'OASIS'} images, batch {batch_size}, "
          f"{torch.get_num_threads()} torch threads, cpu, {repeat} rounds; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    time_cli_path(image_set.subset(range(batch_size)), spec, batch_size)  # warm-up: imports, weights
    app_first = time_app_path(image_set, spec, batch_size)
    paths = {"CLI: main thread": lambda: time_cli_path(image_set, spec, batch_size),
             "app: job thread": lambda: time_app_path(image_set, spec, batch_size),
             "app: job thread, 0 workers (before)": lambda: time_app_path(image_set, spec, batch_size, 0)}
    seconds: dict[str, list[float]] = {label: [] for label in paths}
    for round_index in range(repeat):
        order = list(paths)[round_index % len(paths):] + list(paths)[:round_index % len(paths)]
        for label in order:
            seconds[label].append(paths[label]())
        print(f"  round {round_index + 1}: " + ", ".join(f"{label} {seconds[label][-1]:.2f} s" for label in paths),
              flush=True)
    best = {label: min(runs) for label, runs in seconds.items()}
    print(f"{'path (fastest of the rounds)':<46}{'seconds':>9}")
    for label, value in best.items():
        print(f"{label:<46}{value:9.2f}")
    print(f"{'app: job thread, first run of the process':<46}{app_first:9.2f}  (starts the fork server)")
    cli = best["CLI: main thread"]
    print(f"app/CLI = {best['app: job thread'] / cli:.2f}  (target <= 1.1); first run of the process "
          f"{app_first / cli:.2f}; 0 workers (before) {best['app: job thread, 0 workers (before)'] / cli:.2f}")
    worker_start_costs(image_set, spec)
    print(f"load average now {os.getloadavg()[0]:.1f} (other processes' load slows runs unevenly)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=None, help="default: 64 demo images; 900 with --app-path")
    parser.add_argument("--encoder", default=None,
                        help="default: untrained:timm:vit_base_patch16_224; bundled:efficientnet_lite0 with --app-path")
    parser.add_argument("--batch-size", type=int, default=None, help="default 32 (quick: 4; app path 8)")
    parser.add_argument("--app-path", action="store_true", help="time the app's job-thread path vs the CLI path")
    parser.add_argument("--oasis", type=Path, default=OASIS, help="OASIS folder (OASIS.csv, images/)")
    parser.add_argument("--repeat", type=int, default=None, help="--app-path rounds (each path once per round; "
                                                                 "default 3, quick 1)")
    parser.add_argument("--quick", action="store_true", help="a few demo images through a tiny encoder, in a "
                                                             "temporary cache: checks that the bench runs")
    args = parser.parse_args()
    with temporary_cache(args.quick):  # quick: the demo is generated into a temporary cache, not cache/
        run(args)


def run(args: argparse.Namespace) -> None:
    if args.app_path:
        app_path_main(args)
        return
    default_encoder = "untrained:timm:test_vit" if args.quick else "untrained:timm:vit_base_patch16_224"
    n_images, spec = args.images or (8 if args.quick else 64), args.encoder or default_encoder
    batch_size = args.batch_size or (4 if args.quick else 32)
    image_set = demo(cache_root()).subset(range(n_images))
    layers = ([layer for layer in describe(spec).layers if layer.startswith("blocks.")] if args.quick
              else [f"blocks.{index}" for index in range(12)])
    print(f"{spec}, {len(layers)} layers, {n_images} demo images, batch {batch_size}, "
          f"{torch.get_num_threads()} torch threads, cpu")
    time_bare(spec, image_set.paths[:batch_size], batch_size)  # warm-up: imports, allocator
    with tempfile.TemporaryDirectory() as folder:
        store = FeatureStore(folder)
        bare = time_bare(spec, image_set.paths, batch_size)
        ours = time_ours(image_set, spec, layers, batch_size, store)
        naive = time_naive(spec, image_set.paths, layers, batch_size)
        hit = time_ours(image_set, spec, layers, batch_size, store)
    print(f"{'method':<34}{'seconds':>9}")
    print(f"{'bare model(x) loop':<34}{bare:9.2f}")
    print(f"{'ours: all layers, one pass':<34}{ours:9.2f}")
    print(f"{'naive: one pass per layer (hook)':<34}{naive:9.2f}")
    print(f"{'ours again (cache hit)':<34}{hit:9.3f}")
    print(f"ours/bare  = {ours / bare:.2f}  (target <= 1.2)")
    print(f"naive/ours = {naive / ours:.2f}  (target >= 5)")
    if args.quick:  # quick checks both halves of the bench; --encoder / --images apply to the first only
        print("\n--app-path, quick:", flush=True)
        app_path_main(argparse.Namespace(**{**vars(args), "encoder": None, "images": None, "batch_size": None}))


if __name__ == "__main__":
    main()
