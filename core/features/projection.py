"""The `flat:<dim>` pooling: a block's whole output, flattened, reduced by a seeded sparse random projection.

A block output is flattened per image (`core.encoders.backbones.pool`): tokens (P prefix + L patch
tokens, each D wide) to ((P + L) * D,), prefix tokens first; maps (C, H, W) to (C * H * W,) in C-order.
A (B, n_features) batch becomes (B, dim) by x @ R.T, where R (dim, n_features) holds the components of
scikit-learn's `SparseRandomProjection(n_components=dim, density="auto", dense_output=True,
random_state=layer_seed(layer))`: density 1 / sqrt(n_features), entries 0 or +-sqrt(1 / (density * dim)),
so squared distances are preserved in expectation (Johnson-Lindenstrauss). When n_features <= dim the
flattened output is kept as it is, (B, n_features), no projection. docs/science.md §1.2.

Grammar ("flat" or "flat:<dim>", canonical "flat:<dim>"): `core.encoders.specs.flat_dim`.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse

from core.encoders.specs import flat_dim

BASE_SEED = 0
PROJECTION_ID = f"srp-seed{BASE_SEED}"  # in every flat FeatureKey: another base seed is another feature array


def key_pooling(pooling: str) -> str:
    """The FeatureKey pooling of a resolved pooling: "flat:4096" -> "flat:4096/srp-seed0", others unchanged."""
    return f"{pooling}/{PROJECTION_ID}" if flat_dim(pooling) is not None else pooling


def layer_seed(layer: str) -> int:
    """random_state of a layer's projection: (crc32 of its UTF-8 name + BASE_SEED) mod 2**32, stable across runs."""
    return (zlib.crc32(layer.encode("utf-8")) + BASE_SEED) % 2**32


def fit_projection(layer: str, n_features: int, dim: int):
    """The layer's fitted SparseRandomProjection; `components_` is (dim, n_features) float32 CSR."""
    # sklearn costs ~1 s to import: only when a projection is built.
    from sklearn.random_projection import SparseRandomProjection

    projection = SparseRandomProjection(n_components=dim, density="auto", dense_output=True,
                                        random_state=layer_seed(layer))
    # fit reads only n_features and the dtype (float32 components) of its input.
    return projection.fit(scipy.sparse.csr_matrix((1, n_features), dtype=np.float32))


@dataclass(frozen=True)
class FlatReducer:
    """Reduces each layer's (B, n_features) flattened batches to (B, dim); one projection per (layer, n_features)."""

    dim: int
    fitted: dict = field(default_factory=dict, repr=False)  # (layer, n_features) -> SparseRandomProjection

    def reduce(self, layer: str, flattened: np.ndarray) -> np.ndarray:
        """(B, n_features) float32 -> (B, dim) float32, or the batch itself when n_features <= dim."""
        n_features = flattened.shape[1]
        if n_features <= self.dim:
            return flattened
        if (layer, n_features) not in self.fitted:
            self.fitted[layer, n_features] = fit_projection(layer, n_features, self.dim)
        return self.fitted[layer, n_features].transform(flattened)
