"""Known answers for RDMs, RSA, entropic GW alignment and matching rates."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.analyses import gwot
from core.analyses.gwot import Alignment, initial_plan, search_warnings
from core.analyses.gwot_search import align
from core.analyses.matching import (category_chance, category_matching_rate, matching_summary, per_category_matching,
                                    top_k_matching_rate)
from core.analyses.rdm import rdm
from core.progress import Progress

RNG = np.random.default_rng(0)


@pytest.mark.slow  # ~30-40 s on 2 cores
def test_a_noisy_permuted_copy_is_recovered() -> None:
    n = 200
    cloud = RNG.normal(size=(n, 5))
    permutation = RNG.permutation(n)
    copy = cloud[permutation] + 0.01 * RNG.normal(size=(n, 5))
    source, target = rdm(cloud, "euclidean"), rdm(copy, "euclidean")
    # Put the target back in source order so that "true partner of i is i" holds for the rates.
    target = target[np.ix_(np.argsort(permutation), np.argsort(permutation))]
    result = align(source, target, eps_range=(0.01, 0.1), n_eps=3, n_inits=2, seed=0)
    assert top_k_matching_rate(result.transport_plan, 1) >= 0.9
    assert result.trials.loc[result.selected, "top1"] == top_k_matching_rate(result.transport_plan, 1)
    valid = result.trials[result.trials["valid"]]
    assert result.gw_distance == valid["gw_distance"].min()  # selection by GW distance, never by top-1
    np.testing.assert_allclose(result.transport_plan.sum(axis=1), 1 / n, atol=1e-5)


def test_independent_clouds_match_near_chance() -> None:
    n = 120
    source = rdm(RNG.normal(size=(n, 5)), "euclidean")
    target = rdm(RNG.normal(size=(n, 5)), "euclidean")
    result = align(source, target, eps_range=(0.02, 0.2), n_eps=2, n_inits=2, seed=1)
    assert top_k_matching_rate(result.transport_plan, 1) <= 5 / n  # chance is 1/N
    assert top_k_matching_rate(result.transport_plan, 10) <= 0.25  # chance is 10/N = 0.083


def test_category_rate_and_chance_follow_the_formula_on_a_hand_built_plan() -> None:
    categories = np.array(["a", "a", "b", "b", "c", "c"])
    # rows 0-5 put their largest mass on columns 1, 2, 3, 5, 4, 0: category hits 1, 0, 1, 0, 1, 0.
    plan = np.full((6, 6), 0.01)
    for row, column in enumerate([1, 2, 3, 5, 4, 0]):
        plan[row, column] = 0.5
    assert category_matching_rate(plan, categories) == pytest.approx(3 / 6)
    assert top_k_matching_rate(plan, 1) == pytest.approx(1 / 6)  # only row 4 -> column 4
    assert category_chance(categories) == pytest.approx(3 * (2 / 6) ** 2)
    table = per_category_matching(plan, categories).set_index("category")
    assert table.loc["a", "category_match"] == 0.5 and table.loc["c", "top1"] == 0.5
    summary = matching_summary(plan, categories, ks=(1, 6)).set_index("measure")
    assert summary.loc["top-6", "rate"] == 1.0 and summary.loc["top-1", "chance"] == pytest.approx(1 / 6)


def test_a_flat_plan_is_not_a_perfect_match() -> None:
    assert top_k_matching_rate(np.full((50, 50), 1 / 2500), 1) == pytest.approx(1 / 50)


@pytest.mark.parametrize("init", ["random", "permutation", "uniform"])
def test_initial_plans_have_uniform_marginals(init: str) -> None:
    plan = initial_plan(40, 40, init, seed=3)
    np.testing.assert_allclose(plan.sum(axis=1), 1 / 40, atol=1e-9)
    np.testing.assert_allclose(plan.sum(axis=0), 1 / 40, atol=1e-9)


@pytest.mark.slow  # ~30-40 s on 2 cores
def test_torch_and_numpy_backends_select_the_same_trial() -> None:
    pytest.importorskip("torch")
    cloud = RNG.normal(size=(80, 4))
    source = rdm(cloud, "euclidean")
    target = rdm(cloud + 0.05 * RNG.normal(size=cloud.shape), "euclidean")
    kwargs = dict(eps_range=(0.005, 0.5), n_eps=4, n_inits=2, seed=5)
    numpy_result, torch_result = align(source, target, **kwargs), align(source, target, backend="torch", **kwargs)
    np.testing.assert_allclose(numpy_result.trials["gw_distance"], torch_result.trials["gw_distance"], rtol=5e-3)
    assert numpy_result.epsilon == torch_result.epsilon
    # Two inits can reach the same optimum, and then which of them wins is float noise; what
    # must not differ is the selected matching.
    np.testing.assert_array_equal(numpy_result.transport_plan.argmax(axis=1), torch_result.transport_plan.argmax(axis=1))
    assert numpy_result.trials.loc[numpy_result.selected, "top1"] == torch_result.trials.loc[torch_result.selected,
                                                                                              "top1"]
    single = dict(kwargs, n_inits=1)
    assert align(source, target, **single).selected == align(source, target, backend="torch", **single).selected


def test_failed_trials_are_discarded_and_explained() -> None:
    source = rdm(RNG.normal(size=(30, 3)), "euclidean") * 1e20  # float32 squares overflow: NaN plans
    with pytest.raises(ValueError, match="All 2 trials failed \\(NaN in the plan\\)"):
        align(source, source, eps_range=(1.0, 1.0), n_eps=1, n_inits=2, max_iter=20)


def test_sequential_search_refines_around_the_best_coarse_epsilon() -> None:
    cloud = RNG.normal(size=(60, 4))
    source = rdm(cloud, "euclidean")
    result = align(source, source, eps_range=(1e-3, 1.0), n_eps=6, n_inits=1, search="sequential", seed=2)
    coarse = gwot.epsilon_grid((1e-3, 1.0), 3)
    refined = result.trials["epsilon"].to_numpy()[3:]
    best = result.trials.iloc[:3].loc[lambda t: t["valid"], ["epsilon", "gw_distance"]].sort_values("gw_distance")
    index = int(np.argmin(np.abs(coarse - best["epsilon"].iloc[0])))
    assert len(refined) == 3
    assert refined.min() > coarse[max(index - 1, 0)] and refined.max() < coarse[min(index + 1, 2)]


@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_log_stabilised_sinkhorn_reaches_the_sinkhorn_log_fixed_point(scale: float) -> None:
    import ot
    cost = RNG.uniform(size=(60, 50)) * scale
    epsilon = 0.01 * scale  # at scale 1e4, exp(-cost / epsilon) is 0 for most entries in float32
    expected = ot.bregman.sinkhorn_log(ot.unif(60), ot.unif(50), cost, epsilon, stopThr=1e-12, numItermax=100000)
    plan, (f, g) = gwot.log_stabilised_sinkhorn(cost.astype(np.float32), epsilon, tol=1e-6, max_iter=100000)
    np.testing.assert_allclose(plan, expected, rtol=1e-3, atol=1e-5 * plan.max())  # float32
    np.testing.assert_allclose(plan.sum(axis=1), 1 / 60, rtol=1e-3)
    np.testing.assert_allclose(plan, np.exp((f[:, None] + g[None, :] - cost) / epsilon), rtol=1e-2, atol=1e-9)
    warm, _ = gwot.log_stabilised_sinkhorn(cost.astype(np.float32), epsilon, (f, g), tol=1e-6)
    np.testing.assert_allclose(warm, plan, rtol=1e-3, atol=1e-5 * plan.max())


def test_annealing_runs_epsilon_downwards_from_the_previous_plan() -> None:
    cloud = RNG.normal(size=(100, 5))
    source, target = rdm(cloud, "euclidean"), rdm(cloud + 0.01 * RNG.normal(size=cloud.shape), "euclidean")
    kwargs = dict(eps_range=(0.01, 1.0), n_eps=4, n_inits=1, seed=0)
    annealed, cold = align(source, target, warm_start=True, **kwargs), align(source, target, **kwargs)
    assert list(annealed.trials["epsilon"]) == sorted(annealed.trials["epsilon"], reverse=True)
    assert list(cold.trials["epsilon"]) == sorted(cold.trials["epsilon"])
    # The largest epsilon starts from the initial plan either way; the others do not.
    assert annealed.trials["gw_distance"].iloc[0] == cold.trials["gw_distance"].iloc[-1]
    assert top_k_matching_rate(annealed.transport_plan, 1) >= 0.9


def _alignment(rows: list[tuple[float, int, float, float]], selected: int, plan: np.ndarray | None = None) -> Alignment:
    trials = pd.DataFrame([{"epsilon": e, "init_seed": s, "gw_distance": d, "top1": t, "valid": True}
                           for e, s, d, t in rows])
    return Alignment(np.eye(4) / 4 if plan is None else plan, trials, selected)


def test_search_warnings_flag_an_epsilon_at_either_edge_and_not_inside() -> None:
    grid = [(1e-4, 0, 1.0, 0.5), (1e-3, 0, 2.0, 0.5), (1e-2, 0, 3.0, 0.5)]
    low = search_warnings(_alignment(grid, 0))
    assert [w.kind for w in low] == ["epsilon_low_edge"] and "ε from 1e-05" in low[0].message
    rising = [(epsilon, seed, 4.0 - distance, top1) for epsilon, seed, distance, top1 in grid]  # best at 1e-2
    high = search_warnings(_alignment(rising, 2))
    assert [w.kind for w in high] == ["epsilon_high_edge"] and "ε to 1e-01" in high[0].message
    assert search_warnings(_alignment(grid, 1)) == ()
    assert search_warnings(_alignment(grid[:1], 0)) == ()  # a single ε has no edge to widen


def test_an_edge_epsilon_on_a_plateau_is_not_flagged() -> None:
    # As ε -> 0 the GW distance keeps shrinking a little; under 1 % against the neighbour ε is a plateau.
    plateau = [(1e-5, 0, 1.000, 0.6), (1e-4, 0, 1.005, 0.6), (1e-3, 0, 1.5, 0.4)]
    assert search_warnings(_alignment(plateau, 0)) == ()
    falling = [(1e-5, 0, 1.000, 0.6), (1e-4, 0, 1.04, 0.6), (1e-3, 0, 1.5, 0.4)]
    assert [w.kind for w in search_warnings(_alignment(falling, 0))] == ["epsilon_low_edge"]


def test_search_warnings_flag_category_matching_below_chance() -> None:
    categories = np.array(["a", "a", "b", "b"])
    swapped = np.eye(4)[[2, 3, 0, 1]] / 4  # whole categories exchanged: category rate 0, chance 0.5
    rows = [(1e-3, 0, 1.0, 0.0), (1e-2, 0, 2.0, 0.0)]
    warnings = search_warnings(_alignment(rows, 0, swapped), categories)
    below = next(w for w in warnings if w.kind == "category_below_chance")
    assert "(0.0%) is below chance (50.0%)" in below.message and "swapped" in below.message
    assert "category_below_chance" not in [w.kind for w in search_warnings(_alignment(rows, 0), categories)]


def test_search_warnings_flag_inits_that_agree_at_every_epsilon_only() -> None:
    agreeing = [(1e-3, 0, 1.0, 0.5), (1e-3, 1, 1.0 + 1e-8, 0.5), (1e-2, 0, 2.0, 0.25), (1e-2, 1, 2.0, 0.25)]
    assert "inits_agree" in [w.kind for w in search_warnings(_alignment(agreeing, 0))]
    # The demo study's two inits: the same top-1 at every ε, GW distances 1.5e-5 apart (relative): one optimum.
    demo_like = [(1e-3, 0, 1.0, 0.5), (1e-3, 1, 1.0 * (1 + 1.5e-5), 0.5), (1e-2, 0, 2.0, 0.25),
                 (1e-2, 1, 2.0 * (1 - 1.5e-5), 0.25)]
    assert "inits_agree" in [w.kind for w in search_warnings(_alignment(demo_like, 0))]
    one_differs = agreeing[:3] + [(1e-2, 1, 2.1, 0.25)]
    other_top1 = agreeing[:3] + [(1e-2, 1, 2.0, 0.5)]
    single_init = agreeing[::2]
    apart = agreeing[:3] + [(1e-2, 1, 2.0 * (1 + 5e-3), 0.25)]  # half a percent apart: another optimum
    for rows in (one_differs, other_top1, single_init, apart):
        assert "inits_agree" not in [w.kind for w in search_warnings(_alignment(rows, 0))]


def test_rsa_vs_gwot_has_a_row_per_target_with_rates_once_aligned() -> None:
    categories = np.array(["a", "a", "b", "b"])
    cloud = RNG.normal(size=(4, 3))
    source = rdm(cloud, "euclidean")
    targets = {"same": source, "other": rdm(RNG.normal(size=(4, 3)), "euclidean")}
    done = _alignment([(1e-3, 0, 1.0, 1.0)], 0)
    table = gwot.rsa_vs_gwot("src", source, targets, {"same": done, "other": "running"}, categories)
    assert table["target"].tolist() == ["same", "other"] and table["gwot"].tolist() == ["done", "running"]
    assert table.loc[0, "rsa"] == pytest.approx(1.0) and table.loc[0, "top-1"] == 1.0
    assert table.loc[0, "category"] == 1.0 and np.isnan(table.loc[1, "top-1"])
    assert gwot.rsa_vs_gwot("src", source, targets, {}, categories)["gwot"].tolist() == ["not run", "not run"]
    report = gwot.alignment_report(done, source, source, categories)
    assert report.rsa == pytest.approx(1.0) and report.rates.set_index("measure").loc["top-1", "rate"] == 1.0
    assert report.per_category["category"].tolist() == ["a", "b"]


def test_entropic_gw_returns_its_plan_distance_and_potentials() -> None:
    source = rdm(np.random.default_rng(0).normal(size=(20, 3)), "euclidean")  # own RNG: independent of test order
    solved = gwot.entropic_gw(source, source, 0.05, initial_plan(20, 20, "uniform", 0))
    assert solved.converged and 1 <= solved.iterations <= 1000 and solved.gw_distance >= 0
    np.testing.assert_allclose(solved.plan.sum(axis=1), 1 / 20, atol=1e-5)
    assert [len(potential) for potential in solved.potentials] == [20, 20]


@pytest.mark.parametrize("search, warm_start", [("grid", False), ("grid", True), ("sequential", False),
                                                ("sequential", True)])
def test_chains_run_apart_and_merged_in_any_order_equal_the_in_process_search(search: str, warm_start: bool) -> None:
    """What a study engine does (each chain a task, results back in any order) selects what `align` selects."""
    from core.analyses.gwot_search import SearchSettings, assemble, refinement, run_chain, search_chains, starts_for
    cloud = RNG.normal(size=(30, 4))
    source, target = rdm(cloud, "euclidean"), rdm(cloud + 0.05 * RNG.normal(size=cloud.shape), "euclidean")
    settings = SearchSettings((0.1, 1.0), 4, 2, "random", search, warm_start, seed=3)
    in_process = align(source, target, eps_range=(0.1, 1.0), n_eps=4, n_inits=2, search=search,
                       warm_start=warm_start, seed=3)
    keep = search == "sequential" and warm_start
    first = [run_chain(source, target, chain, settings, keep_states=keep)
             for chain in search_chains(settings, settings.first_stage())][::-1]  # back in another order
    second = [run_chain(source, target, chain, settings, starts=starts_for(chain, first))
              for chain in search_chains(settings, refinement(settings, first), stage=1)]
    merged = assemble(second + first, settings)
    assert merged.selected == in_process.selected and len(merged.trials) == 8
    np.testing.assert_array_equal(merged.transport_plan, in_process.transport_plan)
    columns = ["epsilon", "init_seed", "gw_distance", "top1", "iterations", "converged", "valid"]
    assert merged.trials[columns].equals(in_process.trials[columns])


def test_a_search_reports_each_trial_of_both_stages_once_with_its_message() -> None:
    from core.analyses.gwot_search import trial_message
    cloud = RNG.normal(size=(30, 4))
    source, target = rdm(cloud, "euclidean"), rdm(cloud + 0.05 * RNG.normal(size=cloud.shape), "euclidean")
    reports: list[Progress] = []
    result = align(source, target, eps_range=(0.1, 1.0), n_eps=4, n_inits=2, search="sequential", warm_start=True,
                   seed=3, progress=reports.append)
    assert reports[0] == Progress(0, 8, "starting")  # before the first trial
    assert [report.done for report in reports] == list(range(9)) and {report.total for report in reports} == {8}
    assert sorted(report.message for report in reports[1:]) == sorted(map(trial_message,
                                                                          result.trials.to_dict("records")))
