"""Extraction speed: ours (all layers, one pass) vs a bare forward loop vs one pass per layer.

    python bench/extract.py [--images 64] [--encoder untrained:timm:vit_base_patch16_224]

All three are timed end to end in the same run, from spec + image files to features:
model construction, image decoding + preprocessing, forward passes. `bare` is the floor
(`model(x)` over the batches, features discarded); `naive` is what many toolkits do (a
forward hook on one block, one full pass per layer); `ours` is `core.features.extract.extract`
on an empty cache, including its chunked writes. Targets: ours/bare <= 1.2, naive/ours >= 5.
Also reports a cache hit on the same request.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.data.datasets import demo, load_image  # noqa: E402
from core.encoders.registry import describe, load_encoder  # noqa: E402
from core.features.extract import extract  # noqa: E402
from core.features.store import FeatureStore  # noqa: E402
from core.paths import cache_root  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--encoder", default="untrained:timm:vit_base_patch16_224")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    image_set = demo(cache_root()).subset(range(args.images))
    layers = [f"blocks.{index}" for index in range(12)]
    print(f"{args.encoder}, {len(layers)} layers, {args.images} demo images, batch {args.batch_size}, "
          f"{torch.get_num_threads()} torch threads, cpu")
    time_bare(args.encoder, image_set.paths[:args.batch_size], args.batch_size)  # warm-up: imports, allocator
    with tempfile.TemporaryDirectory() as folder:
        store = FeatureStore(folder)
        bare = time_bare(args.encoder, image_set.paths, args.batch_size)
        ours = time_ours(image_set, args.encoder, layers, args.batch_size, store)
        naive = time_naive(args.encoder, image_set.paths, layers, args.batch_size)
        hit = time_ours(image_set, args.encoder, layers, args.batch_size, store)
    print(f"{'method':<34}{'seconds':>9}")
    print(f"{'bare model(x) loop':<34}{bare:9.2f}")
    print(f"{'ours: all layers, one pass':<34}{ours:9.2f}")
    print(f"{'naive: one pass per layer (hook)':<34}{naive:9.2f}")
    print(f"{'ours again (cache hit)':<34}{hit:9.3f}")
    print(f"ours/bare  = {ours / bare:.2f}  (target <= 1.2)")
    print(f"naive/ours = {naive / ours:.2f}  (target >= 5)")


if __name__ == "__main__":
    main()
