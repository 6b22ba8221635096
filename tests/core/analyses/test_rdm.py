"""RDMs equal scipy's cdist, RSA known answers, uploads validated with clear messages."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from core.analyses.rdm import as_rdm, load_matrix, rdm, rsa

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
    items = [f"item{index}" for index in range(30)]
    buffer = tmp_path / "e.npy"
    np.save(buffer, embedding)
    matrix, ids = load_matrix(buffer.read_bytes(), "e.npy")
    assert matrix.shape == (30, 5) and ids is None
    np.testing.assert_allclose(as_rdm(matrix, items, "euclidean"), cdist(matrix, matrix), atol=1e-5)
    given = cdist(matrix, matrix)
    csv = "\n".join(",".join(f"{value:.8f}" for value in row) for row in given).encode()
    np.testing.assert_allclose(as_rdm(load_matrix(csv, "r.csv")[0], items, "cosine"), given, atol=1e-6)  # as is
    with pytest.raises(ValueError, match="30 rows but the dataset has 31 items"):
        as_rdm(matrix, items + ["extra"], "euclidean")
    with pytest.raises(ValueError, match="r.txt: could not read"):
        load_matrix(b"item,value\na,1\n", "r.txt")
    with pytest.raises(ValueError, match="unsupported file type"):
        load_matrix(b"", "r.json")


def test_labelled_csv_rows_are_put_back_in_dataset_order() -> None:
    embedding = RNG.normal(size=(6, 3))
    items = [f"img{index}" for index in range(6)]
    shuffled = [4, 0, 5, 1, 3, 2]
    lines = ["image_id,a,b,c"] + [",".join([items[row], *(f"{v:.10f}" for v in embedding[row])]) for row in shuffled]
    matrix, ids = load_matrix("\n".join(lines).encode(), "e.csv")
    assert list(ids) == [items[row] for row in shuffled]
    np.testing.assert_allclose(as_rdm(matrix, items, "euclidean", item_ids=ids), cdist(embedding, embedding),
                               atol=1e-5)
    rdm_lines = [",".join([items[row], *(f"{v:.10f}" for v in cdist(embedding, embedding)[row, shuffled])])
                 for row in shuffled]  # an RDM with labelled rows, no header
    matrix, ids = load_matrix("\n".join(rdm_lines).encode(), "r.csv")
    np.testing.assert_allclose(as_rdm(matrix, items, "cosine", item_ids=ids), cdist(embedding, embedding), atol=1e-6)
    with pytest.raises(ValueError, match="ids not in the dataset, e.g. stranger"):
        as_rdm(matrix, items, "cosine", item_ids=["stranger"] + list(ids[1:]))


def test_a_text_file_named_csv_is_not_a_numeric_matrix() -> None:
    with pytest.raises(ValueError, match="notes.csv: not a numeric matrix: no numbers were found"):
        load_matrix(b"hello there\nsecond line\n", "notes.csv")


@pytest.mark.parametrize("payload", [pickle.dumps({"rdm": [1, 2]}), b"1,2\n3,4\n", b""])
def test_a_file_renamed_to_npy_is_explained_without_numpys_pickle_hint(payload: bytes) -> None:
    with pytest.raises(ValueError, match="m.npy: not a NumPy array file of numbers") as raised:
        load_matrix(payload, "m.npy")
    assert "allow_pickle" not in str(raised.value)


def test_a_row_count_mismatch_names_the_order_to_follow() -> None:
    items = ["I1", "I2", "I3", "I4"]
    with pytest.raises(ValueError) as raised:
        as_rdm(np.ones((3, 2)), items, "euclidean", name="up.csv")
    message = str(raised.value)
    assert message.startswith("up.csv has 3 rows but the dataset has 4 items.")
    assert "first I1, I2, last I4" in message and "OASIS.csv" in message and "Features page" not in message


def test_representations_name_what_their_rdm_depends_on() -> None:
    from core.analyses.representation import layer_representation, reference_representation, upload_representation
    from core.encoders.specs import ModelLayer

    items = [f"img{index}" for index in range(5)]
    embedding = RNG.normal(size=(5, 3))
    reference = reference_representation("demo human", embedding)
    assert reference.label == "human · demo human"
    np.testing.assert_array_equal(reference.rdm(items, "cosine"), rdm(embedding, "cosine"))
    layer = ModelLayer("pixels:32", "final")
    cls, mean = layer_representation(layer, "cls"), layer_representation(layer, "mean")
    assert cls.label == "pixels:32 · final" and cls != mean and cls.key != mean.key  # pooling is part of the source
    assert cls == layer_representation(layer, "cls") and hash(cls) == hash(layer_representation(layer, "cls"))
    np.testing.assert_array_equal(cls.rdm(items, "euclidean", features=embedding), rdm(embedding, "euclidean"))
    with pytest.raises(ValueError, match="features"):
        cls.rdm(items, "euclidean")
    data = "\n".join(",".join([items[row], *(f"{v:.10f}" for v in embedding[row])]) for row in [3, 1, 0, 4, 2]).encode()
    upload = upload_representation("e.csv", data, items)
    assert upload.label == "upload · e.csv" and upload.key != upload_representation("e.csv", data + b"\n", items).key
    np.testing.assert_allclose(upload.rdm(items, "euclidean"), rdm(embedding, "euclidean"), atol=1e-5)
    with pytest.raises(ValueError, match="5 rows but the dataset has 6 items"):
        upload_representation("e.csv", data, items + ["extra"])
