"""One CPU-bound study on three engines: the local engine with 1 BLAS thread, Ray with 2 workers, the local engine.

    python bench/study.py [--quick] [--concepts 200] [--n-eps 10] [--n-inits 2]
                          [--encoder untrained:timm:vit_tiny_patch16_224] [--overhead-calls 200] [--repeat 1]

The study is two study files run with `core.studies.run.run_study` (a study's steps all run on each of its
datasets, so the THINGS embeddings and the demo's images cannot share one file; their times are summed):
(1) an alignment step, THINGS Group1 -> Group3 human embeddings of the first `--concepts` concepts (an
`embeddings:` folder written to a temporary directory from ../shared/data, with the one-hot category CSV
cut to those rows), euclidean RDMs, a cold-start epsilon grid in GWTune's range for them, [1, 10], of
`--n-eps` x `--n-inits` trials (anneal = false: every trial is one independent engine task); (2) a layer
probe step (valence, arousal, category; gkfold) over every layer of an untrained ViT-Ti/16 (12 blocks +
final = 13 layers) on the procedural demo (384 images). Features are extracted once beforehand and are not
timed; each engine then starts from its own copy of that cache without `results/`, so it computes both
steps in full. (a) LocalEngine inside `threadpool_limits(1)`; (b) RayEngine(num_cpus=2), a local cluster
of 2 one-CPU workers, whose start-up (constructing the engine: `ray.init`) is timed apart; (c) LocalEngine
with the default BLAS threads. Checks that the three runs give the same numbers (alignment top-1 and GW
distance, probe curves). Reports the parallel efficiency time(a) / (2 x time(b)), Ray start-up excluded
and included (target >= 0.85 on this 2-core machine), Ray's per-task overhead (a trivial function mapped
`--overhead-calls` times, and again with the alignment's two RDMs as shared arguments), what a Ray worker's
first task pays to import the analysis modules (timed in a fresh process; inside time(b)), and the BLAS
threads Ray's workers run with. The machine is shared: other processes (not always visible to `ps`) slow
every run, a parallel one most, so the bench also prints the machine's own 2-process ceiling (a fixed
single-thread workload alone vs two copies at once, before and after the engines), and per run the share
of its wall time in which a runnable task waited for a CPU (/proc/pressure/cpu "some"); `--repeat N` runs
each engine N times in turn and keeps each one's fastest run.

Sizes: the issue asked for 600 concepts and ViT-B/16; on this 2-core machine a cold trial at 600 concepts
takes 35-55 s (20 trials: ~15 min per engine; 300 concepts: ~200 s per engine, 10 min in all) and ViT-B's
13-layer probes ~40 s at 1 thread, so the default is 200 concepts and ViT-Ti/16 (a few minutes in all).
`--quick` (a check that the bench runs, in well under a minute; its efficiency means little): a synthetic stand-in
for THINGS (40 concepts of a 90-d gamma embedding as Group1 and a noisy copy as Group3, 4 one-hot categories; used
whether or not ../shared/data exists), 2 x 1 = 2 trials, timm's 7-layer test_vit, 20 trivial Ray tasks and a
machine check of 5,000 steps instead of 100,000. Everything is written to a temporary folder, as always.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.analyses.gwot_search import load_alignment  # noqa: E402
from core.analyses.rdm import rdm  # noqa: E402
from core.data.datasets import load_dataset  # noqa: E402
from core.studies.engines import LocalEngine, RayEngine  # noqa: E402
from core.studies.run import STEP_KIND, extract_unit, extraction_plan, open_context, run_study  # noqa: E402
from core.studies.spec import load_study  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
THINGS = DATA / "gwtune" / "THINGS"
CATEGORY_FILE = "category_mat_manual_preprocessed.csv"
SOURCE, TARGET = "Group1", "Group3"
EPS_RANGE = (1.0, 10.0)  # GWTune's epsilon range for THINGS' euclidean human embeddings
FULL = {"concepts": 200, "n_eps": 10, "n_inits": 2, "encoder": "untrained:timm:vit_tiny_patch16_224"}
QUICK = {"concepts": 40, "n_eps": 2, "n_inits": 1, "encoder": "untrained:timm:test_vit"}
FIXED_STEPS, QUICK_FIXED_STEPS = 100_000, 5_000  # machine check: steps of `fixed_work`
QUICK_OVERHEAD_CALLS = 20
TARGET_EFFICIENCY = 0.85
CURVE_TOLERANCE = 1e-6  # probe scores: the same folds and solvers, only BLAS threads differ
GW_TOLERANCE = 1e-4  # relative GW distance of the selected trial (float32 Sinkhorn, BLAS threads differ)
PRESSURE = Path("/proc/pressure/cpu")
NAMES = {"a": "(a) local, BLAS 1 thread", "b": "(b) Ray, 2 workers x 1 CPU", "c": "(c) local, default threads"}
TASK_MODULES = ("core.analyses.gwot_search", "core.analyses.probes")  # what the study's tasks import in a worker

ALIGNMENT_TOML = """name = "bench-alignment"
datasets = ["embeddings:{folder}"]
encoders = ["pixels:32"]  # a study names an encoder; an embeddings dataset has no images, so nothing is extracted

[[steps]]
analysis = "alignment"
source = "human · {source}"
targets = ["human · {target}"]
metric = "euclidean"
eps_range = [{low}, {high}]
n_eps = {n_eps}
n_inits = {n_inits}
anneal = false
backend = "numpy"
"""
PROBES_TOML = """name = "bench-probes"
datasets = ["demo"]
encoders = ["{encoder}"]

[[steps]]
analysis = "probes"
scheme = "gkfold"
category_scheme = "gkfold"
"""


def nothing(index: int) -> int:
    """A trivial task: what an engine costs per call."""
    return index


def touch(index: int, C_source: np.ndarray, C_target: np.ndarray) -> float:
    """A trivial task reading the shared RDMs: per-call cost of shared arguments from Ray's object store."""
    return float(C_source[0, -1] + C_target[-1, 0]) + index


def fixed_work(index: int, steps: int = FIXED_STEPS) -> float:
    """Seconds of a fixed single-thread workload like a Sinkhorn loop (float32 matrix-vector products, exp)."""
    with threadpool_limits(limits=1):
        kernel = np.random.default_rng(index).random((300, 300), dtype=np.float32)
        vector = np.ones(300, np.float32)
        began = time.perf_counter()
        for step in range(steps):
            vector = kernel @ vector
            vector /= vector.max()
            if step % 40 == 0:
                vector += np.exp(-kernel).sum(axis=0) * 1e-9
        return time.perf_counter() - began


def machine_ceiling(steps: int = FIXED_STEPS) -> str:
    """The machine's own 2-process efficiency: `fixed_work` alone, then two copies at once (forked processes)."""
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        alone = pool.starmap(fixed_work, [(0, steps)])[0]
    with context.Pool(2) as pool:
        both = pool.starmap(fixed_work, [(0, steps), (1, steps)], chunksize=1)
    return (f"{alone:.2f} s alone, {both[0]:.2f} s and {both[1]:.2f} s as two at once: 2-process ceiling "
            f"{alone / max(both):.2f}")


def cpu_stall() -> float | None:
    """Seconds since boot in which some runnable task waited for a CPU (Linux PSI), or None where not offered."""
    try:
        return float(PRESSURE.read_text().splitlines()[0].rpartition("total=")[2]) / 1e6
    except (OSError, IndexError, ValueError):
        return None


def import_seconds() -> float:
    """What a fresh Python process (numpy already imported) spends importing the modules the study's tasks live in."""
    code = (f"import time, numpy; began = time.perf_counter(); import {', '.join(TASK_MODULES)}; "
            "print(time.perf_counter() - began)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def blas_threads() -> str:
    """This process's BLAS libraries and thread counts, and OMP_NUM_THREADS."""
    libraries = [f"{info['prefix']}={info['num_threads']}" for info in threadpool_info() if info["user_api"] == "blas"]
    return f"{', '.join(libraries)}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"


def write_things(folder: Path, concepts: int) -> None:
    """An embeddings: folder of the first `concepts` rows of Group1 and Group3 and the category CSV cut to them."""
    folder.mkdir(parents=True)
    for group in (SOURCE, TARGET):
        np.save(folder / f"{group}.npy", np.load(THINGS / f"THINGS_embedding_{group}.npy")[0][:concepts])
    lines = (THINGS / CATEGORY_FILE).read_text().splitlines()
    (folder / "categories.csv").write_text("\n".join(lines[:concepts + 1]) + "\n")


def write_synthetic(folder: Path, concepts: int) -> None:
    """--quick's stand-in for `write_things`: a (concepts, 90) gamma embedding as Group1, a noisy copy of it as Group3,
    and a one-hot category CSV of 4 categories, so the bench runs where ../shared/data is absent."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    first = rng.gamma(1.0, 1.0, size=(concepts, 90)).astype(np.float32)
    np.save(folder / f"{SOURCE}.npy", first)
    np.save(folder / f"{TARGET}.npy", first + rng.normal(0, 0.3, size=first.shape).astype(np.float32))
    names = [f"category_{index}" for index in range(4)]
    rows = [",".join(["", *names])] + [",".join([f"concept_{item:04d}", *("1" if item % 4 == index else "0"
                                                                         for index in range(4))])
                                       for item in range(concepts)]
    (folder / "categories.csv").write_text("\n".join(rows) + "\n")


def extract_all(study, cache: Path) -> float:
    """Every feature array the study needs, extracted with the local engine (not timed in the comparison)."""
    context = open_context(study, cache)
    began = time.perf_counter()
    for unit in extraction_plan(study, context):
        if not all(context.features.has(key) for key in unit.keys.values()):
            extract_unit(unit, context, LocalEngine(), device=study.device, batch_size=study.batch_size,
                         report=lambda progress: None)
    return time.perf_counter() - began


def fresh_cache(base: Path, cache: Path) -> None:
    """A copy of `base` (demo images with their mtimes, features) without `results/`: no step is stored."""
    shutil.copytree(base, cache, ignore=lambda folder, names: ["results"] if Path(folder) == base else [])


def run_engine(engine, cache: Path, files: dict[str, Path]) -> dict:
    """Both study files on `engine` from `cache`: seconds per file, and what they computed."""
    run = {"seconds": {}}
    stall, cpu, wall = cpu_stall(), time.process_time(), time.perf_counter()
    for part, path in files.items():
        study = load_study(path, cache)
        context = open_context(study, cache)
        missing = [unit.label for unit in extraction_plan(study, context)
                   if not all(context.features.has(key) for key in unit.keys.values())]
        if missing:
            raise RuntimeError(f"{cache}: features missing ({'; '.join(missing)}); extraction would be timed.")
        began = time.perf_counter()
        statuses = run_study(study, cache, engine)
        run["seconds"][part] = time.perf_counter() - began
        failed = [f"{status.step.label}: {status.error}" for status in statuses if status.state != "done"]
        if failed:
            raise RuntimeError(f"{engine.name}: {'; '.join(failed)}")
        stored = context.results.get(STEP_KIND, statuses[0].key)
        if part == "GWOT search":
            matching = stored.table("matching")
            run["matching"] = matching
            run["trials"] = load_alignment(context.results, matching["alignment_key"].iloc[0]).trials
        else:
            run["curves"] = stored.table("curves")
    run["seconds"]["total"] = sum(run["seconds"].values())
    wall = time.perf_counter() - wall
    run["driver_cpu"] = (time.process_time() - cpu) / wall
    run["stall"] = None if stall is None else (cpu_stall() - stall) / wall
    return run


def run_ray(cache: Path, files: dict[str, Path], overhead_calls: int, numbers: dict[str, list]) -> dict:
    """Both study files on a fresh local Ray cluster of 2 one-CPU workers; start-up and per-task costs to `numbers`."""
    began = time.perf_counter()
    engine = RayEngine(num_cpus=2)
    numbers["startup"].append(time.perf_counter() - began)
    try:
        run = run_engine(engine, cache, files)
        numbers["worker_blas"] += engine.map(blas_threads, [{} for _ in range(4)])
        engine.map(nothing, [{"index": index} for index in range(4)])  # warm
        began = time.perf_counter()
        engine.map(nothing, [{"index": index} for index in range(overhead_calls)])
        numbers["per_task"].append((time.perf_counter() - began) / overhead_calls)
        study = load_study(files["GWOT search"], cache)
        references = study.image_sets[study.datasets[0]].references
        embedding = {reference.name: reference.embedding for reference in references}
        shared = {"C_source": rdm(embedding[SOURCE], "euclidean").astype(np.float32),
                  "C_target": rdm(embedding[TARGET], "euclidean").astype(np.float32)}
        engine.map(touch, [{"index": index} for index in range(4)], shared=shared)  # warm
        began = time.perf_counter()
        engine.map(touch, [{"index": index} for index in range(overhead_calls)], shared=shared)
        numbers["per_shared_task"].append((time.perf_counter() - began) / overhead_calls)
    finally:
        engine.close()
    return run


def agreement(reference: dict, others: dict[str, dict]) -> tuple[bool, list[str]]:
    """Whether the other runs computed what `reference` did: selected epsilon, top-1, GW distance, probe scores."""
    lines, agree = [], True
    for name, run in others.items():
        first, other = reference["matching"].iloc[0], run["matching"].iloc[0]
        same_eps = np.isclose(first["epsilon"], other["epsilon"], rtol=1e-9)
        gw = abs(first["gw_distance"] - other["gw_distance"]) / abs(first["gw_distance"])
        top1 = abs(first["top-1"] - other["top-1"])
        curves = reference["curves"].merge(run["curves"], on=["layer", "probe"], suffixes=("", "_other"))
        complete = len(curves) == len(reference["curves"]) == len(run["curves"])
        score_diff = float(np.nanmax(np.abs(curves["score"] - curves["score_other"]))) if len(curves) else np.inf
        ok = bool(same_eps and top1 == 0 and gw <= GW_TOLERANCE and complete and score_diff <= CURVE_TOLERANCE)
        agree &= ok
        lines.append(f"  {name} vs (a): selected eps {other['epsilon']:.4g} vs {first['epsilon']:.4g}, |top-1 diff| "
                     f"{top1:.2e}, GW rel diff {gw:.1e}, probe scores {len(curves)}/{len(reference['curves'])} "
                     f"max |diff| {score_diff:.1e}: {'same' if ok else 'DIFFERENT'}")
    return agree, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="40 synthetic concepts, 2 trials, a 7-layer model")
    parser.add_argument("--concepts", type=int, help=f"THINGS concepts (first N of 1854; default {FULL['concepts']})")
    parser.add_argument("--n-eps", type=int, help=f"epsilons of the grid (default {FULL['n_eps']})")
    parser.add_argument("--n-inits", type=int, help=f"random initial plans per epsilon (default {FULL['n_inits']})")
    parser.add_argument("--encoder", help=f"offline encoder of the probe step (default {FULL['encoder']})")
    parser.add_argument("--overhead-calls", type=int, default=None,
                        help=f"trivial Ray tasks timed for the overhead (default 200, quick {QUICK_OVERHEAD_CALLS})")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each engine, in turn; the fastest counts (a shared machine only slows runs down)")
    args = parser.parse_args()
    args.overhead_calls = args.overhead_calls or (QUICK_OVERHEAD_CALLS if args.quick else 200)
    steps = QUICK_FIXED_STEPS if args.quick else FIXED_STEPS
    if not args.quick and not THINGS.is_dir():
        print(f"THINGS embeddings not found at {THINGS}; this benchmark needs ../shared/data. Skipped.")
        return
    sizes = dict(QUICK if args.quick else FULL)
    sizes.update({key: value for key, value in (("concepts", args.concepts), ("n_eps", args.n_eps),
                                                ("n_inits", args.n_inits), ("encoder", args.encoder))
                  if value is not None})
    if not 2 <= sizes["concepts"] <= 1854:
        sys.exit(f"--concepts must be between 2 and 1854; got {sizes['concepts']}.")
    trials = sizes["n_eps"] * sizes["n_inits"]
    print(f"{'QUICK: synthetic stand-in for ' if args.quick else ''}THINGS {SOURCE} -> {TARGET}, "
          f"first {sizes['concepts']} concepts "
          f"(the issue's 600 take ~15 min per engine here: reduced), euclidean, {sizes['n_eps']} x "
          f"{sizes['n_inits']} = "
          f"{trials} cold trials, eps in [{EPS_RANGE[0]:g}, {EPS_RANGE[1]:g}]; probes of every layer of "
          f"{sizes['encoder']} on the demo (384 images)", flush=True)
    print(f"CPUs: {os.cpu_count()}; load average (1, 5, 15 min) before: "
          + ", ".join(f"{load:.2f}" for load in os.getloadavg()))
    for info in threadpool_info():
        if info["user_api"] == "blas":
            print(f"BLAS: {info['internal_api']} {info.get('version')} ({info.get('architecture')}, "
                  f"{info.get('threading_layer')}), {info['num_threads']} threads by default: {info['filepath']}")
    coretype = {name: os.environ[name] for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if name in os.environ}
    print(f"OpenBLAS overrides in the environment: {coretype or 'none'}", flush=True)
    ceiling_before = machine_ceiling(steps)
    print(f"machine check before: {ceiling_before}", flush=True)

    root = Path(tempfile.mkdtemp(prefix="bench-study-"))
    try:
        things, base = root / "things", root / "base"
        (write_synthetic if args.quick else write_things)(things, sizes["concepts"])
        references = [reference.name for reference in load_dataset(f"embeddings:{things}", base).references]
        if sorted(references) != sorted([SOURCE, TARGET]):
            sys.exit(f"the embeddings folder holds {references}, not {SOURCE} and {TARGET}.")
        files = {"GWOT search": root / "alignment.toml", "probe curves": root / "probes.toml"}
        files["GWOT search"].write_text(ALIGNMENT_TOML.format(folder=things, source=SOURCE, target=TARGET,
                                                            low=EPS_RANGE[0], high=EPS_RANGE[1], n_eps=sizes["n_eps"],
                                                            n_inits=sizes["n_inits"]))
        files["probe curves"].write_text(PROBES_TOML.format(encoder=sizes["encoder"]))
        probes_study = load_study(files["probe curves"], base)  # writes the demo images under base/demo
        layers = len(next(iter(probes_study.steps)).layers[probes_study.encoders[0]])
        seconds = extract_all(probes_study, base)
        print(f"setup (not timed): {layers} layers of {sizes['encoder']} extracted in {seconds:.1f} s", flush=True)

        trials_by_engine: dict[str, list[dict]] = {"a": [], "b": [], "c": []}
        ray_numbers: dict[str, list] = {"startup": [], "per_task": [], "per_shared_task": [], "worker_blas": []}
        for repeat in range(args.repeat):
            for name in ("a", "b", "c"):
                cache = root / f"{name}{repeat}"
                fresh_cache(base, cache)
                if name == "a":
                    with threadpool_limits(limits=1):
                        run = run_engine(LocalEngine(), cache, files)
                elif name == "b":
                    run = run_ray(cache, files, args.overhead_calls, ray_numbers)
                else:
                    run = run_engine(LocalEngine(), cache, files)
                trials_by_engine[name].append(run)
                shutil.rmtree(cache, ignore_errors=True)
                extra = f" (+ {ray_numbers['startup'][-1]:.1f} s start-up)" if name == "b" else ""
                print(f"{NAMES[name]}: {run['seconds']['total']:.1f} s{extra}", flush=True)
        # Other processes only ever slow a run down: each engine's fastest run counts (its numbers are checked).
        runs = {name: min(found, key=lambda run: run["seconds"]["total"]) for name, found in trials_by_engine.items()}
        startup, per_task = min(ray_numbers["startup"]), min(ray_numbers["per_task"])
        per_shared_task, worker_blas = min(ray_numbers["per_shared_task"]), sorted(set(ray_numbers["worker_blas"]))
        runs_a = trials_by_engine["a"]
        agree, lines = agreement(runs_a[0], {f"({name}){f' run {index + 1}' if args.repeat > 1 else ''}": run
                                             for name, found in trials_by_engine.items() for index, run in
                                             enumerate(found) if (name, index) != ("a", 0)})
        warm_up = import_seconds()
        ceiling_after = machine_ceiling(steps)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"\nfastest of {args.repeat} runs of each engine:" if args.repeat > 1 else "")
    print(f"{'engine':28s}{'alignment':>11s}{'probes':>9s}{'total':>9s}  trial-s sum  CPU stall  driver CPU  top-1   "
          "selected eps")
    for name, run in runs.items():
        times, best = run["seconds"], run["matching"].iloc[0]
        stall = "n/a" if run["stall"] is None else f"{run['stall']:.0%}"
        print(f"{NAMES[name]:28s}{times['GWOT search']:10.1f}s{times['probe curves']:8.1f}s{times['total']:8.1f}s  "
              f"{run['trials']['seconds'].sum():9.1f} s  {stall:>9s}  {run['driver_cpu']:10.2f}  {best['top-1']:6.4f}  "
              f"{best['epsilon']:.4g}")
    print(f"{'(b) with Ray start-up':28s}{'':20s}{runs['b']['seconds']['total'] + startup:8.1f}s")
    print("same numbers on every engine:" if agree else "ENGINES DISAGREE:")
    print("\n".join(lines))
    time_a, time_b = runs["a"]["seconds"]["total"], runs["b"]["seconds"]["total"]
    efficiency, with_startup = time_a / (2 * time_b), time_a / (2 * (time_b + startup))
    print(f"parallel efficiency time(a) / (2 × time(b)) = {efficiency:.2f} (target ≥ {TARGET_EFFICIENCY}: "
          f"{'met' if efficiency >= TARGET_EFFICIENCY else 'MISSED'}), Ray start-up excluded; "
          f"{with_startup:.2f} with it")
    for part in files:
        part_efficiency = runs["a"]["seconds"][part] / (2 * runs["b"]["seconds"][part])
        print(f"  {part}: {part_efficiency:.2f}")
    print(f"Ray start-up: {startup:.1f} s (ray.init); each worker's first task also imports "
          f"{', '.join(TASK_MODULES)}: {warm_up:.1f} s in a fresh process, inside time(b)")
    print(f"Ray per-task overhead: {per_task * 1000:.1f} ms ({args.overhead_calls} trivial tasks on 2 workers; "
          f"{per_shared_task * 1000:.1f} ms with the two {sizes['concepts']}² RDMs as shared arguments)")
    print(f"BLAS in Ray workers: {'; '.join(worker_blas)}")
    print(f"machine check after: {ceiling_after}")
    print("load average (1, 5, 15 min) after: " + ", ".join(f"{load:.2f}" for load in os.getloadavg()))
    print("trial-s sum: the alignment's trial seconds added up (CPU work, whichever process ran it); CPU stall: "
          "share of the run's wall time in which a runnable task waited for a CPU; driver CPU: this process's CPU "
          "seconds per wall second")
    if not agree:
        sys.exit(1)


if __name__ == "__main__":
    main()
