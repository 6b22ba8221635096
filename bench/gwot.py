"""Epsilon search speed on real data: ours vs POT's stock entropic GW, THINGS Group1 -> Group2.

    python bench/gwot.py [--quick] [--n-eps 10] [--eps-range 1 10] [--cold] [--cap 600]

Both searches use the same euclidean RDMs of the two groups' 1854 x 90 human similarity
embeddings, the same epsilons and one init each (the same random positive plan, seed 0),
and are scored the same way: every trial's plan is checked (NaN, mass error > 1e-5), the
valid trial with the smallest GW distance without entropy is selected, and its top-1
matching rate is reported. (a) ours: `core.analyses.gwot_search.align` (float32, log-stabilised Sinkhorn
warm-started from the previous step, early stop on the GW objective, epsilons annealed from
large to small; `--cold` starts every epsilon from the initial plan instead). (b) POT:
`ot.gromov.entropic_gromov_wasserstein` per epsilon with default settings on the float64
RDMs; each POT trial runs in a child process and is stopped after `--cap` seconds (POT's
defaults allow 1000 outer x 1000 Sinkhorn iterations), which then counts as the cap, so the
printed ratio is a lower bound. Target: (b) / (a) >= 3 at equal or better selected top-1.

`--quick` (a check that the bench runs, in seconds; its ratio means little): a synthetic pair instead of THINGS
(whether or not ../shared/data exists), N = 60 (a 90-d gamma embedding and a noisy copy, as bench/gpu_check.py),
2 epsilons, a 60 s cap. Nothing is written to disk.
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import ot

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.analyses.gwot import check_plan, epsilon_grid, initial_plan  # noqa: E402
from core.analyses.gwot_search import align  # noqa: E402
from core.analyses.matching import top_k_matching_rate  # noqa: E402
from core.analyses.rdm import rdm  # noqa: E402
from core.progress import Progress  # noqa: E402

THINGS = Path(__file__).resolve().parents[2] / "shared" / "data" / "gwtune" / "THINGS"


def stock_trial(C1: np.ndarray, C2: np.ndarray, epsilon: float, start_plan: np.ndarray, pipe) -> None:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        plan, log = ot.gromov.entropic_gromov_wasserstein(C1, C2, epsilon=epsilon, G0=start_plan, log=True)
    valid, note = check_plan(plan, float(log["gw_dist"]))
    pipe.send({"gw_distance": float(log["gw_dist"]), "valid": valid, "note": note,
               "top1": top_k_matching_rate(plan, 1)})


def stock_search(C1: np.ndarray, C2: np.ndarray, epsilons: np.ndarray, cap_s: float) -> tuple[float, list[dict]]:
    """POT per epsilon, each in a child process stopped after `cap_s` seconds (then counted as cap_s)."""
    started, trials = time.perf_counter(), []
    start_plan = initial_plan(len(C1), len(C2), "random", 0)
    context = multiprocessing.get_context("fork")
    for epsilon in epsilons:
        began = time.perf_counter()
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(target=stock_trial, args=(C1, C2, float(epsilon), start_plan, sender))
        child.start()
        trial = receiver.recv() if receiver.poll(cap_s) else None
        child.join(1)
        if child.is_alive():
            child.kill()
            child.join()
        if trial is None:
            trial = {"gw_distance": np.nan, "valid": False, "note": f"not finished after the {cap_s:.0f} s cap",
                     "top1": np.nan}
        trials.append({"epsilon": float(epsilon), "seconds": time.perf_counter() - began, **trial})
        report("POT", trials[-1])
    return time.perf_counter() - started, trials


def report(name: str, trial: dict) -> None:
    status = "ok" if trial["valid"] else f"discarded: {trial['note']}"
    print(f"  {name:4s} eps={trial['epsilon']:7.3f}  {trial['seconds']:6.1f} s  GW={trial['gw_distance']:9.4f}  "
          f"top-1={trial['top1']:.4f}  {status}", flush=True)


def selected(trials: list[dict]) -> dict | None:
    valid = [trial for trial in trials if trial["valid"]]
    return min(valid, key=lambda trial: trial["gw_distance"]) if valid else None


QUICK_N = 60


def synthetic_embeddings(n: int) -> list[np.ndarray]:
    """A (n, 90) gamma embedding and a noisy copy of it (bench/gpu_check.py's stand-in for THINGS)."""
    rng = np.random.default_rng(0)
    first = rng.gamma(1.0, 1.0, size=(n, 90)).astype(np.float32)
    return [first, first + rng.normal(0, 0.3, size=first.shape).astype(np.float32)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"a synthetic pair of N = {QUICK_N}, 2 epsilons: checks that the bench runs")
    parser.add_argument("--n-eps", type=int, default=None, help="default 10 (quick 2)")
    parser.add_argument("--eps-range", type=float, nargs=2, default=(1.0, 10.0))
    parser.add_argument("--cold", action="store_true", help="ours without annealing across epsilons")
    parser.add_argument("--cap", type=float, default=None,
                        help="seconds after which a POT trial is stopped and counted as taking the cap "
                             "(default 600, quick 60)")
    args = parser.parse_args()
    args.n_eps, args.cap = args.n_eps or (2 if args.quick else 10), args.cap or (60.0 if args.quick else 600.0)
    if args.quick:
        embeddings, source = synthetic_embeddings(QUICK_N), "QUICK: synthetic 90-d embedding -> a noisy copy"
    elif not THINGS.is_dir():
        sys.exit(f"THINGS embeddings not found at {THINGS}; this benchmark needs ../shared/data.")
    else:
        embeddings = [np.load(THINGS / f"THINGS_embedding_Group{group}.npy")[0] for group in (1, 2)]
        source = "THINGS Group1 -> Group2"
    C1, C2 = (rdm(embedding, "euclidean") for embedding in embeddings)
    epsilons = epsilon_grid(tuple(args.eps_range), args.n_eps)
    print(f"{source}, N = {len(C1)}, euclidean RDMs, {args.n_eps} epsilons in "
          f"[{args.eps_range[0]:g}, {args.eps_range[1]:g}], one init (random plan, seed 0)", flush=True)

    print("(a) ours")
    started = time.perf_counter()

    def show(progress: Progress) -> None:
        print(f"  ours {progress.done}/{progress.total}  {time.perf_counter() - started:6.1f} s so far  "
              f"{progress.message}", flush=True)

    ours = align(C1, C2, eps_range=tuple(args.eps_range), n_eps=args.n_eps, n_inits=1, warm_start=not args.cold,
                 progress=show)
    ours_seconds = time.perf_counter() - started
    ours_best = ours.trials.loc[ours.selected].to_dict()

    print("(b) POT entropic_gromov_wasserstein, default settings")
    stock_seconds, stock_trials = stock_search(C1.astype(np.float64), C2.astype(np.float64), epsilons, args.cap)
    stock_best = selected(stock_trials)

    print(f"\n{'':6s}{'total':>9s}  {'selected eps':>12s}  {'top-1':>6s}  valid trials")
    print(f"ours  {ours_seconds:8.1f}s  {ours_best['epsilon']:12.3f}  {ours_best['top1']:6.4f}  "
          f"{int(ours.trials['valid'].sum())}/{len(ours.trials)}")
    if stock_best is None:
        print(f"POT   {stock_seconds:8.1f}s  {'none':>12s}  {'-':>6s}  0/{len(stock_trials)}")
    else:
        print(f"POT   {stock_seconds:8.1f}s  {stock_best['epsilon']:12.3f}  {stock_best['top1']:6.4f}  "
              f"{sum(trial['valid'] for trial in stock_trials)}/{len(stock_trials)}")
    capped = sum(trial["note"].startswith("not finished") for trial in stock_trials)
    bound = f" (a lower bound: {capped} POT trial(s) hit the {args.cap:.0f} s cap)" if capped else ""
    print(f"speed-up POT / ours: {stock_seconds / ours_seconds:.1f}x{bound}; target >= 3x at equal or better top-1")


if __name__ == "__main__":
    main()
