"""Entropic Gromov-Wasserstein alignment of two RDMs (docs/science.md §5): the solver, trials, reports.

The solver is POT's projected-gradient entropic GW (square loss, uniform marginals), written
out here so that each Sinkhorn step is `sinkhorn_log` warm-started from the previous step's
dual potentials, and so the outer loop stops when the GW objective stops moving (relative
change < `tol` between steps) instead of when the plan changes by less than 1e-9. Both only
change how fast the same fixed point is reached. The ε search is in `core.analyses.gwot_search`:
every (epsilon, init) trial is kept; the selected trial is the valid one with the smallest GW distance WITHOUT the
entropy term (`ot.gromov.gwloss`), and every matching rate is that trial's, never the best
over trials (GWTune's protocol). Arrays are numpy or torch (on the GPU when there is one), both
through POT's backend; `rsa_vs_gwot` puts a source's RSA and GWOT results against several
targets in one table.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Callable, Mapping

import numpy as np
import ot
import pandas as pd

from core.analyses.matching import category_chance, category_matching_rate, matching_summary, per_category_matching
from core.analyses.rdm import rsa

INITS = ("random", "permutation", "uniform")
INIT_LABELS = {"random": "Random positive plan", "permutation": "Random permutation / N",
               "uniform": "Uniform (p qᵀ, one init)"}
SEARCHES = ("grid", "sequential")
BACKENDS = ("numpy", "torch")
MASS_TOLERANCE = 1e-5  # a trial whose plan's total mass is off by more is discarded (docs/science.md §5)
TIE_TOLERANCE = 1e-5  # relative; GW distances are float32 sums
# The Alignment page's ε range per RDM metric (docs/science.md §5): cosine/correlation RDMs live in [0, 2],
# euclidean human embeddings in the tens. Cosine/correlation from 1e-5: on the demo's known answer the
# GW distance still fell by 4% from ε 2e-4 to 1e-4 and plateaus (< 0.2%) near 1e-5.
DEFAULT_EPS = {"cosine": (1e-5, 1e-1), "correlation": (1e-5, 1e-1), "euclidean": (1.0, 10.0)}
# Relative: inits whose GW distances differ by less (with the same top-1) reached the same optimum as a user reads it.
# float32 solves of one optimum from different starts end ~1e-5 apart (the demo study: 1.5e-5 at every ε).
AGREEMENT_TOLERANCE = 1e-3
EDGE_PLATEAU = 0.01  # an edge ε improving the GW distance by less than this (relative) is a plateau, not an edge


@dataclass(frozen=True, eq=False)
class Alignment:
    """Every trial of an epsilon search and the selected trial's (N, M) transport plan."""
    transport_plan: np.ndarray  # (N, M) selected plan, float64, rows sum to 1/N
    trials: pd.DataFrame  # a row per trial: epsilon, init_seed, gw_distance, top1, seconds, iterations, converged, valid, note
    selected: int  # row of `trials` that was selected

    @property
    def epsilon(self) -> float:
        return float(self.trials.loc[self.selected, "epsilon"])

    @property
    def gw_distance(self) -> float:
        return float(self.trials.loc[self.selected, "gw_distance"])


@dataclass(frozen=True)
class SearchWarning:
    """Something about an alignment that misleads when read naively, and what to do about it."""
    kind: str  # epsilon_low_edge | epsilon_high_edge | category_below_chance | inits_agree
    message: str


def search_warnings(alignment: Alignment, categories: np.ndarray | None = None) -> tuple[SearchWarning, ...]:
    """Diagnose an alignment of N items ((N,) categories optional): ε at a grid edge, category rate below chance, identical inits."""
    trials, found = alignment.trials, []
    tried = np.sort(trials["epsilon"].unique())
    if len(tried) > 1 and alignment.epsilon in (tried[0], tried[-1]) and _still_improving(trials, alignment.epsilon):
        low = alignment.epsilon == tried[0]
        found.append(SearchWarning(
            "epsilon_low_edge" if low else "epsilon_high_edge",
            f"The selected ε ({alignment.epsilon:.3g}) is the {'smallest' if low else 'largest'} one tried and the GW "
            f"distance was still falling towards it, so the optimum may lie {'below' if low else 'above'} the range: "
            f"widen it ({'ε from' if low else 'ε to'} {alignment.epsilon / 10 if low else alignment.epsilon * 10:.0e}) "
            "and run again."))
    if categories is not None:
        rate, chance = category_matching_rate(alignment.transport_plan, categories), category_chance(categories)
        if rate < chance:
            found.append(SearchWarning(
                "category_below_chance",
                f"Category matching ({rate:.1%}) is below chance ({chance:.1%}): GWOT found a correspondence other "
                "than the true one, e.g. whole categories swapped for one another (the two RDMs' category blocks "
                "look alike). The rates describe that correspondence, not a failure to match anything. Compare the "
                "GW distance of other optima: untick Anneal ε and use several inits per ε."))
    valid = trials[trials["valid"]]
    per_epsilon = [group for _, group in valid.groupby("epsilon") if len(group) > 1]
    if per_epsilon and all(_same_optimum(group) for group in per_epsilon):
        found.append(SearchWarning(
            "inits_agree",
            f"All {valid['init_seed'].nunique()} inits reached the same GW distance and top-1 at every ε: the "
            "search explored a single optimum, so extra inits added nothing. With Anneal ε on, every init follows "
            "the same path from the largest ε; untick it to let the inits explore different optima."))
    return tuple(found)


def _still_improving(trials: pd.DataFrame, edge: float) -> bool:
    """Whether the best GW distance at the edge ε beats its neighbour ε's by more than EDGE_PLATEAU (relative).

    The GW distance without entropy keeps shrinking slightly as ε -> 0 (less blur in the plan), so the smallest ε
    is often selected although the optimum has plateaued; only a clear improvement says the range is too narrow.
    """
    best = trials[trials["valid"]].groupby("epsilon")["gw_distance"].min()
    if edge not in best.index or len(best) < 2:
        return True
    position = best.index.get_loc(edge)
    neighbour = best.iloc[1 if position == 0 else position - 1]
    return bool(neighbour - best[edge] > EDGE_PLATEAU * abs(best[edge]))


def _same_optimum(trials: pd.DataFrame) -> bool:
    distances = trials["gw_distance"].to_numpy(dtype=np.float64)
    spread = distances.max() - distances.min()
    return bool(spread <= AGREEMENT_TOLERANCE * max(np.abs(distances).max(), 1e-12) and trials["top1"].nunique() == 1)


def epsilon_grid(eps_range: tuple[float, float], n_eps: int) -> np.ndarray:
    """(n_eps,) log-spaced epsilons from eps_range[0] to eps_range[1]."""
    low, high = eps_range
    if not 0 < low <= high:
        raise ValueError(f"The epsilon range must be positive and increasing; got [{low}, {high}].")
    return np.geomspace(low, high, n_eps)


def initial_plan(n: int, m: int, init: str, seed: int) -> np.ndarray:
    """(n, m) initial plan with uniform marginals: random positive, random permutation / n, or p qᵀ."""
    p, q = ot.unif(n), ot.unif(m)
    rng = np.random.default_rng(seed)
    if init == "uniform":
        return np.outer(p, q)
    if init == "permutation":
        if n != m:
            raise ValueError("A permutation initial plan needs as many source as target items.")
        return np.eye(n)[rng.permutation(n)] / n
    if init == "random":
        # Sinkhorn with cost -log(R) and reg 1 is exactly the matrix scaling of R to the marginals.
        return ot.sinkhorn(p, q, -np.log(rng.uniform(1e-3, 1.0, size=(n, m))), 1.0, stopThr=1e-12)
    raise ValueError(f"Unknown initial plan {init!r}; choose one of {', '.join(INITS)}.")


@dataclass(frozen=True, eq=False)
class EntropicGW:
    """One entropic GW solve: the (N, M) plan and dual potentials stay in the inputs' backend."""
    plan: Any  # (N, M) transport plan
    gw_distance: float  # without the entropy term (ot.gromov.gwloss)
    iterations: int  # outer (mirror-descent) steps
    converged: bool  # the GW objective stopped moving before max_iter
    potentials: tuple  # ((N,), (M,)) Sinkhorn dual potentials, to warm-start the next solve


def entropic_gw(C1, C2, epsilon: float, plan, *, max_iter: int = 1000, tol: float = 1e-6,
                sinkhorn_iter: int = 1000, sinkhorn_tol: float = 1e-5, potentials=None) -> EntropicGW:
    """Entropic GW (square loss) of (N, N) C1 and (M, M) C2 from the (N, M) plan, in the arrays' backend.

    Each step is a mirror-descent step (POT's PGD solver): gradient, then the Sinkhorn projection of
    exp(-gradient / epsilon) onto the uniform marginals, warm-started from the previous step's dual
    potentials. Stops when the GW objective changes by less than `tol` (relative) between steps.
    `sinkhorn_tol` bounds the L1 error of the row marginals; the GW distance of a plan moves by
    ~that error x max(C)² (on THINGS euclidean RDMs, 1e-5 -> ~0.005 of a distance of ~15).
    """
    nx = ot.backend.get_backend(C1, C2, plan)
    p, q = ot.unif(len(C1), type_as=C1), ot.unif(len(C2), type_as=C2)
    constC, hC1, hC2 = ot.gromov.init_matrix(C1, C2, p, q, "square_loss", nx)
    previous, converged = None, False
    for iteration in range(1, max_iter + 1):
        gradient = ot.gromov.gwggrad(constC, hC1, hC2, plan, nx)
        # With the square loss the gradient is twice the tensor product, so the previous plan's
        # GW objective costs one elementwise product instead of two more (N, N) matrix products.
        loss = float(nx.sum(gradient * plan)) / 2
        if previous is not None and abs(previous - loss) <= tol * max(abs(loss), 1e-12):
            converged = True
            break
        previous = loss
        plan, potentials = log_stabilised_sinkhorn(gradient, epsilon, potentials, max_iter=sinkhorn_iter,
                                                   tol=sinkhorn_tol)
    return EntropicGW(plan, float(ot.gromov.gwloss(constC, hC1, hC2, plan, nx)), iteration, converged, potentials)


def log_stabilised_sinkhorn(cost, epsilon: float, potentials=None, *, max_iter: int = 1000, tol: float = 1e-5,
                            threshold: float = 1e3):
    """(N, M) entropic OT plan with uniform marginals for an (N, M) cost, and its dual potentials ((N,), (M,)).

    The fixed point of `ot.bregman.sinkhorn_log`, reached faster: one log-domain sweep puts the
    potentials in range (so a small epsilon cannot underflow), then scaling iterations run on the
    absorbed kernel exp((f + g - cost) / epsilon) with two matrix-vector products each, and the
    scalings are absorbed back into the log-domain potentials whenever they leave [1/threshold,
    threshold] (Schmitzer 2019). `tol` bounds the L1 error of the row marginals (total mass 1).
    """
    nx = ot.backend.get_backend(cost)
    n, m = cost.shape
    log_p, log_q = float(np.log(1 / n)), float(np.log(1 / m))
    f, g = (nx.zeros(n, type_as=cost), nx.zeros(m, type_as=cost)) if potentials is None else potentials
    iteration = 0
    while True:
        # Log-domain sweep: exact row marginals for f, exact column marginals for g.
        f = epsilon * (log_p - _logsumexp(nx, (g[None, :] - cost) / epsilon, axis=1))
        g = epsilon * (log_q - _logsumexp(nx, (f[:, None] - cost) / epsilon, axis=0))
        kernel = nx.exp((f[:, None] + g[None, :] - cost) / epsilon)
        u, v = nx.ones(n, type_as=cost), nx.ones(m, type_as=cost)
        while iteration < max_iter:
            iteration += 1
            row_mass = kernel @ v
            if float(nx.sum(nx.abs(u * row_mass - 1 / n))) <= tol:
                break
            next_u = (1 / n) / row_mass
            next_v = (1 / m) / (kernel.T @ next_u)
            if not _in_range(nx, next_u, threshold) or not _in_range(nx, next_v, threshold):
                break  # also catches inf and NaN: absorb what is good and sweep again in the log domain
            u, v = next_u, next_v
        f, g = f + epsilon * nx.log(u), g + epsilon * nx.log(v)
        if iteration >= max_iter or float(nx.sum(nx.abs(u * row_mass - 1 / n))) <= tol:
            return u[:, None] * kernel * v[None, :], (f, g)


def _in_range(nx, scaling, threshold: float) -> bool:
    low, high = float(nx.min(scaling)), float(nx.max(scaling))
    return 1 / threshold < low and high < threshold  # False for NaN


def _logsumexp(nx, values, axis: int):
    # POT's numpy logsumexp (scipy's) is ~6x slower than this on (1854, 1854) float32.
    top = nx.max(values, axis=axis, keepdims=True)
    top = nx.where(nx.isfinite(top), top, nx.zeros(top.shape, type_as=values))
    return nx.log(nx.sum(nx.exp(values - top), axis=axis)) + nx.reshape(top, (-1,))


@dataclass(frozen=True, eq=False)
class AlignmentReport:
    """What the Alignment page shows of one finished alignment of N items with categories."""
    alignment: Alignment
    rates: pd.DataFrame  # matching_summary: top-1/5/10 and category, rate and chance
    per_category: pd.DataFrame  # per_category_matching
    rsa: float  # Spearman correlation of the two RDMs: the supervised contrast
    warnings: tuple[SearchWarning, ...]


def alignment_report(alignment: Alignment, source_rdm: np.ndarray, target_rdm: np.ndarray,
                     categories: np.ndarray) -> AlignmentReport:
    """Rates, per-category rates, RSA and warnings of an alignment of (N, N) source_rdm to target_rdm."""
    return AlignmentReport(alignment, matching_summary(alignment.transport_plan, categories),
                           per_category_matching(alignment.transport_plan, categories), rsa(source_rdm, target_rdm),
                           search_warnings(alignment, categories))


def rsa_vs_gwot(source: str, source_rdm: np.ndarray, target_rdms: Mapping[str, np.ndarray],
                outcomes: Mapping[str, Alignment | str], categories: np.ndarray | None = None) -> pd.DataFrame:
    """A row per target of (N, N) RDMs: source, target, rsa, gwot, and epsilon, gw_distance and the rates once aligned.

    `outcomes[target]` is the target's finished Alignment, or the state of its search ("running", "not run", ...),
    which fills the gwot column; RSA needs the correspondence, GWOT finds it.
    """
    rows = []
    for target, target_rdm in target_rdms.items():
        outcome = outcomes.get(target, "not run")
        row = {"source": source, "target": target, "rsa": rsa(source_rdm, target_rdm)}
        if isinstance(outcome, Alignment):
            rates = matching_summary(outcome.transport_plan, categories).set_index("measure")["rate"]
            row.update(gwot="done", epsilon=outcome.epsilon, gw_distance=outcome.gw_distance, **rates.to_dict())
        else:
            row["gwot"] = outcome
        rows.append(row)
    return pd.DataFrame(rows)


def check_plan(plan: np.ndarray, distance: float) -> tuple[bool, str]:
    """(valid, reason) for an (N, M) plan: discard NaN and a total mass off by more than MASS_TOLERANCE."""
    if not (np.isfinite(plan).all() and np.isfinite(distance)):
        return False, "NaN in the plan"
    mass_error = abs(float(plan.sum(dtype=np.float64)) - 1.0)
    if mass_error > MASS_TOLERANCE:
        return False, f"mass error {mass_error:.1e}"
    return True, ""


def validate_rdms(C_source: np.ndarray, C_target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    source, target = (np.asarray(C, dtype=np.float32) for C in (C_source, C_target))
    for name, C in (("source", source), ("target", target)):
        if C.ndim != 2 or C.shape[0] != C.shape[1]:
            raise ValueError(f"The {name} RDM must be square (N, N); got shape {C.shape}.")
        if not np.isfinite(C).all():
            raise ValueError(f"The {name} RDM contains NaN or infinite values.")
    if len(source) != len(target):
        raise ValueError(f"Source ({len(source)} items) and target ({len(target)} items) must hold the same items "
                         "in the same order to measure matching rates.")
    return source, target


def backend_label(backend: str) -> str:
    """How the page names a backend: numpy, or torch with where it runs (GPU or CPU)."""
    if backend != "torch":
        return backend
    return f"torch ({'GPU' if _torch_float32()[1].is_cuda else 'CPU'})"


@cache  # a backend instance allocates random generators (on the GPU too): one per process, as POT keeps
def _torch_float32():
    """POT's torch backend and a float32 tensor on the device it computes on (a GPU when there is one)."""
    nx = ot.backend.TorchBackend()
    # POT lists one float32 and one float64 template tensor per device it found, CUDA after the CPU.
    return nx, max((t for t in nx.__type_list__ if t.element_size() == 4), key=lambda t: t.is_cuda)


def backend_converter(backend: str) -> Callable[[np.ndarray], object]:
    """float32 arrays in the chosen backend; torch runs on the GPU when there is one."""
    if backend == "numpy":
        return lambda array: np.asarray(array, dtype=np.float32)
    if backend == "torch":
        nx, template = _torch_float32()
        return lambda array: nx.from_numpy(np.asarray(array, dtype=np.float32), type_as=template)
    raise ValueError(f"Unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
