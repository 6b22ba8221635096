"""Input transforms: `InputTransform` (a named per-image transform, part of the feature cache key) and
CLAMP's augmentation pipeline (docs/science.md §6), deterministic per (seed, view row), m views per image.

The parameters are drawn from a numpy Generator seeded by (seed, row) rather than from
torch's global RNG, so a view is the same image in every run, process and thread, and the
extraction cache can key views by the pipeline's name.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torchvision.transforms.functional as TF
from PIL import Image, ImageFilter

from core.data.datasets import ImageSet


@dataclass(frozen=True)
class InputTransform:
    """A named transform applied to each PIL image before the encoder's preprocessing.

    The name is part of the cache key, so corrupted or augmented inputs are cached
    like clean ones. `apply(image, row)` gets the image's row so per-image randomness
    can be seeded reproducibly; it must pickle (a module-level function or a dataclass
    with `__call__`, not a lambda) to run in extraction's DataLoader worker processes.
    """

    name: str = "clean"
    apply: Callable[[Image.Image, int], Image.Image] | None = None


IDENTITY = InputTransform()  # the unaltered image


@dataclass(frozen=True)
class AugmentationPipeline:
    """Random resized crop, flip, colour jitter, grayscale and blur with CLAMP's (SimCLR's) defaults."""
    size: int = 224
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)

    @property
    def name(self) -> str:
        """Every parameter, for cache keys: two pipelines share features only if they are equal."""
        return "clamp(" + ",".join(f"{key}={_short(value)}" for key, value in asdict(self).items()) + ")"

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        """One augmented (size, size) RGB view of `image`."""
        top, left, height, width = self._crop_box(image.size, rng)
        view = TF.resized_crop(image, top, left, height, width, [self.size, self.size], antialias=True)
        if rng.random() < self.flip_p:
            view = TF.hflip(view)
        if rng.random() < self.jitter_p:
            view = self._jitter(view, rng)
        if rng.random() < self.grayscale_p:
            view = TF.rgb_to_grayscale(view, num_output_channels=3)
        if rng.random() < self.blur_p:
            view = view.filter(ImageFilter.GaussianBlur(radius=rng.uniform(*self.blur_sigma)))
        return view

    def _crop_box(self, size: tuple[int, int], rng: np.random.Generator) -> tuple[int, int, int, int]:
        # torchvision's RandomResizedCrop.get_params, with this generator.
        width, height = size
        area = width * height
        log_ratio = np.log(self.crop_ratio)
        for _ in range(10):
            target_area = area * rng.uniform(*self.crop_scale)
            aspect = np.exp(rng.uniform(*log_ratio))
            crop_width = int(round(np.sqrt(target_area * aspect)))
            crop_height = int(round(np.sqrt(target_area / aspect)))
            if 0 < crop_width <= width and 0 < crop_height <= height:
                return (int(rng.integers(0, height - crop_height + 1)), int(rng.integers(0, width - crop_width + 1)),
                        crop_height, crop_width)
        side = min(width, height)  # fallback: the central square
        return (height - side) // 2, (width - side) // 2, side, side

    def _jitter(self, view: Image.Image, rng: np.random.Generator) -> Image.Image:
        adjustments = [
            lambda image: TF.adjust_brightness(image, rng.uniform(1 - self.brightness, 1 + self.brightness)),
            lambda image: TF.adjust_contrast(image, rng.uniform(1 - self.contrast, 1 + self.contrast)),
            lambda image: TF.adjust_saturation(image, rng.uniform(1 - self.saturation, 1 + self.saturation)),
            lambda image: TF.adjust_hue(image, rng.uniform(-self.hue, self.hue)),
        ]
        for index in rng.permutation(len(adjustments)):  # ColorJitter applies them in random order
            view = adjustments[index](view)
        return view


@dataclass(frozen=True)
class SeededAugmentation:
    """`apply` of the augmentation views: row r's view drawn with the Generator seeded by (seed, r).

    A dataclass rather than a closure, so it pickles into DataLoader worker processes.
    """
    pipeline: AugmentationPipeline
    seed: int

    def __call__(self, image: Image.Image, row: int) -> Image.Image:
        return self.pipeline(image, np.random.default_rng((self.seed, row)))


def augmentation_views(image_set: ImageSet, m: int, pipeline: AugmentationPipeline = AugmentationPipeline(),
                       seed: int = 0) -> tuple[ImageSet, InputTransform]:
    """(N·m rows: image i's views at rows i·m … i·m + m − 1) ImageSet and the InputTransform that augments each row.

    Extract with `core.features.extract.extract(views, info, layers, store, input_transform=...)`: the features are
    cached per (encoder, layer, images, m, pipeline, seed) like any other feature array.
    """
    if m < 2:
        raise ValueError(f"A sub-manifold needs at least 2 views per image; got m = {m}.")
    views = image_set.repeated(m)
    return views, InputTransform(name=f"{pipeline.name}|m={m}|seed={seed}", apply=SeededAugmentation(pipeline, seed))


def _short(value) -> str:
    if isinstance(value, tuple):
        return "-".join(_short(item) for item in value)
    return f"{value:g}" if isinstance(value, float) else str(value)
