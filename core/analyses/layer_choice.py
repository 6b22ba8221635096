"""Layer choice without optimism (docs/science.md §12): choose a model's layer on one half of the items, score it
on the other.

The maximum over layers of a score measured on the same items is biased upwards, more so with more layers (13
layers of pure noise have a clearly positive best). Here each of `n_splits` seeded random halvings chooses the best
layer on the selection half and scores that layer on the held-out half; the model's score is the mean held-out
score. Or the user fixes the layer (`fixed_layer`), chosen without looking at the scores.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np


@dataclass(frozen=True, eq=False)
class LayerChoice:
    """The layer reported for a model on a per-layer measure, its honest score, and the rule that chose it."""

    layer: str  # the layer chosen most often over the splits (the fixed layer when the user fixed it)
    score: float  # mean held-out score over the splits (the fixed layer's score on all items)
    scores: np.ndarray  # (n_splits,) held-out score of each split's chosen layer
    chosen: tuple[str, ...]  # (n_splits,) the layer chosen on each split's selection half
    in_sample_best: str  # the best layer on all items: what NOT to report as the model's score
    in_sample_score: float
    rule: str  # one sentence stating the rule, for under a table


def half_splits(n_items: int, n_splits: int = 10, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """n_splits seeded random halvings of 0..n_items-1: (selection (n_items // 2,), held-out (the rest,)) index arrays."""
    if n_items < 2:
        raise ValueError(f"Choosing a layer on held-out items needs at least 2 items; got {n_items}.")
    if n_splits < 1:
        raise ValueError(f"n_splits must be at least 1; got {n_splits}.")
    rng = np.random.default_rng(seed)
    splits = []
    for _ in range(n_splits):
        order = rng.permutation(n_items)
        splits.append((np.sort(order[:n_items // 2]), np.sort(order[n_items // 2:])))
    return splits


def held_out_layer(score: Callable[[str, np.ndarray], float], layers: Sequence[str], n_items: int, *,
                   n_splits: int = 10, seed: int = 0) -> LayerChoice:
    """Layer chosen on a random half of the items and scored on the other half, for score(layer, items (K,)) -> float.

    Higher scores are better; ties go to the earlier layer in `layers`.
    """
    layers = tuple(layers)
    if not layers:
        raise ValueError("No layers to choose from.")
    everything = np.arange(n_items)
    in_sample = np.array([score(layer, everything) for layer in layers], dtype=np.float64)
    chosen, held_out = [], []
    for selection, evaluation in half_splits(n_items, n_splits, seed):
        best = layers[_argmax([score(layer, selection) for layer in layers])]
        chosen.append(best)
        held_out.append(score(best, evaluation))
    return _choice(layers, chosen, np.array(held_out, dtype=np.float64), in_sample, n_items, n_splits, seed)


def held_out_layer_from_items(per_item: Mapping[str, np.ndarray], *, n_splits: int = 10,
                              seed: int = 0) -> LayerChoice:
    """held_out_layer for a mean over items: per_item[layer] (N,) item scores, higher = better (e.g. top-1 hits).

    The same splits as held_out_layer with score = the mean over the items, computed as one matrix product.
    """
    layers = tuple(per_item)
    if not layers:
        raise ValueError("No layers to choose from.")
    if len({np.size(per_item[layer]) for layer in layers}) > 1:
        raise ValueError("Every layer's per-item scores must cover the same items.")
    values = np.stack([np.asarray(per_item[layer], dtype=np.float64).ravel() for layer in layers])  # (L, N)
    if not np.isfinite(values).all():
        raise ValueError("Per-item scores contain NaN or infinite values; drop those items for every layer first.")
    n_items = values.shape[1]
    splits = half_splits(n_items, n_splits, seed)
    selection = np.zeros((n_splits, n_items))  # (S, N) 1 / |half| on each split's selection half
    evaluation = np.zeros((n_splits, n_items))
    for split, (chosen_items, held_items) in enumerate(splits):
        selection[split, chosen_items] = 1 / len(chosen_items)
        evaluation[split, held_items] = 1 / len(held_items)
    best = np.argmax(selection @ values.T, axis=1)  # (S,) argmax takes the first of tied layers
    held_out = (evaluation @ values.T)[np.arange(n_splits), best]
    return _choice(layers, [layers[index] for index in best], held_out, values.mean(axis=1), n_items, n_splits, seed)


def fixed_layer(in_sample: Mapping[str, float], layer: str) -> LayerChoice:
    """The user's layer (e.g. "final"), fixed before looking; in_sample[layer] = each layer's score on all items."""
    if layer not in in_sample:
        raise ValueError(f"Layer {layer!r} has no score; scored layers: {', '.join(in_sample)}.")
    layers = tuple(in_sample)
    values = np.array([in_sample[name] for name in layers], dtype=np.float64)
    best = layers[_argmax(values)]
    return LayerChoice(layer, float(in_sample[layer]), np.array([float(in_sample[layer])]), (layer,), best,
                       float(np.max(values)),
                       f"Layer fixed in advance: {layer} (not chosen by its score), scored on all items.")


def _argmax(values) -> int:
    """Index of the largest value, the first among ties; NaN never wins."""
    values = np.asarray(values, dtype=np.float64)
    if np.isnan(values).all():
        raise ValueError("Every layer's score is NaN: no layer can be chosen.")
    return int(np.nanargmax(values))


def _choice(layers: tuple[str, ...], chosen: list[str], held_out: np.ndarray, in_sample: np.ndarray, n_items: int,
            n_splits: int, seed: int) -> LayerChoice:
    """LayerChoice from each split's chosen layer and held-out score: the most chosen layer (earlier wins ties)."""
    counts = Counter(chosen)
    layer = max(layers, key=lambda name: (counts[name], -layers.index(name)))
    best = _argmax(in_sample)
    rule = (f"Layer chosen on a random half of the {n_items} items (best score) and scored on the other half; "
            f"mean over {n_splits} seeded splits (seed {seed}). The best layer on all items is not reported: "
            "it is biased upwards.")
    return LayerChoice(layer, float(np.mean(held_out)), held_out, tuple(chosen), layers[best],
                       float(in_sample[best]), rule)
