"""Layer x layer similarity of two 13-layer encoders on 900 items: one compare() call vs the usual per-pair loop.

    python bench/similarity.py [--quick] [--items 900] [--layers 13] [--seed 0]

Random features of the two encoders' shapes (what the measures cost depends on the shapes only): an untrained
ViT-B/16, 13 x (N, 768) (patch embedding + 12 blocks), and EfficientNet-Lite0's 13 blocks of widths 16 ... 1280.
Both compute linear CKA and RSA (Spearman ρ between cosine RDMs) for every (ViT layer, EfficientNet layer) cell.
(a) ours: `compare(vit, effnet, ("cka_linear", "rsa_spearman"), SimilaritySettings(rdm_metric="cosine"))`, which
prepares each layer once (Gram, RDM ranks) and then does one cheap product per cell. (b) the baseline, as most
CKA scripts do it: for every cell, centre both layers, Kornblith's gram-form linear CKA with fresh Grams, scipy
`pdist(metric="cosine")` of both and `scipy.stats.spearmanr` on the condensed vectors. Checks that the two agree
(max |difference| < 1e-6). Target: (b) / (a) >= 10 and (a) < 10 s.

`--quick` (a check that the bench runs, in seconds; its ratio means little): 60 items and 3 layers per encoder,
unless --items / --layers say otherwise. Nothing is written to disk.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.analyses.similarity import SimilaritySettings, compare  # noqa: E402

VIT_WIDTH = 768
# EfficientNet-Lite0's block output widths, two blocks per stage as the issue gives them (timm's
# forward_intermediates exposes the stem, 7 stages and the 1280-wide head: 9 arrays).
EFFNET_WIDTHS = (16, 24, 24, 40, 40, 80, 80, 112, 112, 192, 192, 320, 1280)
TOLERANCE = 1e-6


def random_layers(n_items: int, widths, prefix: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """{f"{prefix}{index}": (n_items, width) float32 features}, as a feature store holds them."""
    return {f"{prefix}{index}": rng.normal(size=(n_items, width)).astype(np.float32)
            for index, width in enumerate(widths)}


def gram_linear(x: np.ndarray) -> np.ndarray:
    return x @ x.T


def center_gram(gram: np.ndarray) -> np.ndarray:
    means = gram.mean(axis=0)
    return gram - means[None, :] - means[:, None] + means.mean()


def kornblith_cka(gram_x: np.ndarray, gram_y: np.ndarray) -> float:
    """Kornblith et al. (2019) `cka(gram_x, gram_y)`: centred Grams, Frobenius inner product, normalised."""
    gram_x, gram_y = center_gram(gram_x), center_gram(gram_y)
    return float(np.sum(gram_x * gram_y) / (np.linalg.norm(gram_x) * np.linalg.norm(gram_y)))


def per_pair_loop(rows: dict[str, np.ndarray], columns: dict[str, np.ndarray]) -> np.ndarray:
    """(2, n_rows, n_columns) linear CKA and RSA, every Gram and RDM recomputed for every cell."""
    values = np.empty((2, len(rows), len(columns)))
    for r, x in enumerate(rows.values()):
        for c, y in enumerate(columns.values()):
            x_centred = np.asarray(x, dtype=np.float64) - x.mean(axis=0, dtype=np.float64)
            y_centred = np.asarray(y, dtype=np.float64) - y.mean(axis=0, dtype=np.float64)
            values[0, r, c] = kornblith_cka(gram_linear(x_centred), gram_linear(y_centred))
            values[1, r, c] = spearmanr(pdist(x, "cosine"), pdist(y, "cosine")).statistic
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="60 items, 3 layers: checks that the bench runs")
    parser.add_argument("--items", type=int, default=None, help="items (rows of every layer; default 900, quick 60)")
    parser.add_argument("--layers", type=int, default=None, help="layers per encoder (at most 13; default 13, quick 3)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.items = args.items or (60 if args.quick else 900)
    args.layers = args.layers or (3 if args.quick else 13)
    if not 1 <= args.layers <= len(EFFNET_WIDTHS):
        sys.exit(f"--layers must be between 1 and {len(EFFNET_WIDTHS)}; got {args.layers}.")
    rng = np.random.default_rng(args.seed)
    vit = random_layers(args.items, (VIT_WIDTH,) * args.layers, "vit.", rng)
    effnet = random_layers(args.items, EFFNET_WIDTHS[:args.layers], "effnet.", rng)
    cells = args.layers ** 2
    print(f"{args.layers} ViT-B/16 layers (N x {VIT_WIDTH}) x {args.layers} EfficientNet-Lite0 layers "
          f"(N x {min(EFFNET_WIDTHS[:args.layers])}..{max(EFFNET_WIDTHS[:args.layers])}), N = {args.items}: "
          f"{cells} cells, linear CKA + RSA (Spearman, cosine RDMs)", flush=True)

    started = time.perf_counter()
    ours = compare(vit, effnet, ("cka_linear", "rsa_spearman"), SimilaritySettings(rdm_metric="cosine"))
    ours_seconds = time.perf_counter() - started
    print(f"(a) ours, one compare() call:  {ours_seconds:7.2f} s", flush=True)

    started = time.perf_counter()
    baseline = per_pair_loop(vit, effnet)
    baseline_seconds = time.perf_counter() - started
    print(f"(b) per-pair loop (Kornblith CKA, pdist + spearmanr): {baseline_seconds:7.2f} s "
          f"({baseline_seconds / cells * 1000:.0f} ms a cell)")

    differences = np.abs(ours.values - baseline)
    agree = bool(differences.max() < TOLERANCE)
    print(f"max |ours - baseline|: CKA {differences[0].max():.2e}, RSA {differences[1].max():.2e} "
          f"({'agree' if agree else 'DISAGREE'}: tolerance {TOLERANCE:g})")
    ratio = baseline_seconds / ours_seconds
    met = ratio >= 10 and ours_seconds < 10
    print(f"speed-up baseline / ours: {ratio:.1f}x; target >= 10x and ours < 10 s: {'met' if met else 'MISSED'}")
    if not agree:
        sys.exit(1)


if __name__ == "__main__":
    main()
