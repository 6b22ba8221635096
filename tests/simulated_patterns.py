"""A `neural:` folder of simulated response patterns with known answers, for the encoding tests (no public pattern
data is at hand).

Each of N images is 128 + 20 · Σ_j z_ij · basis_j (k latents z ~ N(0, 1), random RGB basis images), so `pixels:8`
features are an affine map of z up to rounding; each unit's signal is z · b with |b| = 1 (variance 1, a planted
linear map of the features) and each of R repetitions adds independent noise of SD σ. The reliability of the mean
of R repetitions is then 1 / (1 + σ² / R) and the best r any model reaches is its square root.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIZE, N_LATENTS, AMPLITUDE = 16, 3, 20.0


def expected_reliability(noise_sd: float, n_reps: int) -> float:
    """The reliability of the mean of `n_reps` repetitions of a unit-variance signal with noise of SD `noise_sd`."""
    return 1.0 / (1.0 + noise_sd ** 2 / n_reps)


def write_pattern_folder(root: Path, *, n_items: int = 24, n_units: int = 40, n_reps: int = 4, noise_sd: float = 1.0,
                         subjects: int = 2, seed: int = 0, noise_group: bool = True) -> Path:
    """images/ (n_items PNGs) and patterns/IT/<subject>.npy (R, N, U) as the module doc says; `noise_group` adds
    patterns/noise.npy, (R, N, U) of pure noise (no signal: reliability and r near 0)."""
    rng = np.random.default_rng(seed)
    latents = rng.standard_normal((n_items, N_LATENTS))
    basis = rng.standard_normal((N_LATENTS, SIZE, SIZE, 3))
    pixels = np.clip(np.rint(128 + AMPLITUDE * np.tensordot(latents, basis, axes=1)), 0, 255).astype(np.uint8)
    (root / "images").mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(pixels):
        Image.fromarray(image).save(root / "images" / f"item{index:02d}.png")
    (root / "patterns" / "IT").mkdir(parents=True, exist_ok=True)
    for subject in range(subjects):
        weights = rng.standard_normal((N_LATENTS, n_units))
        signal = latents @ (weights / np.linalg.norm(weights, axis=0))
        np.save(root / "patterns" / "IT" / f"monkey{subject + 1}.npy",
                signal + noise_sd * rng.standard_normal((n_reps, n_items, n_units)))
    if noise_group:
        np.save(root / "patterns" / "noise.npy", rng.standard_normal((n_reps, n_items, n_units)))
    return root
