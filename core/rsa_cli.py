"""`python -m core rsa --data D.npy --models M1.npy M2.npy`: model RDMs against per-subject data RDMs (§9).

Every data file adds its subjects (sessions averaged per subject); every model file holds one RDM and is named by its
file stem. The evaluation, noise ceiling and bootstrap are `core.analyses.rsa_inference.evaluate_rsa`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from core.analyses.rsa import METHODS, condensed
from core.analyses.rsa_inference import RsaEvaluation, evaluate_rsa
from core.data.neural import read_rdm_file
from core.data.tables import DatasetError
from core.progress import Progress

RESAMPLE_CHOICES = ("subjects", "stimuli", "both")


def add_rsa_parser(commands) -> None:
    """The `rsa` subcommand's arguments, on the CLI's subparsers."""
    parser = commands.add_parser("rsa", help="model RDMs against per-subject data RDMs: noise ceiling, bootstrap",
                                 description="Evaluate model RDMs against data RDMs (docs/science.md §9).")
    parser.add_argument("--data", nargs="+", type=Path, required=True, metavar="D.npy",
                        help="data RDM files: (S, N, N), (N, N), condensed (S, P) or (S, R, N, N) (sessions averaged "
                             "per subject); the subjects of all files are pooled")
    parser.add_argument("--models", nargs="+", type=Path, required=True, metavar="M.npy",
                        help="model RDM files, one RDM each ((N, N) or condensed (P,)), named by file stem")
    parser.add_argument("--method", default="corr", choices=METHODS, help="RDM comparator (default corr)")
    parser.add_argument("--bootstrap", type=int, default=0, help="bootstrap samples (default 0: none; 1000 usual)")
    parser.add_argument("--resample", default="both", choices=RESAMPLE_CHOICES,
                        help="what the bootstrap resamples (default both: the dual bootstrap)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap draws (default 0)")
    parser.add_argument("--json", action="store_true", help="print JSON, not a table")


def read_inputs(data_files: list[Path], model_files: list[Path]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Data (S, P) and models (M, P) condensed, model names; DatasetError naming the file for any bad input."""
    subjects, n_items = [], None
    for path in data_files:
        read = read_rdm_file(path, n_items, n_items_of=f"data file {data_files[0]}")
        if read.note:
            print(f"{path}: {read.note}", file=sys.stderr)
        n_items = read.rdms.shape[-1]
        subjects.append(condensed(read.rdms))
    models = []
    for path in model_files:
        read = read_rdm_file(path, n_items, n_items_of="the data")
        if len(read.rdms) != 1:
            raise DatasetError(f"RDM file {path} holds {len(read.rdms)} RDMs; a model file holds one.")
        models.append(condensed(read.rdms)[0])
    return np.concatenate(subjects), np.array(models), [path.stem for path in model_files]


def result_json(result: RsaEvaluation) -> dict:
    """The JSON record of an evaluation (NaN -> null)."""
    def number(x) -> float | None:
        return None if not np.isfinite(x) else float(x)

    models = [{"name": name, "mean": number(result.mean[k]), "per_subject": [number(x) for x in result.per_subject[k]],
               "ci_low": number(result.ci_low[k]), "ci_high": number(result.ci_high[k]),
               "p_vs_zero": number(result.p_vs_zero[k]), "p_vs_lower_ceiling": number(result.p_vs_lower_ceiling[k]),
               "ceiling_normalised_mean": number(result.ceiling_normalised[k])}
              for k, name in enumerate(result.model_names)]
    pairwise = [{"model_a": d.model_a, "model_b": d.model_b, "difference": number(d.difference),
                 "ci_low": number(d.ci_low), "ci_high": number(d.ci_high), "p": number(d.p), "p_fdr": number(d.p_fdr),
                 "p_bonferroni": number(d.p_bonferroni)} for d in result.pairwise]
    return {"method": result.method, "n_subjects": int(result.per_subject.shape[1]), "resample": result.resample,
            "n_bootstrap": result.n_bootstrap, "dof": result.dof,
            "noise_ceiling": {"lower": result.ceiling.lower, "upper": result.ceiling.upper},
            "models": models, "pairwise": pairwise, "warnings": list(result.warnings)}


def _progress(progress: Progress) -> None:
    print(f"\r{progress.message}: {progress.done}/{progress.total}", end="" if progress.done < progress.total else "\n",
          file=sys.stderr)


def run_rsa(args: argparse.Namespace) -> None:
    """Read and check the files, evaluate, print JSON or a table (warnings on stderr)."""
    if args.bootstrap < 0:
        raise ValueError(f"--bootstrap must be 0 or a number of samples such as 1000; got {args.bootstrap}")
    data, models, names = read_inputs(args.data, args.models)
    result = evaluate_rsa(models, data, args.method, names, n_bootstrap=args.bootstrap,
                          resample=args.resample, seed=args.seed,
                          progress=_progress if args.bootstrap and sys.stderr.isatty() else None)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(result_json(result), indent=1))
        return
    print(f"{result.method}, {data.shape[0]} subjects; noise ceiling lower {result.ceiling.lower:.4f} "
          f"upper {result.ceiling.upper:.4f}")
    width = max(len(n) for n in names)
    for k, name in enumerate(names):
        ci = f"[{result.ci_low[k]:.4f}, {result.ci_high[k]:.4f}]" if result.n_bootstrap else ""
        print(f"{name:<{width}}  {result.mean[k]:.4f} {ci}  p(>0) {result.p_vs_zero[k]:.3g}  "
              f"p(vs lower ceiling) {result.p_vs_lower_ceiling[k]:.3g}")
