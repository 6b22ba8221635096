"""flat pooling: grammar, seeds, the sparse random projection's known answers, no projection when small."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
import scipy.sparse
from sklearn.random_projection import SparseRandomProjection

from core.encoders.specs import DEFAULT_DIM, flat_dim, pooling_name
from core.features.projection import PROJECTION_ID, FlatReducer, fit_projection, key_pooling, layer_seed


@pytest.mark.parametrize(("pooling", "dim"), [("flat", 4096), ("flat:2048", 2048), ("flat:16", 16),
                                              ("flat:65536", 65536), ("cls", None), ("gap", None), ("auto", None)])
def test_flat_dim_reads_the_grammar(pooling: str, dim: int | None) -> None:
    assert flat_dim(pooling) == dim


@pytest.mark.parametrize("bad", ["flat:", "flat:15", "flat:65537", "flat:abc", "flat:-64", "flat:4096.0"])
def test_a_malformed_flat_dim_says_the_valid_range(bad: str) -> None:
    with pytest.raises(ValueError, match=r"integer dim in 16\.\.65536"):
        flat_dim(bad)


def test_pooling_names_are_canonical_and_flat_keys_carry_the_projection() -> None:
    assert [pooling_name(text) for text in ("auto", "cls", "flat", "flat:2048", "flat:02048")] == \
        ["auto", "cls", f"flat:{DEFAULT_DIM}", "flat:2048", "flat:2048"]
    with pytest.raises(ValueError, match="Unknown pooling 'max'"):
        pooling_name("max")
    assert key_pooling("flat:4096") == "flat:4096/srp-seed0" == f"flat:4096/{PROJECTION_ID}"
    assert key_pooling("cls") == "cls"


def test_layer_seeds_are_crc32_of_the_name_not_pythons_salted_hash() -> None:
    assert layer_seed("blocks.0") == zlib.crc32(b"blocks.0") == 193229223  # base seed 0
    assert layer_seed("layer3") == 2421468352
    assert layer_seed("blocks.0") != layer_seed("blocks.1")


def test_components_are_float32_csr_with_density_one_over_sqrt_n_features() -> None:
    components = fit_projection("blocks.0", 3000, 64).components_
    assert scipy.sparse.issparse(components) and components.format == "csr" and components.dtype == np.float32
    assert components.shape == (64, 3000) and components.nnz == 3496  # 64 * 3000 / sqrt(3000) = 3505 expected
    # Entries +-sqrt(1 / (density * dim)) = +-sqrt(sqrt(3000) / 64): squared norms preserved in expectation.
    np.testing.assert_allclose(np.unique(np.abs(components.data)), [np.sqrt(np.sqrt(3000) / 64)], rtol=1e-6)


def test_reduction_is_the_explicit_product_with_sklearns_components() -> None:
    """Known answer: rows @ components.T, components from sklearn fitted with the layer's seed."""
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(5, 12, 10, 10)).astype(np.float32)  # (B, C, H, W), n_features 1200
    flattened = maps.reshape(5, -1)
    reference = SparseRandomProjection(n_components=64, dense_output=True, random_state=layer_seed("layer2"))
    components = reference.fit(np.zeros((1, 1200), dtype=np.float32)).components_.toarray().astype(np.float64)
    reduced = FlatReducer(64).reduce("layer2", flattened)
    assert reduced.shape == (5, 64) and reduced.dtype == np.float32
    np.testing.assert_allclose(reduced, flattened.astype(np.float64) @ components.T, rtol=1e-5, atol=1e-5)


def test_every_reducer_projects_a_layer_the_same_way_and_layers_differently() -> None:
    rows = np.random.default_rng(1).normal(size=(3, 5000)).astype(np.float32)
    first, second = FlatReducer(128), FlatReducer(128)
    np.testing.assert_array_equal(first.reduce("blocks.3", rows), second.reduce("blocks.3", rows))
    np.testing.assert_array_equal(first.reduce("blocks.3", rows[:1]), second.reduce("blocks.3", rows)[:1])
    assert not np.allclose(first.reduce("blocks.3", rows), first.reduce("blocks.4", rows))
    assert list(first.fitted) == [("blocks.3", 5000), ("blocks.4", 5000)]  # fitted once per layer, then reused


def test_outputs_no_wider_than_dim_are_kept_raw() -> None:
    rows = np.arange(2 * 4096, dtype=np.float32).reshape(2, 4096)
    reducer = FlatReducer(4096)
    np.testing.assert_array_equal(reducer.reduce("blocks.0", rows), rows)
    assert reducer.fitted == {}  # no projection was even built
