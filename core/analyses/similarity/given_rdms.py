"""Representations given only as an (N, N) RDM (a dataset's RDM group: its subjects' mean RDM), without item vectors.

The RSA measures compare such an RDM's upper triangle as given; every other measure needs item vectors (Grams,
neighbours, a Procrustes factor) and is not applicable: NaN with `not_applicable`'s note (docs/science.md §8.1).
"""
from __future__ import annotations

import numpy as np

from core.analyses.similarity.measures import PreparedRepresentation, SimilaritySettings


def prepare_rdm(matrix, settings: SimilaritySettings = SimilaritySettings(), name: str = "RDM"
                ) -> PreparedRepresentation:
    """A representation given only as an (N, N) RDM: the RSA measures compare its upper triangle as given (the
    RDM metric does not apply); every other measure needs item vectors and is not applicable to it."""
    array = validate_rdm(matrix, name)
    upper = np.triu_indices(len(array), k=1)
    return PreparedRepresentation(None, settings, rdm_vector=array[upper], n=len(array))


def validate_rdm(matrix, name: str = "RDM") -> np.ndarray:
    """(N, N) float64 RDM, with a clear error naming `name` when it is not square, symmetric, finite or N < 3."""
    array = np.asarray(matrix, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise ValueError(f"{name}: expected an (N, N) RDM; got shape {array.shape}.")
    if len(array) < 3:
        raise ValueError(f"{name}: {len(array)} items; similarity measures need at least 3.")
    if not np.isfinite(array).all() or not np.allclose(array, array.T, atol=1e-8):
        raise ValueError(f"{name}: the RDM has NaN / infinite entries or is not symmetric; fix the file.")
    return array


def not_applicable(name: str) -> str:
    """Why a measure that needs item vectors has no value for the RDM-only representation `name`."""
    return f"not applicable: {name} is given as RDMs only"
