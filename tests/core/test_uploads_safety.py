"""Files from a browser or a user's folder never run code: a pickle inside an .npy is refused, never loaded."""
from __future__ import annotations

import io

import numpy as np
import pytest

from core.analyses.rdm import load_matrix
from core.data.datasets import DatasetError
from core.data.embeddings import read_matrix


class Payload:
    """Unpickling this would create `marker` (what an attacker's pickle would do, harmlessly)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def pickle_npy(marker) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def test_the_payload_would_run_if_unpickled(tmp_path):
    np.load(io.BytesIO(pickle_npy(tmp_path / "ran")), allow_pickle=True)
    assert (tmp_path / "ran").exists()  # so the refusals below are meaningful


def test_an_uploaded_pickle_npy_is_refused_and_never_runs(tmp_path):
    with pytest.raises(ValueError, match="upload.npy: not a NumPy array file of numbers"):
        load_matrix(pickle_npy(tmp_path / "marker"), "upload.npy")
    assert not (tmp_path / "marker").exists()


def test_a_pickle_npy_in_an_embeddings_folder_is_refused_and_never_runs(tmp_path):
    path = tmp_path / "embedding.npy"
    path.write_bytes(pickle_npy(tmp_path / "marker"))
    with pytest.raises(DatasetError, match="cannot read embedding"):
        read_matrix(path)
    assert not (tmp_path / "marker").exists()
