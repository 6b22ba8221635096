"""Corruptions of docs/science.md §7: identities, exact permutations, one fixed permutation for every image."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.data.corruptions import CLEAN, Corruption, apply_gamma, gamma, global_shuffle, local_shuffle, parse_corruption

RNG = np.random.default_rng(0)


def random_image(height: int = 64, width: int = 64) -> np.ndarray:
    return RNG.integers(0, 256, (height, width, 3), dtype=np.uint8)


def position_image(height: int, width: int) -> np.ndarray:
    """Each pixel stores its own (row, column, 0): a corruption's output says where every pixel came from."""
    rows, columns = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([rows, columns, np.zeros_like(rows)], axis=-1).astype(np.uint8)


def source_positions(corruption: Corruption, height: int, width: int, row: int = 0) -> np.ndarray:
    """(H, W, 2): for every output pixel, the (row, column) of the input pixel it shows."""
    return corruption(position_image(height, width), row)[..., :2].astype(int)


def gather(image: np.ndarray, sources: np.ndarray) -> np.ndarray:
    return image[sources[..., 0], sources[..., 1]]


@pytest.mark.parametrize("corruption", [gamma(1), global_shuffle(1), local_shuffle(1), CLEAN])
def test_level_one_is_the_identity(corruption: Corruption) -> None:
    image = random_image(50, 70)
    np.testing.assert_array_equal(corruption(image), image)
    pil = Image.fromarray(image)
    np.testing.assert_array_equal(np.asarray(corruption(pil)), image)
    assert corruption.input_transform.name == "clean"  # identical pixels share the clean features in the cache


def test_gamma_follows_the_formula_on_every_value() -> None:
    values = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    for g in (0.2, 0.5, 2.0, 2.5):
        expected = np.round(255 * (np.arange(256) / 255) ** g).reshape(16, 16)
        np.testing.assert_array_equal(gamma(g)(values)[..., 0], expected)
    assert gamma(0.5)(values).mean() > values.mean() > gamma(2)(values).mean()
    with pytest.raises(ValueError, match="positive"):
        apply_gamma(values, 0)


@pytest.mark.parametrize("corruption", [global_shuffle(8), local_shuffle(4), global_shuffle(3), local_shuffle(7),
                                        global_shuffle(4, per_image=True)])
@pytest.mark.parametrize("size", [(64, 64), (61, 45)])
def test_a_shuffle_is_a_permutation_of_whole_pixels(corruption: Corruption, size: tuple[int, int]) -> None:
    image = random_image(*size)
    out = corruption(image, row=5)
    assert out.shape == image.shape and not np.array_equal(out, image)
    sources = source_positions(corruption, *size, row=5)
    # Every input pixel is used exactly once, and each output pixel is an input pixel (all 3 channels).
    flat = sources[..., 0] * size[1] + sources[..., 1]
    assert sorted(flat.ravel()) == list(range(size[0] * size[1]))
    np.testing.assert_array_equal(out, gather(image, sources))


def test_global_shuffle_moves_whole_patches() -> None:
    sources = source_positions(global_shuffle(4), 64, 64)
    permutation = global_shuffle(4).permutation(16)
    for position in range(16):
        top, left = divmod(position, 4)
        source_top, source_left = divmod(int(permutation[position]), 4)
        patch = sources[16 * top:16 * top + 16, 16 * left:16 * left + 16]
        assert (patch[..., 0] - np.arange(16)[:, None] == 16 * source_top).all()
        assert (patch[..., 1] - np.arange(16)[None, :] == 16 * source_left).all()


def test_local_shuffle_keeps_pixels_in_their_patch_with_one_permutation_for_all_patches() -> None:
    sources = source_positions(local_shuffle(4), 64, 64)
    offsets = []
    for top in range(0, 64, 16):
        for left in range(0, 64, 16):
            patch = sources[top:top + 16, left:left + 16]
            assert patch[..., 0].min() >= top and patch[..., 0].max() < top + 16
            assert patch[..., 1].min() >= left and patch[..., 1].max() < left + 16
            offsets.append((patch - [top, left]).copy())
    assert all(np.array_equal(offset, offsets[0]) for offset in offsets)


def test_remainder_rows_and_columns_stay_in_place() -> None:
    sources = source_positions(global_shuffle(4), 66, 67)  # 2 extra rows, 3 extra columns
    rows, columns = np.meshgrid(np.arange(66), np.arange(67), indexing="ij")
    assert (sources[64:, :, 0] == rows[64:]).all() and (sources[:, 64:, 1] == columns[:, 64:]).all()


def test_the_fixed_permutation_is_shared_by_images_and_calls() -> None:
    first, second = random_image(), random_image()
    for make in (global_shuffle, local_shuffle):
        sources = source_positions(make(8), 64, 64, row=0)
        for row, image in ((3, first), (9, second)):  # any image, any row: the same rearrangement
            np.testing.assert_array_equal(make(8)(image, row), gather(image, sources))
        assert not np.array_equal(source_positions(make(8, seed=7), 64, 64), sources)


def test_per_image_permutations_differ_between_rows_but_repeat_for_a_row() -> None:
    corruption = global_shuffle(8, per_image=True)
    assert not np.array_equal(source_positions(corruption, 64, 64, 0), source_positions(corruption, 64, 64, 1))
    np.testing.assert_array_equal(source_positions(corruption, 64, 64, 1), source_positions(corruption, 64, 64, 1))


def test_names_parse_back_and_key_the_cache() -> None:
    for corruption in (global_shuffle(8), local_shuffle(2, per_image=True), gamma(0.5), CLEAN):
        assert parse_corruption(corruption.name) == corruption
    assert [c.name for c in (global_shuffle(8), local_shuffle(4, per_image=True), gamma(2.5))] == [
        "glo_8", "loc_4_rand", "gamma_2.5"]
    views = {global_shuffle(8).input_transform.name, global_shuffle(8, seed=1).input_transform.name, global_shuffle(8, per_image=True).input_transform.name}
    assert len(views) == 3
    with pytest.raises(ValueError, match="Cannot read corruption 'blur_2'.*glo_8"):
        parse_corruption("blur_2")
    with pytest.raises(ValueError, match="whole grid size"):
        global_shuffle(2.5)
