"""The brain analysis (docs/science.md §10): layer RDMs, model RDMs and other groups against reference groups."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from core.analyses.brain import (FILE, GROUP, LAYER, best_layer_table, ceiling_table, evaluate, layer_candidates, layer_curves,
                                 model_table, pairwise_table, per_subject_table, rdm_candidates,
                                 second_order_mds)
from core.analyses.rsa import condensed
from core.analyses.rsa_inference import evaluate_rsa
from core.data.datasets import neural
from core.data.neural import RdmReference
from core.studies.analyses.brain import BrainSettings, check, compute, chosen_references


def synthetic(n_items=20, n_subjects=5, seed=0):
    """A planted geometry: subjects' RDMs are noisy copies of the RDM of `truth` features."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(n_items, 8))
    base = pdist(truth, "correlation")
    rdms = []
    for _ in range(n_subjects):
        noisy = np.abs(base + rng.normal(scale=0.2, size=base.shape))
        square = np.zeros((n_items, n_items))
        square[np.triu_indices(n_items, 1)] = noisy
        rdms.append(square + square.T)
    return truth, RdmReference("brain", np.array(rdms), tuple(f"s{k}" for k in range(n_subjects)))


def test_a_layer_holding_the_true_features_beats_noise_and_equals_evaluate_rsa() -> None:
    truth, group = synthetic()
    rng = np.random.default_rng(1)
    features = {("enc", "early"): rng.normal(size=truth.shape), ("enc", "late"): truth}
    candidates = layer_candidates(features, {"enc": ["early", "late"]}, "correlation")
    assert [item.depth for item in candidates] == [0.0, 1.0]
    np.testing.assert_allclose(candidates[1].rdm, pdist(truth, "correlation"), atol=1e-12)
    result = evaluate(candidates, [group], "corr", n_bootstrap=50, resample="subjects", seed=3)
    table = model_table(result)
    direct = evaluate_rsa(np.stack([item.rdm for item in candidates]), condensed(group.rdms), "corr",
                          ["enc · early", "enc · late"], 50, "subjects", 3)
    np.testing.assert_allclose(table["mean"], direct.mean)
    np.testing.assert_allclose(table["ci_low"], direct.ci_low)
    assert table.loc[1, "mean"] > 0.5 > abs(table.loc[0, "mean"])
    curves = layer_curves(table, "brain")
    assert list(curves.columns) == ["encoder", "layer", "depth", "value", "ci_low", "ci_high"]
    assert list(curves["layer"]) == ["early", "late"]
    assert len(pairwise_table(result)) == 1 and len(per_subject_table(result)) == 2 * 5
    ceiling = ceiling_table(result).iloc[0]
    assert ceiling["lower"] <= ceiling["upper"] and ceiling["n_subjects"] == 5


def test_a_group_is_never_its_own_model_and_other_groups_and_files_are() -> None:
    _, first = synthetic(seed=0)
    _, second = synthetic(seed=5)
    second = RdmReference("other", second.rdms, second.subjects)
    model = RdmReference("animacy", first.rdms[:1], ("s01",))
    candidates = rdm_candidates([first, second], [model])
    assert [(item.name, item.kind) for item in candidates] == [("rdm · animacy", FILE), ("rdm · brain", GROUP),
                                                              ("rdm · other", GROUP)]
    result = evaluate(candidates, [first, second], "spearman")
    assert result.evaluations["brain", "spearman"].model_names == ("rdm · animacy", "rdm · other")
    assert result.evaluations["other", "spearman"].model_names == ("rdm · animacy", "rdm · brain")
    assert [item.name for item in rdm_candidates([first, second], [model], ["rdm · other"])] == ["rdm · other"]


def test_second_order_mds_puts_equal_rdms_together() -> None:
    _, group = synthetic()
    rdms = condensed(group.rdms)
    rng = np.random.default_rng(0)
    points = second_order_mds({"a": rdms[0], "a again": rdms[0] * 2, "noise": rng.random(rdms.shape[1]),
                               "b": rdms[1]}, "corr").set_index("name")
    near = np.hypot(*(points.loc["a", ["x", "y"]] - points.loc["a again", ["x", "y"]]))
    far = np.hypot(*(points.loc["a", ["x", "y"]] - points.loc["noise", ["x", "y"]]))
    assert near < 0.05 * far


def test_settings_default_and_check_name_what_is_wrong(kriegeskorte92) -> None:
    image_set = neural(kriegeskorte92)
    assert [group.name for group in chosen_references(BrainSettings(), image_set)] == ["behaviour", "hIT"]
    assert BrainSettings.parse({}).method == "corr" and BrainSettings().rdm_metric == "correlation"
    for values in ({"n_bootstrap": 5}, {"method": "pearson"}, {"resample": "none"}, {"reference_groups": "hIT"}):
        with pytest.raises(ValueError):
            BrainSettings.parse(values)

    class Step:
        dataset = "neural:92"
        settings = BrainSettings(reference_groups=("V4",))
    assert check(Step, image_set) == ("reference_groups", "neural:92 has no RDM group 'V4'; it has behaviour, hIT, "
                                                    "hITvisStim_316vx, mIT_674neurons")
    Step.settings = BrainSettings(models=("rdm · V4",))
    assert check(Step, image_set)[0] == "models"
    Step.settings = BrainSettings()
    assert check(Step, image_set) is None


def test_on_the_92_images_monkey_it_vs_human_it_is_rsatoolbox_s_number(kriegeskorte92) -> None:
    """mIT vs hIT with corr: 0.3335, the hIT ceiling 0.3944 / 0.6804 (rsatoolbox's eval_fixed / boot_noise_ceiling,
    checked in test_rsa); far above 0, below the lower ceiling."""
    image_set = neural(kriegeskorte92)
    settings = BrainSettings(reference_groups=("hIT",), models=("rdm · mIT_674neurons", "rdm · animacy"), n_bootstrap=0)
    table = model_table(compute(settings, image_set, {}, {})).set_index("model")
    row = table.loc["rdm · mIT_674neurons"]
    assert row["mean"] == pytest.approx(0.3335, abs=5e-5)
    assert row["ceiling_lower"] == pytest.approx(0.3944, abs=5e-5)
    assert row["ceiling_upper"] == pytest.approx(0.6804, abs=5e-5)
    assert row["p_vs_zero"] < 0.01 and row["mean"] < row["ceiling_lower"]
    assert row["ceiling_normalised"] == pytest.approx(row["mean"] / row["ceiling_lower"])


def test_the_mds_table_holds_the_models_and_each_subject_of_the_reference() -> None:
    truth, group = synthetic(n_subjects=4)
    candidates = layer_candidates({("enc", "late"): truth}, {"enc": ["late"]})
    from core.analyses.brain import mds_table
    table = mds_table(evaluate(candidates, [group], "corr"))
    assert list(table["kind"]) == [LAYER] + ["subject"] * 4
    assert list(table["name"])[1:] == [f"brain · s{k}" for k in range(4)] and (table["reference"] == "brain").all()


def test_an_empty_models_list_means_the_layers_only() -> None:
    truth, group = synthetic()
    image_set = type("Set", (), {"rdm_references": (group,), "model_rdms": ()})()
    settings = BrainSettings.parse({"models": [], "n_bootstrap": 0})
    assert settings.models == ()
    result = compute(settings, image_set, {("enc", "late"): truth}, {"enc": ["late"]})
    assert result.evaluations["brain", "corr"].model_names == ("enc · late",)


def test_progress_names_each_reference_group_as_a_stage() -> None:
    truth, first = synthetic()
    _, second = synthetic(seed=4)
    second = RdmReference("other", second.rdms, second.subjects)
    seen = []
    evaluate(layer_candidates({("enc", "late"): truth}, {"enc": ["late"]}), [first, second], "corr", 40,
             "stimuli", progress=seen.append)
    assert [report.stage for report in seen if report.done == report.total] == ["brain (1/2)", "other (2/2)"]
    assert seen[-1].message.startswith("other (2/2): bootstrap over stimuli")


def test_several_comparators_are_each_the_single_comparator_s_evaluation() -> None:
    """Two comparators in one run: each one's rows equal a run with that comparator alone (the same resamples)."""
    truth, group = synthetic(n_subjects=4)
    features = {("enc", "late"): truth, ("enc", "early"): np.random.default_rng(1).normal(size=truth.shape)}
    order = {"enc": ["early", "late"]}
    image_set = type("Set", (), {"rdm_references": (group,), "model_rdms": ()})()
    both = BrainSettings.parse({"method": ["spearman", "corr"], "n_bootstrap": 30, "resample": "subjects"})
    assert both.methods == ("spearman", "corr")
    together = model_table(compute(both, image_set, features, order))
    pairs = pairwise_table(compute(both, image_set, features, order))
    assert list(pairs["method"]) == ["spearman", "corr"]
    for method in both.methods:
        alone = BrainSettings.parse({"method": method, "n_bootstrap": 30, "resample": "subjects"})
        expected = model_table(compute(alone, image_set, features, order))
        mine = together[together["method"] == method].reset_index(drop=True)
        np.testing.assert_allclose(mine[["mean", "ci_low", "ci_high", "p_vs_zero"]], expected[["mean", "ci_low",
                                                                                               "ci_high", "p_vs_zero"]])
        assert layer_curves(together, "brain", method)["value"].tolist() == expected.loc[
            expected["kind"] == LAYER, "mean"].tolist()


def test_one_comparator_stays_a_name_as_old_study_files_give_it() -> None:
    """`method = "corr"` and `method = ["corr"]` (the page's multiselect) are the same settings, the same key."""
    assert BrainSettings.parse({"method": "tau-a"}) == BrainSettings.parse({"method": ["tau-a"]}) \
        == BrainSettings(method=["tau-a"])
    assert BrainSettings(method=["tau-a"]).method == "tau-a"
    for bad in (["corr", "corr"], [], "pearson", ["corr", "pearson"]):
        with pytest.raises(ValueError, match="corr_cov"):
            BrainSettings.parse({"method": bad})


def test_the_best_layer_is_chosen_on_held_out_stimuli_never_on_the_same_ones() -> None:
    """13 layers of pure noise: the in-sample best is clearly positive, the held-out score ~0 (over 12 data sets); a
    planted layer (the subjects' true geometry) is chosen, and its in-sample score is the model table's mean."""
    order = {"noise": [f"block{k}" for k in range(13)], "planted": ["block0", "block1", "block2", "final"]}
    in_sample, held_out = [], []
    for seed in range(12):
        truth, group = synthetic(n_items=30, n_subjects=4, seed=seed)
        rng = np.random.default_rng(100 + seed)
        features = {("noise", layer): rng.normal(size=truth.shape) for layer in order["noise"]}
        features |= {("planted", layer): rng.normal(size=truth.shape) for layer in order["planted"][:3]}
        features["planted", "final"] = truth
        result = evaluate(layer_candidates(features, order, "correlation"), [group], "spearman")
        best = best_layer_table(result, n_splits=10, seed=0).set_index("encoder")
        in_sample.append(best.loc["noise", "in_sample_score"])
        held_out.append(best.loc["noise", "score"])
        assert best.loc["planted", "layer"] == "final" and best.loc["planted", "score"] > 0.5
        table = model_table(result)
        assert best.loc["noise", "in_sample_score"] == pytest.approx(
            table[table["encoder"] == "noise"]["mean"].max(), abs=1e-12)
        final = table[(table["encoder"] == "planted") & (table["layer"] == "final")]["mean"].iloc[0]
        assert best.loc["planted", "in_sample_score"] == pytest.approx(final, abs=1e-12)
    assert np.mean(in_sample) > 0.05  # the maximum of 13 noise correlations (SD ~0.05 at 435 pairs)
    assert abs(np.mean(held_out)) < 0.03
    assert "other half" in best.loc["planted", "rule"]
