"""Layer choice without optimism: the in-sample best of 13 noise layers is clearly above 0, the held-out score of
the layer chosen on one half is ~0; a planted layer is chosen and scored at its true value."""
from __future__ import annotations

import numpy as np
import pytest

from core.analyses.layer_choice import fixed_layer, half_splits, held_out_layer, held_out_layer_from_items

LAYERS = tuple(f"block{index}" for index in range(12)) + ("final",)


def noise_layers(rng: np.random.Generator, n_items: int = 400, planted: float = 0.0) -> dict[str, np.ndarray]:
    """13 layers of per-item scores N(0, 1); block6 has mean `planted` (its true score)."""
    return {layer: rng.normal(size=n_items) + (planted if layer == "block6" else 0.0) for layer in LAYERS}


def test_the_in_sample_best_of_noise_is_optimistic_and_the_held_out_score_is_zero() -> None:
    rng = np.random.default_rng(0)
    choices = [held_out_layer_from_items(noise_layers(rng), n_splits=10, seed=seed) for seed in range(50)]
    in_sample = np.array([choice.in_sample_score for choice in choices])
    held_out = np.array([choice.score for choice in choices])
    # The mean of the best of 13 means of 400 N(0, 1) items is E[max of 13 N(0, 1)] / 20 = 1.67 / 20 ≈ 0.084.
    assert in_sample.mean() == pytest.approx(0.084, abs=0.02)
    assert abs(held_out.mean()) < 0.03  # 50 datasets, each held-out score's sd <= 1/√200 ≈ 0.07
    assert len({choice.layer for choice in choices}) > 5  # noise: no layer is preferred


def test_a_planted_layer_is_chosen_and_scored_at_its_true_value() -> None:
    per_item = noise_layers(np.random.default_rng(1), planted=0.5)
    choice = held_out_layer_from_items(per_item, n_splits=10, seed=3)
    assert choice.layer == "block6" and choice.chosen == ("block6",) * 10 and choice.in_sample_best == "block6"
    expected = [per_item["block6"][held].mean() for _, held in half_splits(400, 10, 3)]
    np.testing.assert_allclose(choice.scores, expected, atol=1e-12)
    assert choice.score == pytest.approx(0.5, abs=0.1)
    assert "400 items" in choice.rule and "10 seeded splits" in choice.rule


def test_the_general_form_equals_the_per_item_form_for_a_mean() -> None:
    per_item = noise_layers(np.random.default_rng(2), n_items=61, planted=0.2)
    from_items = held_out_layer_from_items(per_item, n_splits=7, seed=5)
    general = held_out_layer(lambda layer, items: float(per_item[layer][items].mean()), LAYERS, 61, n_splits=7, seed=5)
    assert general.chosen == from_items.chosen and general.layer == from_items.layer
    np.testing.assert_allclose(general.scores, from_items.scores, atol=1e-12)
    assert general.in_sample_best == from_items.in_sample_best
    assert general.in_sample_score == pytest.approx(from_items.in_sample_score, abs=1e-12)
    assert general.rule == from_items.rule


def test_the_general_form_scores_each_split_on_its_held_out_items_only() -> None:
    seen: list[tuple[str, np.ndarray]] = []

    def score(layer: str, items: np.ndarray) -> float:
        seen.append((layer, items))
        return float(items.mean()) if layer == "b" else 0.0

    choice = held_out_layer(score, ("a", "b"), 10, n_splits=3, seed=0)
    splits = half_splits(10, 3, 0)
    for (selection, held), in_split_calls in zip(splits, [seen[2 + 3 * index: 5 + 3 * index] for index in range(3)]):
        assert [layer for layer, _ in in_split_calls] == ["a", "b", "b"]
        np.testing.assert_array_equal(in_split_calls[0][1], selection)
        np.testing.assert_array_equal(in_split_calls[2][1], held)
        assert set(selection).isdisjoint(held) and len(selection) == 5
    assert choice.scores.tolist() == [held.mean() for _, held in splits]


def test_a_fixed_layer_reports_its_own_score_and_names_the_in_sample_best() -> None:
    choice = fixed_layer({"block0": 0.1, "block1": 0.4, "final": 0.3}, "final")
    assert (choice.layer, choice.score, choice.chosen) == ("final", 0.3, ("final",))
    assert (choice.in_sample_best, choice.in_sample_score) == ("block1", 0.4)
    assert "fixed" in choice.rule and "final" in choice.rule
    with pytest.raises(ValueError, match="'block9' has no score"):
        fixed_layer({"block0": 0.1}, "block9")


def test_input_checks() -> None:
    with pytest.raises(ValueError, match="same items"):
        held_out_layer_from_items({"a": np.zeros(5), "b": np.zeros(6)})
    with pytest.raises(ValueError, match="NaN"):
        held_out_layer_from_items({"a": np.array([0.0, np.nan, 1.0])})
    with pytest.raises(ValueError, match="at least 2 items"):
        half_splits(1)
    with pytest.raises(ValueError, match="No layers"):
        held_out_layer_from_items({})
