"""Reading RDM files (.npy) into (S, N, N) stacks with every check a comparison needs, each failure naming the file.

Accepted shapes: (N, N) one RDM; (S, N, N) one per subject; (S, R, N, N) sessions/runs per subject (averaged per
subject, said so in the note); (P,) or (S, P) condensed upper triangles (scipy `squareform` order, P = N (N - 1) / 2).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.distance import squareform

SYMMETRY_TOLERANCE = 1e-8


class RdmFileError(ValueError):
    """An RDM file that cannot be used; the message names the file and what is wrong."""


def _square(n_pairs: int) -> int | None:
    n = int(round((1 + np.sqrt(1 + 8 * n_pairs)) / 2))
    return n if n * (n - 1) // 2 == n_pairs and n >= 2 else None


def load_rdms(path: Path | str) -> tuple[np.ndarray, str]:
    """Read and check one RDM file -> ((S, N, N) float array, a note on what was done, "" when nothing)."""
    path = Path(path)
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise RdmFileError(f"{path}: cannot read it as a .npy array ({error})") from None
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise RdmFileError(f"{path}: holds {array.dtype} values, not real numbers")
    return check_rdms(np.asarray(array, float), str(path))


def check_rdms(array: np.ndarray, name: str) -> tuple[np.ndarray, str]:
    """Bring an array of one of the accepted shapes to (S, N, N) and check it; `name` goes into every message."""
    note = ""
    if array.ndim in (1, 2) and not (array.ndim == 2 and array.shape[0] == array.shape[1]):
        vectors = np.atleast_2d(array)
        n = _square(vectors.shape[1])
        if n is None:
            raise RdmFileError(f"{name}: a condensed RDM of length {vectors.shape[1]} is not N (N - 1) / 2 for any N "
                               f"(shape {array.shape}; a square RDM must be N x N)")
        if np.isnan(vectors).any() or np.isinf(vectors).any():
            raise RdmFileError(f"{name}: has NaN or infinite entries")
        stack = np.array([squareform(v, checks=False) for v in vectors])
    elif array.ndim == 2:
        stack = array[None]
    elif array.ndim == 3:
        stack = array
    elif array.ndim == 4:
        stack = array.mean(axis=1)
        note = f"{name}: {array.shape[1]} sessions averaged per subject ({array.shape[0]} subjects)"
    else:
        raise RdmFileError(f"{name}: a {array.ndim}-D array of shape {array.shape}; expected (N, N), (S, N, N), "
                           "(S, R, N, N), (P,) or (S, P)")
    if stack.shape[-1] != stack.shape[-2]:
        raise RdmFileError(f"{name}: RDMs of shape {stack.shape[-2]} x {stack.shape[-1]} are not square")
    if stack.shape[-1] < 3:
        raise RdmFileError(f"{name}: RDMs of {stack.shape[-1]} items; at least 3 are needed")
    if np.isnan(stack).any() or np.isinf(stack).any():
        raise RdmFileError(f"{name}: has NaN or infinite entries")
    asymmetry = np.abs(stack - stack.transpose(0, 2, 1)).max()
    if asymmetry > SYMMETRY_TOLERANCE:
        raise RdmFileError(f"{name}: not symmetric (largest |d_ij - d_ji| = {asymmetry:.3g} > {SYMMETRY_TOLERANCE})")
    diagonal = np.abs(np.einsum("sii->si", stack)).max()
    if diagonal > SYMMETRY_TOLERANCE:
        raise RdmFileError(f"{name}: non-zero diagonal (largest |d_ii| = {diagonal:.3g}); an RDM's diagonal is 0")
    return stack, note


def condensed(stack: np.ndarray) -> np.ndarray:
    """(S, N, N) symmetric RDMs -> (S, N (N - 1) / 2) upper triangles in scipy `squareform` order."""
    i, j = np.triu_indices(stack.shape[-1], 1)
    return stack[:, i, j]
