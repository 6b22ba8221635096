"""Input corruptions of Zhong et al. (ICCV 2023) that probe spatial inductive bias (docs/science.md §7).

- gamma g:   x' = 255 (x / 255)^g per channel;
- glo_N:     cut the image into an N x N grid of patches and permute the patch positions;
- loc_N:     the same grid, and permute the pixels inside every patch.

The shuffles use ONE fixed permutation (numpy seed 42 by default) for every image, reused for
every patch in loc_N, unless `per_image` asks for a fresh permutation per image (seeded by
(seed, row), so still reproducible). Corruptions act on the image as loaded, before the
encoder's resize and crop. When a side is not a multiple of N, the last `side mod N` pixel
rows/columns stay where they are, so every shuffle is an exact permutation of the pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from core.data.transforms import IDENTITY, InputTransform

FAMILIES = ("glo", "loc", "gamma")
FAMILY_LABELS = {"glo": "global shuffle (glo_N)", "loc": "local shuffle (loc_N)", "gamma": "gamma (gamma_g)"}
DEFAULT_SEED = 42  # Zhong et al.'s fixed permutation seed


def apply_gamma(pixels: np.ndarray, g: float) -> np.ndarray:
    """(H, W, C) uint8 -> (H, W, C) uint8 with x' = round(255 (x / 255)^g)."""
    if g <= 0:
        raise ValueError(f"Gamma must be positive; got {g}.")
    lookup = np.round(255.0 * (np.arange(256) / 255.0) ** g).astype(np.uint8)
    return lookup[np.asarray(pixels, dtype=np.uint8)]


def patch_grid(height: int, width: int, n: int) -> tuple[int, int]:
    """(patch height, patch width) of an n x n grid over the top-left (n·ph, n·pw) pixels."""
    if n < 1:
        raise ValueError(f"A shuffle grid needs N >= 1; got {n}.")
    if height < n or width < n:
        raise ValueError(f"A {height} x {width} image cannot be cut into a {n} x {n} grid.")
    return height // n, width // n


def shuffle_patches(pixels: np.ndarray, n: int, permutation: np.ndarray) -> np.ndarray:
    """(H, W, C) -> (H, W, C): patch k of the n x n grid (row-major) moves to position k, taken from permutation[k]."""
    ph, pw = patch_grid(pixels.shape[0], pixels.shape[1], n)
    grid = pixels[:n * ph, :n * pw].reshape(n, ph, n, pw, -1).transpose(0, 2, 1, 3, 4).reshape(n * n, ph, pw, -1)
    shuffled = grid[permutation].reshape(n, n, ph, pw, -1).transpose(0, 2, 1, 3, 4).reshape(n * ph, n * pw, -1)
    out = pixels.copy()
    out[:n * ph, :n * pw] = shuffled.reshape(out[:n * ph, :n * pw].shape)
    return out


def shuffle_within_patches(pixels: np.ndarray, n: int, permutation: np.ndarray) -> np.ndarray:
    """(H, W, C) -> (H, W, C): the pixels of every patch of the n x n grid reordered by one (ph·pw,) permutation."""
    ph, pw = patch_grid(pixels.shape[0], pixels.shape[1], n)
    grid = pixels[:n * ph, :n * pw].reshape(n, ph, n, pw, -1).transpose(0, 2, 1, 3, 4).reshape(n, n, ph * pw, -1)
    shuffled = grid[:, :, permutation].reshape(n, n, ph, pw, -1).transpose(0, 2, 1, 3, 4).reshape(n * ph, n * pw, -1)
    out = pixels.copy()
    out[:n * ph, :n * pw] = shuffled.reshape(out[:n * ph, :n * pw].shape)
    return out


@dataclass(frozen=True)
class Corruption:
    """One corruption level, e.g. glo_8: callable on a PIL image or uint8 array, and a cacheable InputTransform."""

    family: str  # "clean" | "glo" | "loc" | "gamma"
    level: float = 1.0  # grid size N for glo/loc, exponent g for gamma
    seed: int = DEFAULT_SEED
    per_image: bool = False

    def __post_init__(self):
        if self.family not in ("clean", *FAMILIES):
            raise ValueError(f"Unknown corruption family {self.family!r}; choose one of {', '.join(FAMILIES)}.")
        if self.family in ("glo", "loc") and (self.level < 1 or self.level != int(self.level)):
            raise ValueError(f"{self.family}_N needs a whole grid size N >= 1; got {self.level:g}.")
        if self.family == "gamma" and self.level <= 0:
            raise ValueError(f"Gamma must be positive; got {self.level:g}.")

    @property
    def name(self) -> str:
        """Zhong et al.'s label: clean, glo_8, loc_4, gamma_0.5 (+ "_rand" for per-image permutations)."""
        if self.family == "clean":
            return "clean"
        return f"{self.family}_{self.level:g}" + ("_rand" if self.per_image and self.shuffles else "")

    @property
    def shuffles(self) -> bool:
        return self.family in ("glo", "loc")

    @property
    def is_identity(self) -> bool:
        return self.family == "clean" or self.level == 1

    def permutation(self, size: int, row: int = 0) -> np.ndarray:
        """(size,) the fixed permutation (the image's own when per_image)."""
        rng = np.random.default_rng((self.seed, row) if self.per_image else self.seed)
        return rng.permutation(size)

    def __call__(self, image: Image.Image | np.ndarray, row: int = 0) -> Image.Image | np.ndarray:
        """The corrupted image, same type and shape as `image`; `row` seeds per-image permutations."""
        pixels = np.asarray(image, dtype=np.uint8)
        if self.family == "gamma":
            out = apply_gamma(pixels, self.level)
        elif self.shuffles and self.level > 1:
            n = int(self.level)
            squeeze = pixels.ndim == 2
            pixels = pixels[..., None] if squeeze else pixels
            if self.family == "glo":
                out = shuffle_patches(pixels, n, self.permutation(n * n, row))
            else:
                ph, pw = patch_grid(pixels.shape[0], pixels.shape[1], n)
                out = shuffle_within_patches(pixels, n, self.permutation(ph * pw, row))
            out = out[..., 0] if squeeze else out
        else:
            out = pixels.copy()
        return Image.fromarray(out, mode=image.mode) if isinstance(image, Image.Image) else out

    @property
    def input_transform(self) -> InputTransform:
        """The InputTransform to extract with: its name (with the seed for shuffles) keys the feature cache."""
        if self.is_identity:
            return IDENTITY  # identical pixels: share the clean features
        name = f"corrupt:{self.name}|seed={self.seed}" if self.shuffles else f"corrupt:{self.name}"
        return InputTransform(name=name, apply=self)  # itself, not a closure: it pickles into DataLoader workers


CLEAN = Corruption("clean")


def gamma(g: float) -> Corruption:
    """Gamma distortion x' = 255 (x / 255)^g."""
    return Corruption("gamma", float(g))


def global_shuffle(n: int, seed: int = DEFAULT_SEED, per_image: bool = False) -> Corruption:
    """glo_N: permute the positions of an N x N grid of patches (one permutation for all images unless per_image)."""
    return Corruption("glo", float(n), seed, per_image)


def local_shuffle(n: int, seed: int = DEFAULT_SEED, per_image: bool = False) -> Corruption:
    """loc_N: permute the pixels inside each patch of an N x N grid, one permutation for every patch."""
    return Corruption("loc", float(n), seed, per_image)


def parse_corruption(name: str, seed: int = DEFAULT_SEED) -> Corruption:
    """"clean", "glo_8", "loc_4", "gamma_0.5" (optionally "..._rand") -> Corruption."""
    if name == "clean":
        return CLEAN
    family, _, rest = name.partition("_")
    level, _, suffix = rest.partition("_")
    try:
        return Corruption(family, float(level), seed, per_image=suffix == "rand")
    except ValueError as error:
        raise ValueError(f"Cannot read corruption {name!r}: {error} Write e.g. glo_8, loc_4, gamma_0.5.") from None
