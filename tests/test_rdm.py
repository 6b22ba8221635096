"""RDMs equal scipy's cdist, RSA known answers, uploads validated with clear messages."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from core.rdm import as_rdm, load_matrix, rdm, rsa

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("metric", ["cosine", "correlation", "euclidean"])
def test_rdm_equals_scipy_cdist_also_across_chunks(metric: str) -> None:
    features = RNG.normal(size=(70, 12))
    expected = cdist(features, features, metric)
    np.testing.assert_allclose(rdm(features, metric, chunk_size=16), expected, atol=1e-5)
    assert rdm(features, metric, dtype=np.float64).dtype == np.float64
    np.testing.assert_allclose(rdm(features, metric, normalise=True).max(), 1.0, rtol=1e-6)


def test_rdm_explains_constant_rows_for_cosine() -> None:
    with pytest.raises(ValueError, match="constant"):
        rdm(np.vstack([np.zeros(4), np.ones(4)]), "cosine")


def test_rsa_is_one_for_a_monotone_transform_and_near_zero_for_independent_rdms() -> None:
    first = rdm(RNG.normal(size=(60, 8)), "euclidean")
    assert rsa(first, first ** 2 + 3) == pytest.approx(1.0)
    assert abs(rsa(first, rdm(RNG.normal(size=(60, 8)), "euclidean"))) < 0.1


def test_uploads_are_read_and_validated(tmp_path) -> None:
    embedding = RNG.normal(size=(1, 30, 5))  # GWTune's (1, N, d) layout
    buffer = tmp_path / "e.npy"
    np.save(buffer, embedding)
    matrix = load_matrix(buffer.read_bytes(), "e.npy")
    assert matrix.shape == (30, 5)
    np.testing.assert_allclose(as_rdm(matrix, 30, "euclidean"), cdist(matrix, matrix), atol=1e-5)
    given = cdist(matrix, matrix)
    csv = "\n".join(",".join(f"{value:.8f}" for value in row) for row in given).encode()
    np.testing.assert_allclose(as_rdm(load_matrix(csv, "r.csv"), 30, "cosine"), given, atol=1e-6)  # used as is
    with pytest.raises(ValueError, match="31 items"):
        as_rdm(matrix, 31, "euclidean")
    with pytest.raises(ValueError, match="r.txt: could not read"):
        load_matrix(b"item,value\na,1\n", "r.txt")
    with pytest.raises(ValueError, match="unsupported file type"):
        load_matrix(b"", "r.json")
