"""The epsilon search of an entropic GW alignment (docs/science.md §5), as independent trial chains.

A search is a set of *chains*: with annealing (`warm_start`) one chain per init seed, running its
epsilons from large to small, each trial starting from the chain's previous plan; without it, one
chain per (epsilon, init seed) holding a single cold-started trial (GWTune's protocol). Chains
share nothing, so a study engine can run them as parallel tasks (`search_chains` lists them,
`run_chain` runs one, `assemble` merges them); `align` runs them one after another in-process.
Both give the same trials in the same order, so the selected trial is the same.

A "sequential" search runs a second stage of epsilons between the neighbours of the best
first-stage epsilon; annealed second-stage chains start from their seed's first-stage plans.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import ot
import pandas as pd

from core.analyses.gwot import (SEARCHES, TIE_TOLERANCE, Alignment, backend_converter, check_plan, entropic_gw,
                                epsilon_grid, initial_plan, validate_rdms)
from core.analyses.matching import top_k_matching_rate
from core.features.results import ResultStore, result_key
from core.progress import Progress, Report


@dataclass(frozen=True)
class SearchSettings:
    """Every setting of an epsilon search (the Alignment page's controls, a study's alignment step)."""

    eps_range: tuple[float, float] = (1e-4, 1e-1)
    n_eps: int = 10
    n_inits: int = 3
    init: str = "random"  # random | permutation | uniform
    search: str = "grid"  # grid | sequential
    warm_start: bool = False
    max_iter: int = 1000
    tol: float = 1e-6
    backend: str = "numpy"  # numpy | torch
    seed: int = 0

    def __post_init__(self):
        if self.search not in SEARCHES:
            raise ValueError(f"Unknown epsilon search {self.search!r}; choose one of {', '.join(SEARCHES)}.")
        epsilon_grid(self.eps_range, 1)  # a reversed or non-positive range fails here, before any trial

    @property
    def seeds(self) -> list[int]:
        """The init seeds: `seed`, `seed + 1`, …; one for the deterministic uniform init."""
        return [self.seed + index for index in range(1 if self.init == "uniform" else self.n_inits)]

    @property
    def n_trials(self) -> int:
        return self.n_eps * len(self.seeds)

    def first_stage(self) -> np.ndarray:
        """The epsilons tried first: all of them on a grid, half of them in a sequential search."""
        return epsilon_grid(self.eps_range, self.n_eps if self.search == "grid" else max(2, (self.n_eps + 1) // 2))


@dataclass(frozen=True)
class Chain:
    """Trials that must run in order: one init seed over `epsilons` (already in run order)."""

    epsilons: tuple[float, ...]
    init_seed: int
    stage: int = 0  # 0: first stage; 1: a sequential search's refinement


@dataclass(frozen=True, eq=False)
class ChainResult:
    """A chain's trials (dict rows as `Alignment.trials`), its best valid (N, M) plan, and its annealing states."""

    chain: Chain
    rows: list[dict]
    best_plan: np.ndarray | None  # float32; None when every trial failed
    best_row: int  # index into `rows`, -1 when none is valid
    states: dict[float, tuple] = field(default_factory=dict)  # epsilon -> (plan, (f, g)) as numpy, when kept


def search_chains(settings: SearchSettings, epsilons: Sequence[float], stage: int = 0) -> list[Chain]:
    """The chains of one stage: a chain per seed (annealing, epsilons large to small) or per (epsilon, seed)."""
    ordered = sorted(map(float, epsilons), reverse=settings.warm_start)
    if settings.warm_start:
        return [Chain(tuple(ordered), seed, stage) for seed in settings.seeds]
    return [Chain((epsilon,), seed, stage) for epsilon in ordered for seed in settings.seeds]


def run_chain(C_source, C_target, chain: Chain, settings: SearchSettings, *, starts: dict[float, tuple] | None = None,
              keep_states: bool = False, progress: Report | None = None) -> ChainResult:
    """Solve the trials of `chain` for (N, N) RDMs (numpy or already in the settings' backend).

    With annealing a trial starts from the chain's own plan at the nearest larger epsilon, or from
    `starts` (that seed's earlier-stage states, epsilon -> (plan, potentials)); else from its initial plan.
    `progress` after every trial: the chain's trials done, and the trial's `trial_message`.
    """
    to_backend = backend_converter(settings.backend)
    C1, C2 = (to_backend(C) if isinstance(C, np.ndarray) else C for C in (C_source, C_target))
    known = dict(starts or {})
    rows: list[dict] = []
    states: dict[float, tuple] = {}
    best_plan, best_distance, best_row = None, np.inf, -1
    for epsilon in chain.epsilons:
        began = time.perf_counter()
        larger = [e for e in known if e > epsilon]
        if settings.warm_start and larger:
            plan, (f, g) = known[min(larger)]
            plan, potentials = to_backend(plan), (to_backend(f), to_backend(g))
        else:
            plan = to_backend(initial_plan(len(C_source), len(C_target), settings.init, chain.init_seed))
            potentials = None
        with np.errstate(all="ignore"):  # overflow shows up as a NaN plan, reported as such
            solved = entropic_gw(C1, C2, epsilon, plan, max_iter=settings.max_iter, tol=settings.tol,
                                 potentials=potentials)
        plan_numpy = ot.backend.to_numpy(solved.plan)
        valid, note = check_plan(plan_numpy, solved.gw_distance)
        rows.append({"epsilon": epsilon, "init_seed": chain.init_seed, "gw_distance": solved.gw_distance,
                     "top1": top_k_matching_rate(plan_numpy, 1) if valid else np.nan,
                     "seconds": time.perf_counter() - began, "iterations": solved.iterations,
                     "converged": solved.converged, "valid": valid, "note": note})
        if valid:
            # float32 -> numpy -> float32 is lossless, so a state sent to another process resumes exactly.
            state = (plan_numpy, tuple(ot.backend.to_numpy(p) for p in solved.potentials))
            known[epsilon] = state
            if keep_states:
                states[epsilon] = state
            if solved.gw_distance < best_distance * (1 - TIE_TOLERANCE):
                best_plan, best_distance, best_row = plan_numpy, solved.gw_distance, len(rows) - 1
        if progress is not None:
            progress(Progress(len(rows), len(chain.epsilons), trial_message(rows[-1])))
    return ChainResult(chain, rows, best_plan, best_row, states)


def trial_message(trial: dict) -> str:
    """What a search's progress says after `trial` (a row of `Alignment.trials`)."""
    if not trial["valid"]:
        return f"ε {trial['epsilon']:.3g}: discarded ({trial['note']})"
    return (f"ε {trial['epsilon']:.3g}, init {trial['init_seed']}: GW {trial['gw_distance']:.4g}, "
            f"top-1 {trial['top1']:.1%}")


def refinement(settings: SearchSettings, first: Sequence[ChainResult]) -> list[float]:
    """A sequential search's second-stage epsilons from the first stage's trials (none for a grid search)."""
    if settings.search != "sequential":
        return []
    rows = [result.rows[index] for result, index in _trials_in_run_order(first, settings)]
    coarse = settings.first_stage()
    n_more = settings.n_eps - len(coarse)
    valid = [row for row in rows if row["valid"]]
    if n_more <= 0 or not valid:
        return []
    best = min(valid, key=lambda row: row["gw_distance"])["epsilon"]
    index = int(np.argmin(np.abs(np.log(coarse) - np.log(best))))
    low, high = coarse[max(index - 1, 0)], coarse[min(index + 1, len(coarse) - 1)]
    # n_more + 1 interior points, less the one nearest the best epsilon, which was already tried.
    refined = np.geomspace(low, high, n_more + 3)[1:-1]
    return [float(e) for e in np.delete(refined, np.argmin(np.abs(np.log(refined) - np.log(best))))]


def starts_for(chain: Chain, first: Sequence[ChainResult]) -> dict[float, tuple]:
    """The first-stage annealing states of `chain`'s seed (what a refinement chain starts from)."""
    return {epsilon: state for result in first if result.chain.init_seed == chain.init_seed
            for epsilon, state in result.states.items()}


def assemble(results: Sequence[ChainResult], settings: SearchSettings) -> Alignment:
    """One Alignment from every chain of a search: trials in run order, the selected trial's plan.

    Run order is stage, then epsilon (large to small with annealing), then seed, as one process would
    run them; a GW distance closer than float32 can tell is a tie, kept by the earlier trial.
    """
    rows, best_plan, best_distance, selected = [], None, np.inf, -1
    for result, index in _trials_in_run_order(results, settings):
        row = result.rows[index]
        rows.append(row)
        if index == result.best_row and row["gw_distance"] < best_distance * (1 - TIE_TOLERANCE):
            best_plan, best_distance, selected = result.best_plan, row["gw_distance"], len(rows) - 1
    trials = pd.DataFrame(rows)
    if best_plan is None:
        raise ValueError(f"All {len(trials)} trials failed ({trials['note'].iloc[0]}). Raise the epsilon range: "
                         "epsilon too small for the scale of these RDMs makes Sinkhorn diverge.")
    return Alignment(best_plan.astype(np.float64), trials, selected)


def align(C_source: np.ndarray, C_target: np.ndarray, *, eps_range: tuple[float, float] = (1e-4, 1e-1),
          n_eps: int = 10, n_inits: int = 3, init: str = "random", search: str = "grid", warm_start: bool = False,
          max_iter: int = 1000, tol: float = 1e-6, backend: str = "numpy", seed: int = 0,
          progress: Report | None = None) -> Alignment:
    """Search epsilon x initial plans for the entropic GW alignment of (N, N) C_source to (N, N) C_target.

    Item i of the source is the true partner of item i of the target (the `top1` column).
    `search="grid"` tries `n_eps` log-spaced epsilons; "sequential" tries half of them on the
    grid, then the rest log-spaced between the neighbours of the best so far. With `warm_start`,
    epsilons run from large to small and each init's trial starts from that init's plan at the
    nearest larger epsilon (annealing: fast, but at a large epsilon the problem has one optimum,
    so every init follows the same path and extra inits add nothing); otherwise every trial
    starts from its own initial plan (GWTune's protocol). `progress` before the first trial and after every one,
    with its `trial_message`.
    """
    source, target = validate_rdms(C_source, C_target)
    settings = SearchSettings(tuple(map(float, eps_range)), n_eps, n_inits, init, search, warm_start, max_iter, tol,
                              backend, seed)
    to_backend = backend_converter(backend)
    C1, C2 = to_backend(source), to_backend(target)  # once, not once per chain
    keep = settings.search == "sequential" and settings.warm_start
    if progress is not None:
        progress(Progress(0, settings.n_trials, "starting"))  # before the first trial, so a timer starts at zero
    trials_run = 0

    def run(chain: Chain, **options) -> ChainResult:
        """One chain, its trials counted after those of the chains run before it."""
        nonlocal trials_run
        before = trials_run

        def report(trial: Progress) -> None:
            progress(Progress(before + trial.done, settings.n_trials, trial.message))

        result = run_chain(C1, C2, chain, settings, progress=None if progress is None else report, **options)
        trials_run += len(result.rows)
        return result

    first = [run(chain, keep_states=keep) for chain in search_chains(settings, settings.first_stage())]
    second = [run(chain, starts=starts_for(chain, first))
              for chain in search_chains(settings, refinement(settings, first), stage=1)]
    return assemble(first + second, settings)


def _trials_in_run_order(results: Sequence[ChainResult], settings: SearchSettings):
    """(chain result, row index) of every trial in the order one process runs them."""
    direction = -1 if settings.warm_start else 1
    trials = [(result, index) for result in results for index in range(len(result.rows))]
    return sorted(trials, key=lambda pair: (pair[0].chain.stage, direction * pair[0].rows[pair[1]]["epsilon"],
                                            pair[0].chain.init_seed))


ALIGNMENT_KIND = "alignment"  # the ResultStore kind of finished alignments


def alignment_result_key(dataset_fingerprint: str, source_key: str, target_key: str, metric: str, normalise: bool,
                         settings: SearchSettings) -> str:
    """The stored alignment of one pair: the same items, representations (`Representation.key`), RDMs and search
    give the same key."""
    return result_key(ALIGNMENT_KIND, {"metric": metric, "normalise": bool(normalise), **asdict(settings)},
                      {"dataset": dataset_fingerprint, "source": source_key, "target": target_key})


def save_alignment(store: ResultStore, key: str, alignment: Alignment, meta: dict) -> None:
    """Keep a finished alignment: its (N, M) plan as NPY, its trials as a table, the selected row in the meta."""
    store.put(ALIGNMENT_KIND, key, {**meta, "selected": int(alignment.selected)},
              tables={"trials": alignment.trials}, arrays={"transport_plan": alignment.transport_plan})


def load_alignment(store: ResultStore, key: str) -> Alignment | None:
    """The stored alignment of `key`, or None."""
    stored = store.get(ALIGNMENT_KIND, key)
    if stored is None:
        return None
    return Alignment(np.asarray(stored.array("transport_plan")), stored.table("trials"), int(stored.meta["selected"]))
