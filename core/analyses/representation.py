"""One representation of a dataset's items, whatever it comes from: the one type every comparison reads.

A `Representation` is an encoder layer at the pooling its encoder uses, the dataset's reference (human) embedding,
a neural / behavioural RDM group of the dataset (its subjects' mean RDM), or an uploaded N × d embedding or N × N
RDM. It owns its `label` (how pages, studies and exports name it: `<spec> · <layer>`, `human · <name>`,
`rdm · <group>`, `upload · <file>`), its `key` (what alignment results are keyed by) and its
`fingerprint` (what similarity matrices are keyed by); nothing parses a label back into data. A layer's features
live in the feature store under `feature_key`; a reference, an RDM group or an upload carries its matrix. An RDM
group or an RDM upload has no item vectors: only comparisons of RDMs (RSA, GWOT) take it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from core.analyses.rdm import as_rdm, is_rdm, load_matrix, rdm
from core.analyses.similarity import fingerprint as array_fingerprint
from core.encoders.specs import ModelLayer
from core.features.store import FeatureKey

KINDS = ("reference", "rdm_group", "upload", "encoder_layer")


@dataclass(frozen=True)
class Representation:
    """One representation of the dataset's items (see module doc); equal ones give equal results."""

    kind: str  # one of KINDS
    label: str
    layer: ModelLayer | None = None  # encoder_layer: which one
    pooling: str = ""  # encoder_layer: the pooling its encoder uses (the features depend on it)
    digest: str = ""  # upload: sha256 of the file's bytes (16 hex digits)
    feature_key: FeatureKey | None = field(default=None, compare=False, repr=False)  # encoder_layer, when known
    depth: float = field(default=float("nan"), compare=False)  # encoder_layer: 0 = first chosen layer, 1 = last
    matrix: np.ndarray | None = field(default=None, compare=False, repr=False)  # (N, d) or (N, N); not of a layer
    item_ids: np.ndarray | None = field(default=None, compare=False, repr=False)  # upload: (N,) row ids, if given

    @property
    def key(self) -> str:
        """Names it in result and job keys (the alignment store's keys are built from it)."""
        return "|".join([self.kind, self.label, self.pooling, self.digest])

    @property
    def fingerprint(self) -> str:
        """16 hex digits of what it holds: a layer's feature key digest, an array's or an upload's sha256."""
        if self.kind == "encoder_layer":
            if self.feature_key is None:
                raise ValueError(f"{self.label}: its feature key is not known here")
            return self.feature_key.digest
        return self.digest or array_fingerprint(self.matrix)

    @property
    def encoder(self) -> str:
        return self.layer.spec if self.layer is not None else ""

    @property
    def is_rdm(self) -> bool:
        """True for an RDM group, or an upload that is an N × N RDM (neither has item vectors)."""
        return self.kind == "rdm_group" or (self.matrix is not None and self.kind == "upload" and is_rdm(self.matrix))

    def rows(self, items: Sequence[str]) -> np.ndarray:
        """(N, d) vectors of a reference or upload in the order of the dataset's (N,) `items`."""
        if self.matrix is None:
            raise ValueError(f"{self.label}: read a layer's features from the feature store")
        if self.item_ids is None:
            if len(self.matrix) != len(items):
                raise ValueError(f"{self.label}: {len(self.matrix)} rows but the dataset has {len(items)} items; one "
                                 "row per item, in the dataset's order.")
            return self.matrix
        position = {item: row for row, item in enumerate(self.item_ids)}
        missing = [item for item in items if item not in position]
        if missing:
            raise ValueError(f"{self.label}: no row for {len(missing)} item(s), e.g. {missing[0]!r}; label every item.")
        return self.matrix[[position[item] for item in items]]

    def rdm(self, items: Sequence[str], metric: str, *, normalise: bool = False,
            features: np.ndarray | None = None) -> np.ndarray:
        """(N, N) float32 RDM over the dataset's (N,) items; an encoder layer needs its (N, d) `features`."""
        if self.kind in ("upload", "rdm_group"):
            return as_rdm(self.matrix, items, metric, item_ids=self.item_ids, name=self.label, normalise=normalise)
        matrix = features if self.kind == "encoder_layer" else self.matrix
        if matrix is None:
            raise ValueError(f"{self.label}: pass the layer's features to compute its RDM.")
        return rdm(matrix, metric, normalise=normalise)


def layer_representation(layer: ModelLayer, pooling: str, feature_key: FeatureKey | None = None,
                         depth: float = float("nan")) -> Representation:
    """An encoder layer's features at `pooling` (the effective one: what the encoder will use)."""
    return Representation("encoder_layer", layer.label, layer=layer, pooling=pooling, feature_key=feature_key,
                          depth=depth)


def reference_representation(name: str, embedding: np.ndarray) -> Representation:
    """The dataset's (N, d) reference (human) embedding called `name`."""
    return Representation("reference", f"human · {name}", matrix=embedding)


def rdm_group_representation(name: str, mean_rdm: np.ndarray) -> Representation:
    """A dataset's neural / behavioural RDM group `name` by its subjects' (N, N) mean RDM (the RDM metric does not
    apply: the RDM is given)."""
    return Representation("rdm_group", f"rdm · {name}", matrix=mean_rdm)


def rdm_group_representations(groups) -> dict[str, Representation]:
    """Label -> representation of each of a dataset's RDM groups (`RdmReference`s), by its subjects' mean RDM."""
    found = [rdm_group_representation(group.name, group.mean) for group in groups]
    return {item.label: item for item in found}


def upload_representation(filename: str, data: bytes, items: Sequence[str], *, rdm_allowed: bool = True
                          ) -> Representation:
    """An uploaded .npy/.txt/.csv N × d embedding (or, where allowed, N × N RDM) of the dataset's (N,) items,
    validated now; ValueError says what to fix (see `load_matrix`, `as_rdm`)."""
    matrix, item_ids = load_matrix(data, filename)
    upload = Representation("upload", f"upload · {filename}", digest=hashlib.sha256(data).hexdigest()[:16],
                            matrix=matrix, item_ids=item_ids)
    if rdm_allowed:
        as_rdm(matrix, items, "euclidean", item_ids=item_ids, name=filename)
    else:
        upload.rows(items)
    return upload
