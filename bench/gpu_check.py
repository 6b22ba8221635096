"""GPU check: autocast accuracy, extraction throughput against a bare forward, GWOT torch vs numpy.

    python bench/gpu_check.py [--quick] [--device cuda] [--images 512] [--batch-size 64] [--gwot-n 1854] [--gwot-eps 3]

(1) Autocast: every layer of a ViT-B/16 (untrained; also a pretrained one when its weights are
    cached) and a ResNet-50, through the forward extraction uses (`Encoder.forward_layers` under
    `torch.inference_mode`), in bf16 and fp16 autocast against fp32: per layer the largest
    relative error over the images, max_i ||f_i - f32_i|| / ||f32_i|| (per-row L2, so
    near-zero elements do not blow it up).
(2) Throughput, images/s: `core.features.extract.extract` of the final layer (DataLoader
    workers, pinned memory, autocast), on the main thread (CLI) and on a job thread (app), over
    its batches, against a bare `model(x)` loop (same autocast) on images decoded and moved to
    the GPU beforehand: the floor that decoding and copying add to. Images: OASIS when
    ../shared/data has it, else the demo set (repeated up to --images).
(3) GWOT at N = --gwot-n: `core.analyses.gwot_search.align` with backend="torch" (on the GPU) vs
    "numpy", same RDMs, epsilons and init: seconds, selected epsilon, GW distance, top-1. THINGS
    Group1 -> Group2 when ../shared/data has it, else a synthetic pair (a 90-d embedding and a
    noisy copy of it).
Without CUDA it says so and exits 0. `--device cpu` runs the same code on a few images as a
smoke test (its numbers mean nothing about a GPU).
`--quick` (a check that the bench runs, in seconds) is that smoke test (`--device cpu` unless --device says
otherwise) on what is always there: 8 demo images (4 for the errors) generated in a temporary REPSCOPE_CACHE, a
synthetic GWOT pair of N = 60 and 2 epsilons, whether or not ../shared/data exists.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.analyses.gwot import backend_label  # noqa: E402
from core.analyses.gwot_search import align  # noqa: E402
from core.analyses.rdm import rdm  # noqa: E402
from core.data.datasets import ImageSet, demo, load_dataset  # noqa: E402
from core.data.images import load_image  # noqa: E402
from core.encoders.registry import describe, load_encoder, spec_availability  # noqa: E402
from core.features.extract import extract  # noqa: E402
from core.features.store import FeatureStore  # noqa: E402
from core.jobs import JobRegistry, job_key  # noqa: E402
from core.paths import cache_root, temporary_cache  # noqa: E402
from core.progress import Progress  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
UNTRAINED = ("untrained:timm:vit_base_patch16_224", "untrained:timm:resnet50")
PRETRAINED = {  # per family, the first whose weights are cached is checked too
    "ViT-B": ("timm:vit_base_patch16_224.augreg2_in21k_ft_in1k", "timm:vit_base_patch16_224.augreg_in21k_ft_in1k",
              "timm:vit_base_patch16_224.augreg_in1k", "open_clip:ViT-B-16@openai"),
    "ResNet-50": ("timm:resnet50.a1_in1k", "timm:resnet50.tv_in1k"),
}
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def encoders_to_check() -> list[str]:
    """The untrained ViT-B and ResNet-50, plus per family the first pretrained one whose weights are cached."""
    cached = [next((spec for spec in specs if spec_availability(spec)[0]), None) for specs in PRETRAINED.values()]
    return list(UNTRAINED) + [spec for spec in cached if spec is not None]


def max_relative_error(features: np.ndarray, reference: np.ndarray) -> float:
    """max_i ||features_i - reference_i|| / ||reference_i|| over the rows of (N, D) arrays (inf where not finite)."""
    if not np.isfinite(features).all():
        return float("inf")
    errors = np.linalg.norm(features - reference, axis=1) / np.maximum(np.linalg.norm(reference, axis=1), 1e-12)
    return float(errors.max())


def format_table(header: tuple[str, ...], rows: list[tuple]) -> str:
    """Rows as aligned text columns: floats to 3 significant digits."""
    cells = [header] + [tuple(f"{cell:.3g}" if isinstance(cell, float) else str(cell) for cell in row)
                        for row in rows]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells)


def benchmark_images(n: int, cache: Path, shared: bool = True) -> ImageSet:
    """n images: OASIS when ../shared/data has it (and `shared`), else the demo set, repeated up to n."""
    oasis = SHARED / "oasis"
    use_oasis = shared and (oasis / "OASIS.csv").is_file()
    image_set = load_dataset(f"oasis:{oasis}", cache) if use_oasis else demo(cache)
    if len(image_set) < n:
        image_set = image_set.repeated(-(-n // len(image_set)))
    return image_set.subset(range(n))


def decoded_batches(encoder, image_set: ImageSet, batch_size: int, device: torch.device) -> list[torch.Tensor]:
    """The images through the encoder's transform, as (B, 3, H, W) tensors already on `device`."""
    images = torch.stack([encoder.transform(load_image(path)) for path in image_set.paths])
    return [images[start:start + batch_size].to(device) for start in range(0, len(images), batch_size)]


def layer_features(encoder, batches: list[torch.Tensor], dtype: torch.dtype | None) -> dict[str, np.ndarray]:
    """{layer: (N, D) float32} of every layer, as extraction's forward gives them (autocast in `dtype`, None: fp32)."""
    layers, pooling = encoder.info.layers, encoder.info.resolve_pooling("auto")
    outputs: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    device_type = batches[0].device.type
    for batch in batches:
        with torch.inference_mode(), torch.autocast(device_type, dtype=dtype or torch.float32, enabled=dtype is not None):
            for layer, values in encoder.forward_layers(batch, layers, pooling).items():
                outputs[layer].append(values.float().cpu().numpy())
    return {layer: np.concatenate(values) for layer, values in outputs.items()}


def autocast_rows(spec: str, image_set: ImageSet, batch_size: int, device: torch.device) -> list[tuple]:
    """(spec, layer, bf16 error, fp16 error) per layer of `spec`."""
    encoder = load_encoder(describe(spec), device)
    batches = decoded_batches(encoder, image_set, batch_size, device)
    reference = layer_features(encoder, batches, None)
    errors = {name: {layer: max_relative_error(values, reference[layer])
                     for layer, values in layer_features(encoder, batches, dtype).items()}
              for name, dtype in AUTOCAST_DTYPES.items()}
    return [(spec, layer, errors["bf16"][layer], errors["fp16"][layer]) for layer in reference]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_images_per_s(spec: str, image_set: ImageSet, batch_size: int, device: torch.device) -> float:
    """images/s of `model(x)` under extraction's autocast on pre-decoded images already on the device."""
    encoder = load_encoder(describe(spec), device)
    batches = decoded_batches(encoder, image_set, batch_size, device)
    dtype = torch.bfloat16 if device.type != "cuda" or torch.cuda.is_bf16_supported() else torch.float16
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
        encoder.model(batches[0])  # warm-up: kernels, allocator
        synchronize(device)
        started = time.perf_counter()
        for batch in batches:
            encoder.model(batch)
        synchronize(device)
    return len(image_set) / (time.perf_counter() - started)


def ours_images_per_s(spec: str, image_set: ImageSet, batch_size: int, device: torch.device,
                      on_job_thread: bool) -> float:
    """images/s of `extract` over its batches (model loading excluded), on this thread or a job thread."""
    reports: list[Progress] = []
    with tempfile.TemporaryDirectory() as folder:
        store = FeatureStore(folder)

        def run(report=None) -> None:
            extract(image_set, describe(spec), ["final"], store, device=str(device), batch_size=batch_size,
                    progress=reports.append)

        if on_job_thread:
            registry = JobRegistry(max_workers=1)
            key = job_key("extract", image_set.fingerprint, spec, "final", str(device))
            registry.submit(key, spec, run)
            status = registry.wait(key, timeout_s=600)
            if status is None or status.state != "done":
                raise RuntimeError(f"extraction job ended {status and status.state}: {status and status.error}")
        else:
            run()
    return rate_in(reports[-1].message)


def rate_in(message: str) -> float:
    """The images/s of an extraction's last progress message ("… · 28.5 images/s in this run")."""
    return float(message.removesuffix(" images/s in this run").rsplit(" ", 1)[-1])


def throughput_rows(specs: list[str], image_set: ImageSet, batch_size: int, device: torch.device) -> list[tuple]:
    """(spec, bare, ours main thread, ours job thread, ours/bare) in images/s."""
    rows = []
    for spec in specs:
        ours_images_per_s(spec, image_set.subset(range(batch_size)), batch_size, device, False)  # warm-up
        bare = bare_images_per_s(spec, image_set, batch_size, device)
        main = ours_images_per_s(spec, image_set, batch_size, device, False)
        job = ours_images_per_s(spec, image_set, batch_size, device, True)
        rows.append((spec, bare, main, job, min(main, job) / bare))
        print(format_table(("encoder", "bare", "ours CLI", "ours app", "ours/bare"), rows[-1:]), flush=True)
    return rows


@dataclass(frozen=True)
class GwotRun:
    backend: str
    seconds: float
    epsilon: float
    gw_distance: float
    top1: float


def gwot_rdms(n: int, shared: bool = True) -> tuple[np.ndarray, np.ndarray, str]:
    """Two (n, n) euclidean RDMs: THINGS Group1 and Group2 when present (and `shared`, n <= 1854), else a synthetic
    pair."""
    things = SHARED / "gwtune" / "THINGS"
    if shared and (things / "THINGS_embedding_Group1.npy").is_file() and n <= 1854:
        embeddings = [np.load(things / f"THINGS_embedding_Group{group}.npy")[0][:n] for group in (1, 2)]
        source = "THINGS Group1 -> Group2"
    else:
        rng = np.random.default_rng(0)
        first = rng.gamma(1.0, 1.0, size=(n, 90)).astype(np.float32)
        embeddings = [first, first + rng.normal(0, 0.3, size=first.shape).astype(np.float32)]
        source = "synthetic 90-d embedding and a noisy copy"
    return rdm(embeddings[0], "euclidean"), rdm(embeddings[1], "euclidean"), source


def gwot_run(C1: np.ndarray, C2: np.ndarray, backend: str, n_eps: int) -> GwotRun:
    started = time.perf_counter()
    alignment = align(C1, C2, eps_range=(1.0, 10.0), n_eps=n_eps, n_inits=1, backend=backend)
    seconds = time.perf_counter() - started
    return GwotRun(backend_label(backend), seconds, alignment.epsilon, alignment.gw_distance,
                   float(alignment.trials.loc[alignment.selected, "top1"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="cuda (default) or cpu (a smoke test of this script; "
                                                        "the default with --quick)")
    parser.add_argument("--quick", action="store_true", help="the cpu smoke test on the demo and a synthetic GWOT "
                                                             "pair, in a temporary cache: checks that the bench runs")
    parser.add_argument("--images", type=int, default=None, help="default 512 on cuda, 8 on cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="default 64 on cuda, 4 on cpu")
    parser.add_argument("--error-images", type=int, default=None, help="images for the autocast errors (64; cpu 4)")
    parser.add_argument("--gwot-n", type=int, default=None, help="default 1854 on cuda, 100 on cpu")
    parser.add_argument("--gwot-eps", type=int, default=None, help="epsilons of each GWOT search (3; quick 2)")
    args = parser.parse_args()
    with temporary_cache(args.quick):  # quick: the demo is generated into a temporary cache, not cache/
        return run(args)


def run(args: argparse.Namespace) -> int:
    device = torch.device(args.device or ("cpu" if args.quick else "cuda"))
    args.gwot_eps = args.gwot_eps or (2 if args.quick else 3)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False); nothing to check. "
              "Run it on a GPU machine, or with --device cpu as a smoke test.")
        return 0
    on_gpu = device.type == "cuda"
    big = on_gpu and not args.quick  # quick is tiny on any device
    n_images, batch_size = args.images or (512 if big else 8), args.batch_size or (64 if big else 4)
    n_error_images = args.error_images or (64 if big else 4)
    gwot_n = args.gwot_n or (60 if args.quick else 1854 if on_gpu else 100)
    print(f"device {torch.cuda.get_device_name(device) if on_gpu else 'cpu (smoke test)'}, torch {torch.__version__}"
          + (f", bf16 supported: {torch.cuda.is_bf16_supported()}" if on_gpu else ""), flush=True)
    image_set = benchmark_images(max(n_images, n_error_images), cache_root(), shared=not args.quick)
    specs = encoders_to_check() if on_gpu else ["untrained:timm:resnet18"]

    print(f"\n(1) autocast vs fp32, max over {n_error_images} images of the per-row relative L2 error")
    error_images = image_set.subset(range(n_error_images))
    rows = [row for spec in specs for row in autocast_rows(spec, error_images, batch_size, device)]
    print(format_table(("encoder", "layer", "bf16", "fp16"), rows), flush=True)

    print(f"\n(2) images/s over {n_images} images, batch {batch_size}, final layer")
    throughput_rows(specs, image_set.subset(range(n_images)), batch_size, device)

    C1, C2, source = gwot_rdms(gwot_n, shared=not args.quick)
    print(f"\n(3) GWOT, {source}, N = {gwot_n}, {args.gwot_eps} epsilons in [1, 10], one init", flush=True)
    gwot_run(*(matrix[:50, :50] for matrix in (C1, C2)), "torch", 1)  # warm-up: CUDA context, kernels
    runs = [gwot_run(C1, C2, backend, args.gwot_eps) for backend in ("numpy", "torch")]
    print(format_table(("backend", "seconds", "selected eps", "GW distance", "top-1"),
                       [(run.backend, run.seconds, run.epsilon, run.gw_distance, run.top1) for run in runs]))
    print(f"numpy / torch seconds = {runs[0].seconds / runs[1].seconds:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
