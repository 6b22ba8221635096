"""Peak memory of flat pooling: 12 ViT-B/16 blocks, whole outputs, on the 900 OASIS images.

    python bench/flat_memory.py [--quick] [--oasis ../shared/data/oasis] [--images 900] [--pooling flat:4096]
                                [--batch-size 32]

Extracts blocks 0..11 of untrained:timm:vit_base_patch16_224 into a temporary store, once with
`flat:4096` and once with `cls` (the baseline: same model, images and batches, one token kept),
each in a fresh process because ru_maxrss is a per-process high-water mark. Prints both peaks
against the size the unreduced maps would need, 900 x 12 x 197 x 768 float32 values = 6.5 GB:
the projection runs batch by batch, so only one batch of unreduced maps exists at a time.
Target: flat's peak RSS < 4 GB. DataLoader workers are separate processes; their largest RSS
(which counts the model pages they share with their parent) is printed too.

`--quick` (a check that the bench runs, in seconds; its peaks say little about 900 images): 8 demo images
(generated in a temporary REPSCOPE_CACHE; OASIS is not needed), batch 4, `flat:256` against `cls`, the same model
and layers.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.data.datasets import demo, oasis  # noqa: E402
from core.encoders.registry import describe  # noqa: E402
from core.features.extract import extract  # noqa: E402
from core.features.store import FeatureStore  # noqa: E402
from core.paths import cache_root, temporary_cache  # noqa: E402

SPEC = "untrained:timm:vit_base_patch16_224"
LAYERS = [f"blocks.{index}" for index in range(12)]
TOKENS, WIDTH = 197, 768  # ViT-B/16 at 224 px: 1 class token + 196 patches, 768 channels
TARGET_BYTES = 4 * 10**9


def peak_rss_bytes(who: int = resource.RUSAGE_SELF) -> int:
    return resource.getrusage(who).ru_maxrss * 1024  # Linux reports kilobytes


def measure_here(root: Path | None, n_images: int, pooling: str, batch_size: int) -> dict:
    """Extract in this process; its peak RSS, its workers' and what came out (root None: the demo in the cache)."""
    image_set = (demo(cache_root()) if root is None else oasis(root)).subset(range(n_images))
    info = describe(SPEC)
    imports = peak_rss_bytes()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        features = extract(image_set, info, LAYERS, FeatureStore(folder), pooling=pooling, device="cpu",
                           batch_size=batch_size)
        shapes = sorted({feature_set.features.shape for feature_set in features.values()})
        key_pooling = features[LAYERS[0]].key.pooling
    return {"pooling": pooling, "key_pooling": key_pooling, "shapes": [list(shape) for shape in shapes],
            "seconds": time.perf_counter() - started, "imports": imports, "peak": peak_rss_bytes(),
            "workers": peak_rss_bytes(resource.RUSAGE_CHILDREN)}


def measure_in_fresh_process(args: argparse.Namespace, pooling: str) -> dict:
    command = [sys.executable, __file__, "--child", "--oasis", str(args.oasis), "--images", str(args.images),
               "--pooling", pooling, "--batch-size", str(args.batch_size)] + (["--quick"] if args.quick else [])
    finished = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(finished.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oasis", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "oasis")
    parser.add_argument("--images", type=int, default=None, help="default 900 (quick 8)")
    parser.add_argument("--pooling", default=None, help="default flat:4096 (quick flat:256: building 12 projections "
                                                        "to 4096 dimensions alone takes ~30 s)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 32 (quick 4)")
    parser.add_argument("--quick", action="store_true", help="8 demo images, batch 4: checks that the bench runs")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.images = args.images or (8 if args.quick else 900)
    args.batch_size = args.batch_size or (4 if args.quick else 32)
    args.pooling = args.pooling or ("flat:256" if args.quick else "flat:4096")
    if args.child:  # a quick child reads the demo its parent generated in the (temporary) cache it was handed
        print(json.dumps(measure_here(None if args.quick else args.oasis, args.images, args.pooling, args.batch_size)))
        return
    with temporary_cache(args.quick):  # quick: a temporary cache the children inherit, not cache/
        if args.quick:
            demo(cache_root())  # generated once, before either child's clock starts
        run(args)


def run(args: argparse.Namespace) -> None:
    source = "demo" if args.quick else "OASIS"
    print(f"{SPEC}, {len(LAYERS)} blocks, {args.images} {source} images, batch {args.batch_size}, cpu")
    flat, baseline = measure_in_fresh_process(args, args.pooling), measure_in_fresh_process(args, "cls")
    naive = args.images * len(LAYERS) * TOKENS * WIDTH * 4
    for run in (flat, baseline):
        print(f"{run['pooling']}: key pooling {run['key_pooling']!r}, {len(LAYERS)} layers of shape(s) "
              f"{run['shapes']}, {run['seconds']:.0f} s")
    print(f"{'':40}{args.pooling:>12}{'cls':>12}")
    for label, field in (("peak RSS after imports (GB)", "imports"), ("peak RSS, extraction process (GB)", "peak"),
                         ("peak RSS, a DataLoader worker (GB)", "workers")):
        print(f"{label:40}{flat[field] / 1e9:12.2f}{baseline[field] / 1e9:12.2f}")
    print(f"{'peak RSS, extraction process (bytes)':40}{flat['peak']:12d}{baseline['peak']:12d}")
    print(f"unreduced maps, {args.images} x 12 x 197 x 768 x 4 bytes = {naive / 1e9:.2f} GB ({naive} bytes)")
    print(f"{args.pooling} peak / cls peak = {flat['peak'] / baseline['peak']:.2f}; "
          f"unreduced maps / {args.pooling} peak = {naive / flat['peak']:.2f}; "
          f"{args.pooling} peak {'<' if flat['peak'] < TARGET_BYTES else '>='} 4 GB target")
    if flat["peak"] >= TARGET_BYTES:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
