"""Procedural demo image set in OASIS format, with known ground truth for affect and geometry.

`ensure_demo(cache_dir)` writes `cache_dir/demo/` once: `OASIS.csv` (the real file's columns,
unnamed id column included, then the six generative attributes as extra columns),
`images/<Theme>.jpg` (224x224 RGB) and `reference_embedding.npy` (the synthetic "human"
embedding, rows in CSV order).

Generation is atomic: everything is written into a `.demo-staging-*` sibling, a COMPLETE
marker (the generator version) is written last and the folder is then renamed into place, so
a killed run never leaves a demo that reads as complete; staging folders older than an hour
are removed. Output is byte-identical across runs (fixed seeds, per-image generators).

Generative model (all attributes live in [0, 1]; seed `DEMO_SEED`)
------------------------------------------------------------------
Design: 4 categories (shape families Blob, Star, Grating, Landscape) x 12 themes x 8 images.
Within every category the 12 themes cross warmth {cool 0.2, warm 0.8} x smoothness
{spiky 0.2, smooth 0.8} x brightness {dark 0.15, medium 0.5, bright 0.85}, each level moved
by a theme jitter U(-0.12, 0.12); saturation, contrast and clutter are stratified over the 12
themes (one draw per twelfth of [0.05, 0.95], randomly assigned). Every category therefore
spans every attribute range: attributes cut ACROSS categories, and the theme name says which
cell it is ("Warm spiky dark blob 3"; the OASIS rule "strip the trailing number" gives the
theme back). Each image adds N(0, 0.05) to its theme's attributes (clipped to [0, 1]); the
CSV holds these per-image values, rounded to 4 decimals.

Rendering (what each attribute does to the pixels):
  warmth      hue 0.52 + 0.55 * warmth (mod 1): cyan, blue, violet, magenta, red, orange
  brightness  mean HSV value, 0.15 + 0.7 * brightness
  saturation  HSV saturation of the figure, 0.08 + 0.87 * saturation (ground 0.7x that)
  contrast    figure/ground value difference, 2 * (0.04 + 0.36 * contrast), random polarity
  smoothness  blob: spike depth and edge blur; star: rounded vs needle points; grating:
              sine vs sawtooth profile; landscape: rolling hills vs jagged peaks
  clutter     number of blobs / stars (1-7), grating frequency and plaid components (1-3),
              landscape ridge layers (1-5)
plus a gentle vertical shading and pixel noise N(0, 0.015).

Ratings on the OASIS 1-7 scale, with centred attributes u_a = 2 a - 1:
  valence* = 4 + 1.1 u_warmth + 0.8 u_brightness + 0.8 u_smoothness
  arousal* = 4 + 0.9 u_saturation + 0.8 u_contrast - 0.8 u_smoothness + 0.4 u_clutter
  Valence_mean = clip(valence* + theme offset N(0, 0.3) + rating noise N(0, 0.2), 1, 7)
  Arousal_mean = clip(arousal* + theme offset N(0, 0.3) + rating noise N(0, 0.2), 1, 7)
`noiseless_ratings(attributes)` evaluates valence* and arousal*. Valence_SD, Arousal_SD and
the N columns are plausible decorations (SD grows with distance from the scale centre; N is
drawn per theme in 95..110), not part of the model.

Reference ("human") embedding, d = 48, non-negative: a synthetic observer who reports the
perceived colour layout of each image, i.e. the mean RGB of each cell of a 4 x 4 grid over the
rendered 224 x 224 pixels (before JPEG), + N(0, 0.03), clipped at 0, float32. It is an
item-level function of what raw pixels show, so on the Alignment page (defaults: cosine RDMs,
epsilon 1e-5..1e-1, 10 epsilons, annealing) human vs `pixels:32 · final` has a known answer:
GWOT recovers most items (measured: top-1 65 %, category 90 %, RSA 0.97; chance 0.26 % and 25 %),
with the GW distance levelled off at the smallest epsilon. `pixels:4` (the observer's own grid)
gives top-1 84 %; `pixels:1` (mean colour) only the coarse geometry (RSA 0.64, top-1 2.6 %).
`bundled:efficientnet_lite0` mostly sees the shape families, which this observer ignores.
"""
from __future__ import annotations

import colorsys
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from PIL import Image

DEMO_VERSION = "2"  # 2: the reference embedding is the 4 x 4 colour layout
DEMO_SEED = 20240607
DEMO_FOLDER = "demo"
COMPLETE_MARKER = "COMPLETE"
REFERENCE_FILE = "reference_embedding.npy"
STAGING_PREFIX = ".demo-staging-"
STALE_STAGING_S = 3600.0
IMAGE_SIZE = 224
JPEG_QUALITY = 90
CATEGORIES = ("Blob", "Star", "Grating", "Landscape")
IMAGES_PER_THEME = 8
ATTRIBUTES = ("warmth", "brightness", "smoothness", "saturation", "contrast", "clutter")
STRATIFIED_ATTRIBUTES = ("saturation", "contrast", "clutter")
VALENCE_WEIGHTS = {"warmth": 1.1, "brightness": 0.8, "smoothness": 0.8}
AROUSAL_WEIGHTS = {"saturation": 0.9, "contrast": 0.8, "smoothness": -0.8, "clutter": 0.4}
RATING_CENTRE = 4.0
THEME_OFFSET_SD = 0.3
RATING_NOISE_SD = 0.2
THEME_LEVEL_JITTER = 0.12
IMAGE_JITTER_SD = 0.05
EMBEDDING_NOISE_SD = 0.03
EMBEDDING_GRID = 4
KNOWN_ITEM_MATCH = "pixels:32"  # the encoder whose features share item-level structure with the reference
WARMTH_LEVELS = {"Cool": 0.2, "Warm": 0.8}
SMOOTHNESS_LEVELS = {"spiky": 0.2, "smooth": 0.8}
BRIGHTNESS_LEVELS = {"dark": 0.15, "medium": 0.5, "bright": 0.85}
CSV_COLUMNS = ("", "Theme", "Category", "Source", "Valence_mean", "Valence_SD", "Valence_N",
               "Arousal_mean", "Arousal_SD", "Arousal_N") + ATTRIBUTES
SOURCE = "RepScope procedural demo"


def ensure_demo(cache_dir: str | Path) -> Path:
    """Generate the demo set under cache_dir/demo once (384 images, 224x224x3) and return that folder."""
    cache = Path(cache_dir).expanduser().resolve()
    target = cache / DEMO_FOLDER
    if _is_complete(target):
        return target
    cache.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(cache)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=cache))
    try:
        _write_demo(staging)
        (staging / COMPLETE_MARKER).write_text(DEMO_VERSION)
        _publish(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def noiseless_ratings(attributes: pd.DataFrame) -> pd.DataFrame:
    """(N, attribute columns) -> (N, 2) columns valence, arousal: the documented rating functions without noise."""
    return pd.DataFrame({
        "valence": _linear_rating(attributes, VALENCE_WEIGHTS),
        "arousal": _linear_rating(attributes, AROUSAL_WEIGHTS),
    }, index=attributes.index)


def _linear_rating(attributes: pd.DataFrame, weights: dict[str, float]) -> np.ndarray:
    """(N, attributes) -> (N,) RATING_CENTRE + sum_a w_a (2 a - 1)."""
    centred = {name: 2.0 * attributes[name].to_numpy(dtype=np.float64) - 1.0 for name in weights}
    return RATING_CENTRE + sum(weight * centred[name] for name, weight in weights.items())


def _is_complete(folder: Path) -> bool:
    """True when folder holds a finished demo of this generator version (the marker is written last)."""
    marker = folder / COMPLETE_MARKER
    return (marker.is_file() and marker.read_text().strip() == DEMO_VERSION
            and (folder / "OASIS.csv").is_file() and (folder / REFERENCE_FILE).is_file())


def _remove_stale_staging(cache: Path) -> None:
    """Delete staging folders left by killed runs; young ones may belong to a run still in progress."""
    cutoff = time.time() - STALE_STAGING_S
    for leftover in cache.glob(STAGING_PREFIX + "*"):
        if leftover.is_dir() and leftover.stat().st_mtime < cutoff:
            shutil.rmtree(leftover, ignore_errors=True)


def _publish(staging: Path, target: Path) -> None:
    """Rename the finished staging folder onto target, replacing a partial or outdated target."""
    if _is_complete(target):
        return  # a concurrent run published an identical demo first
    if target.exists():
        # Retired under the staging prefix so that a kill right here still gets cleaned up later.
        retired = staging.with_name(staging.name + "-retired")
        try:
            os.rename(target, retired)
        except FileNotFoundError:
            pass
        shutil.rmtree(retired, ignore_errors=True)
    try:
        os.rename(staging, target)
    except OSError:
        if not _is_complete(target):
            raise


def _write_demo(folder: Path) -> None:
    """Render every image into folder/images and write OASIS.csv and the reference embedding."""
    images = folder / "images"
    images.mkdir()
    table = _design_table()
    layouts = []
    for row in table.itertuples(index=False):
        rng = np.random.default_rng([DEMO_SEED, row.category_index, row.theme_index, row.image_index])
        pixels = _render(row.Category, {name: getattr(row, name) for name in ATTRIBUTES}, rng)
        Image.fromarray(pixels).save(images / f"{row.Theme}.jpg", quality=JPEG_QUALITY)
        layouts.append(colour_layout(pixels))
    csv = table.loc[:, list(CSV_COLUMNS)]
    csv.to_csv(folder / "OASIS.csv", index=False, lineterminator="\n")
    np.save(folder / REFERENCE_FILE, _reference_embedding(np.stack(layouts)))


def colour_layout(pixels: np.ndarray, grid: int = EMBEDDING_GRID) -> np.ndarray:
    """(H, W, 3) uint8 image -> (grid * grid * 3,) mean RGB in [0, 1] of each cell, row-major."""
    height, width, _ = pixels.shape
    cells = pixels.astype(np.float64).reshape(grid, height // grid, grid, width // grid, 3).mean(axis=(1, 3))
    return (cells / 255.0).reshape(-1)


def _design_table() -> pd.DataFrame:
    """(384 rows) themes x images with per-image attributes, ratings and the OASIS columns."""
    rng = np.random.default_rng(DEMO_SEED)
    rows = []
    for category_index, category in enumerate(CATEGORIES):
        cells = [(warm, smooth, bright) for warm in WARMTH_LEVELS for smooth in SMOOTHNESS_LEVELS
                 for bright in BRIGHTNESS_LEVELS]
        stratified = {name: 0.05 + 0.9 * (rng.permutation(len(cells)) + rng.random(len(cells))) / len(cells)
                      for name in STRATIFIED_ATTRIBUTES}
        for theme_index, (warm, smooth, bright) in enumerate(cells):
            levels = {"warmth": WARMTH_LEVELS[warm], "brightness": BRIGHTNESS_LEVELS[bright],
                      "smoothness": SMOOTHNESS_LEVELS[smooth]}
            theme = {name: level + rng.uniform(-THEME_LEVEL_JITTER, THEME_LEVEL_JITTER)
                     for name, level in levels.items()}
            theme.update({name: stratified[name][theme_index] for name in STRATIFIED_ATTRIBUTES})
            valence_offset, arousal_offset = rng.normal(0.0, THEME_OFFSET_SD, size=2)
            valence_n, arousal_n = rng.integers(95, 111, size=2)
            for image_index in range(IMAGES_PER_THEME):
                rows.append({
                    "Theme": f"{warm} {smooth} {bright} {category.lower()} {image_index + 1}",
                    "Category": category,
                    "category_index": category_index, "theme_index": theme_index, "image_index": image_index,
                    **{name: round(float(np.clip(theme[name] + rng.normal(0.0, IMAGE_JITTER_SD), 0.0, 1.0)), 4)
                       for name in ATTRIBUTES},
                    "valence_offset": valence_offset, "arousal_offset": arousal_offset,
                    "Valence_N": valence_n, "Arousal_N": arousal_n,
                })
    table = pd.DataFrame(rows)
    noiseless = noiseless_ratings(table)
    for column, offset, noiseless_column in (("Valence", "valence_offset", "valence"),
                                             ("Arousal", "arousal_offset", "arousal")):
        noise = rng.normal(0.0, RATING_NOISE_SD, size=len(table))
        mean = np.clip(noiseless[noiseless_column] + table[offset] + noise, 1.0, 7.0)
        table[f"{column}_mean"] = mean
        table[f"{column}_SD"] = 0.9 + 0.15 * np.abs(mean - RATING_CENTRE) + rng.uniform(0.0, 0.4, len(table))
    table[""] = [f"I{i + 1}" for i in range(len(table))]
    table["Source"] = SOURCE
    return table


def _reference_embedding(layouts: np.ndarray) -> np.ndarray:
    """(N, 48) colour layouts -> (N, 48) non-negative float32 "human" embedding: layout + observer noise."""
    rng = np.random.default_rng([DEMO_SEED, 1])
    embedding = layouts + rng.normal(0.0, EMBEDDING_NOISE_SD, size=layouts.shape)
    return np.clip(embedding, 0.0, None).astype(np.float32)


def _render(category: str, attributes: dict[str, float], rng: np.random.Generator) -> np.ndarray:
    """Attributes -> (IMAGE_SIZE, IMAGE_SIZE, 3) uint8 image: figure map blended between ground and figure colours."""
    ys, xs = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32)
    figure = _FIGURE_MAPS[category](xs, ys, attributes, rng)
    ground_colour, figure_colour = _palette(attributes, rng)
    image = ground_colour + figure[..., None] * (figure_colour - ground_colour)
    image *= (1.0 + 0.12 * (0.5 - ys / IMAGE_SIZE))[..., None]
    image += rng.normal(0.0, 0.015, size=image.shape).astype(np.float32)
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _palette(attributes: dict[str, float], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Attributes -> (ground, figure) RGB colours, each (3,) float32 in [0, 1]."""
    # Through magenta rather than green, so that the warm end is red-orange and the cool end blue.
    hue = (0.52 + 0.55 * attributes["warmth"]) % 1.0
    saturation = 0.08 + 0.87 * attributes["saturation"]
    value = 0.15 + 0.7 * attributes["brightness"]
    # Random polarity keeps mean brightness tied to `brightness` rather than to contrast.
    half_difference = (0.04 + 0.36 * attributes["contrast"]) * rng.choice([-1.0, 1.0])
    ground = colorsys.hsv_to_rgb((hue + rng.normal(0.0, 0.02)) % 1.0, 0.7 * saturation,
                                 float(np.clip(value - half_difference, 0.0, 1.0)))
    figure = colorsys.hsv_to_rgb(hue, saturation, float(np.clip(value + half_difference, 0.0, 1.0)))
    return np.array(ground, dtype=np.float32), np.array(figure, dtype=np.float32)


def _triangle_wave(phase: np.ndarray) -> np.ndarray:
    """Phase in cycles (any shape) -> same shape in [0, 1], peak 1 at integer phases."""
    return np.abs(2.0 * (phase % 1.0) - 1.0)


def _radial_elements(xs: np.ndarray, ys: np.ndarray, attributes: dict[str, float], rng: np.random.Generator,
                     profile: Callable[[np.ndarray, float, np.random.Generator], np.ndarray],
                     size_scale: float) -> np.ndarray:
    """(H, W) union of 1-7 filled radial shapes whose outline is radius * profile(theta)."""
    smoothness = attributes["smoothness"]
    count = 1 + int(round(6 * attributes["clutter"]))
    edge_width = 0.8 + 2.5 * smoothness
    figure = np.zeros_like(xs)
    for _ in range(count):
        radius = size_scale * IMAGE_SIZE / np.sqrt(count) * rng.uniform(0.75, 1.15)
        margin = min(radius, IMAGE_SIZE / 2 - 1)
        cx, cy = rng.uniform(margin, IMAGE_SIZE - margin, size=2)
        dx, dy = xs - cx, ys - cy
        theta = np.arctan2(dy, dx)
        outline = radius * profile(theta, smoothness, rng)
        coverage = np.clip((outline - np.hypot(dx, dy)) / edge_width + 0.5, 0.0, 1.0)
        np.maximum(figure, coverage, out=figure)
    return figure


def _blob_profile(theta: np.ndarray, smoothness: float, rng: np.random.Generator) -> np.ndarray:
    """Angles -> relative radius: low-frequency wobble plus spikes whose depth grows as smoothness falls."""
    wobble = sum(rng.uniform(0.0, 0.12) * np.cos(k * theta + rng.uniform(0.0, 2 * np.pi)) for k in (2, 3, 4))
    spikes = rng.integers(9, 16)
    teeth = _triangle_wave(spikes * theta / (2 * np.pi) + rng.random()) ** 2
    return 1.0 + wobble + (1.0 - smoothness) * 0.6 * (teeth - 1.0 / 3.0)


def _star_profile(theta: np.ndarray, smoothness: float, rng: np.random.Generator) -> np.ndarray:
    """Angles -> relative radius of a 5-8 pointed star, rounded lobes when smooth, needles when spiky."""
    points = rng.integers(5, 9)
    phase = points * theta / (2 * np.pi) + rng.random()
    rounded = 0.5 + 0.5 * np.cos(2 * np.pi * phase)
    needles = _triangle_wave(phase) ** 3
    inner = 0.3 + 0.35 * smoothness
    return inner + (1.0 - inner) * (smoothness * rounded + (1.0 - smoothness) * needles)


def _blob_map(xs: np.ndarray, ys: np.ndarray, attributes: dict[str, float], rng: np.random.Generator) -> np.ndarray:
    """(H, W) figure map of the Blob family."""
    return _radial_elements(xs, ys, attributes, rng, _blob_profile, size_scale=0.28)


def _star_map(xs: np.ndarray, ys: np.ndarray, attributes: dict[str, float], rng: np.random.Generator) -> np.ndarray:
    """(H, W) figure map of the Star family."""
    return _radial_elements(xs, ys, attributes, rng, _star_profile, size_scale=0.36)


def _grating_map(xs: np.ndarray, ys: np.ndarray, attributes: dict[str, float], rng: np.random.Generator) -> np.ndarray:
    """(H, W) full-field grating or plaid: sine profile when smooth, sawtooth when spiky."""
    smoothness, clutter = attributes["smoothness"], attributes["clutter"]
    components = 1 + int(round(2 * clutter))
    cycles = (3.0 + 9.0 * clutter) * rng.uniform(0.9, 1.1)
    base_angle = rng.uniform(0.0, np.pi)
    figure = np.zeros_like(xs)
    for k in range(components):
        angle = base_angle + k * np.pi / components
        phase = (xs * np.cos(angle) + ys * np.sin(angle)) / IMAGE_SIZE * cycles + rng.random()
        sine = 0.5 + 0.5 * np.sin(2 * np.pi * phase)
        figure += smoothness * sine + (1.0 - smoothness) * (phase % 1.0)
    return figure / components


def _landscape_map(xs: np.ndarray, ys: np.ndarray, attributes: dict[str, float],
                   rng: np.random.Generator) -> np.ndarray:
    """(H, W) sky (0) over 1-5 ridge layers, the nearest drawn in the full figure colour (1)."""
    smoothness = attributes["smoothness"]
    layers = 1 + int(round(4 * attributes["clutter"]))
    columns = xs[0]
    edge_width = 0.8 + 2.5 * smoothness
    figure = np.zeros_like(xs)
    for layer in range(layers):
        baseline = IMAGE_SIZE * (0.35 + 0.5 * (layer + 1) / (layers + 1))
        amplitude = IMAGE_SIZE * 0.12 * rng.uniform(0.7, 1.3)
        hills = sum(np.sin(2 * np.pi * (k * columns / IMAGE_SIZE * rng.uniform(0.6, 1.4) + rng.random())) / k
                    for k in (1, 2, 3)) / 1.8
        peak_count = int(rng.integers(5, 12))
        knots = np.linspace(-IMAGE_SIZE / peak_count, IMAGE_SIZE * (1 + 1 / peak_count), 2 * peak_count + 3)
        heights = np.where(np.arange(knots.size) % 2 == 0, rng.uniform(-1.0, -0.2, knots.size),
                           rng.uniform(0.2, 1.0, knots.size))
        peaks = np.interp(columns, knots, heights)
        ridge = baseline - amplitude * (smoothness * hills + (1.0 - smoothness) * peaks)
        coverage = np.clip((ys - ridge[None, :]) / edge_width + 0.5, 0.0, 1.0)
        figure += coverage * ((layer + 1) / layers - figure)
    return figure


_FIGURE_MAPS = {"Blob": _blob_map, "Star": _star_map, "Grating": _grating_map, "Landscape": _landscape_map}
