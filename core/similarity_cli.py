"""`python -m core similarity A.npy B.npy ...`: every measure for every pair of feature files (docs/science.md §8).

Each file is an (N, d) matrix of the same N items in the same order: .npy ((N, d) or GWTune's (1, N, d)), whitespace
.txt or numeric .csv (a CSV whose first column is text is read as item ids, checked across files). All files go
into one `compare` call, so each is prepared once and every bootstrap resample is shared by all pairs.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from core.analyses.rdm import RDM_METRICS, is_rdm, load_matrix
from core.analyses.similarity import (MEASURES, RDM_MEASURES, SimilarityMatrix, SimilaritySettings, compare,
                                      validate_features)
from core.data.tables import DatasetError, listing
from core.progress import Progress

DEFAULT_MEASURES = ("rsa_spearman", "cka_linear", "cka_rbf", "cka_debiased", "procrustes", "mutual_knn", "cknna")
COSINE_MEASURES = ("mutual_knn", "cknna")  # neighbours by cosine: undefined for an all-zero row


def add_similarity_parser(commands) -> None:
    """The `similarity` subcommand's arguments, on the CLI's subparsers."""
    parser = commands.add_parser("similarity", help="similarity measures between every pair of (N, d) feature files",
                                 description="Every measure for every pair of representations of the same N items "
                                             "(docs/science.md §8).")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE",
                        help="two or more (N, d) matrices of the same items in the same order: .npy (also (1, N, d)), "
                             "whitespace .txt or numeric .csv; each is named by its file stem")
    parser.add_argument("--measure", default=",".join(DEFAULT_MEASURES),
                        help=f"comma-separated measures from {', '.join(MEASURES)} "
                             f"(default: {','.join(DEFAULT_MEASURES)})")
    parser.add_argument("--k", type=int, default=SimilaritySettings.k,
                        help=f"neighbours for mutual_knn and cknna (default {SimilaritySettings.k})")
    parser.add_argument("--rdm-metric", default=SimilaritySettings.rdm_metric, choices=RDM_METRICS,
                        help=f"dissimilarity of the RSA measures' RDMs (default {SimilaritySettings.rdm_metric})")
    parser.add_argument("--rbf-sigma", type=float, default=SimilaritySettings.rbf_sigma,
                        help="cka_rbf: sigma as a fraction of the median pairwise distance "
                             f"(default {SimilaritySettings.rbf_sigma})")
    parser.add_argument("--bootstrap", type=int, default=0,
                        help="resamples of the items for 95%% percentile CIs, shared by all pairs (default 0: none; "
                             "1000 is the usual choice)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples (default 0)")
    parser.add_argument("--json", action="store_true", help="print JSON (one record per pair and measure), not a table")


def run_similarity(args: argparse.Namespace) -> None:
    """Read the files, compare them all in one call, print the pairs (warnings on stderr)."""
    measures = parse_measures(args.measure)
    if len(args.files) < 2:
        raise DatasetError(f"similarity needs at least 2 files; got {len(args.files)} ({args.files[0]}). "
                           "Give two or more feature files of the same items.")
    if args.bootstrap < 0:
        raise DatasetError(f"--bootstrap must be 0 (no CIs) or a number of resamples such as 1000; "
                           f"got {args.bootstrap}.")
    settings = SimilaritySettings(rdm_metric=args.rdm_metric, k=args.k, rbf_sigma=args.rbf_sigma)
    names = representation_names(args.files)
    arrays = read_representations(args.files, measures, settings)
    representations = dict(zip(names, arrays))
    # Rows all but the last, columns all but the first: every pair i < j is a cell, and the diagonal (each file vs
    # itself, known) is mostly not computed; a name in both is one representation, prepared once.
    matrix = compare({name: representations[name] for name in names[:-1]},
                     {name: representations[name] for name in names[1:]}, measures=measures, settings=settings,
                     n_bootstrap=args.bootstrap, seed=args.seed,
                     progress=_progress if args.bootstrap and sys.stderr.isatty() else None)
    for warning in matrix.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    records = pair_records(matrix, names)
    if args.json:
        print(json.dumps({"files": {name: str(path) for name, path in zip(names, args.files)},
                          "n_items": matrix.n_items, "settings": asdict(matrix.settings),
                          "n_bootstrap": matrix.n_bootstrap, "seed": matrix.seed, "pairs": records,
                          "warnings": list(matrix.warnings)}, indent=1))
    else:
        print(pairs_table(records, matrix))


def parse_measures(text: str) -> tuple[str, ...]:
    """'a,b' -> ('a', 'b'), every name checked against MEASURES."""
    measures = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in measures if name not in MEASURES]
    if unknown or not measures:
        raise DatasetError(f"--measure: unknown measure(s) {', '.join(unknown) or '(none given)'}; choose from "
                           f"{', '.join(MEASURES)}.")
    return measures


def representation_names(paths: list[Path]) -> list[str]:
    """File stems; stems shared by several files get their folder ('a/x'), then their position ('x#2')."""
    stems = [path.stem for path in paths]
    names = [stem if stems.count(stem) == 1 else f"{path.parent.name}/{stem}" for stem, path in zip(stems, paths)]
    return [name if names.count(name) == 1 else f"{stem}#{index + 1}"
            for index, (name, stem) in enumerate(zip(names, stems))]


def read_representations(paths: list[Path], measures, settings: SimilaritySettings) -> list[np.ndarray]:
    """Each file as an (N, d) float64 matrix, with one error naming the file and what to fix."""
    arrays, ids = [], {}
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise DatasetError(f"cannot read {path} ({error.strerror or error}); check the path.") from error
        matrix, item_ids = load_matrix(data, str(path))
        matrix = validate_features(matrix, str(path))
        _check_degenerate(matrix, path, measures, settings)
        if is_rdm(matrix):
            print(f"warning: {path} looks like an N x N RDM; its rows are used as features. Give the (N, d) "
                  "features instead for the measures as defined.", file=sys.stderr)
        arrays.append(matrix)
        if item_ids is not None:
            ids[path] = list(map(str, item_ids))
    if len({len(array) for array in arrays}) > 1:
        raise DatasetError("the files describe different numbers of items: "
                           + ", ".join(f"{path} N = {len(array)}" for path, array in zip(paths, arrays))
                           + "; give every file one row per item, the same items in the same order.")
    first_path, first_ids = next(iter(ids.items()), (None, None))
    for path, item_ids in ids.items():
        if item_ids != first_ids:
            row = next(index for index, (a, b) in enumerate(zip(first_ids, item_ids)) if a != b)
            raise DatasetError(f"{path} lists its items in another order than {first_path} (row {row + 1}: "
                               f"{item_ids[row]!r} vs {first_ids[row]!r}); sort both files by item id.")
    return arrays


def _check_degenerate(matrix: np.ndarray, path: Path, measures, settings: SimilaritySettings) -> None:
    """Raise naming the file when it is constant over the items, or has rows the chosen measures cannot use."""
    if matrix.shape[1] == 0 or (matrix == matrix[0]).all():
        raise DatasetError(f"file {path} is constant over the items (every row is the same), so no similarity is "
                           "defined; check that it holds one row of features per item.")
    zero_rows = np.flatnonzero(~matrix.any(axis=1))
    rsa = any(measure in RDM_MEASURES for measure in measures)
    if len(zero_rows) and (any(measure in COSINE_MEASURES for measure in measures)
                           or (rsa and settings.rdm_metric == "cosine")):
        raise DatasetError(f"{path}: rows {listing(zero_rows.tolist())} are all zero, where cosine similarity is "
                           "undefined; drop those items from every file, or use --rdm-metric euclidean without "
                           "mutual_knn/cknna.")
    constant_rows = np.flatnonzero(np.ptp(matrix, axis=1) == 0)
    if len(constant_rows) and rsa and settings.rdm_metric == "correlation":
        raise DatasetError(f"{path}: rows {listing(constant_rows.tolist())} are constant, where correlation distance "
                           "is undefined; drop those items from every file or choose another --rdm-metric.")


def pair_records(matrix: SimilarityMatrix, names: list[str]) -> list[dict]:
    """One record per unordered pair (i < j) of `names` and measure; NaN as None."""
    records = []
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            for measure in matrix.measures:
                record = {"first": first, "second": second, "measure": measure,
                          "value": _finite(matrix.value(measure, first, second))}
                if matrix.n_bootstrap:
                    low, high = matrix.interval(measure, first, second)
                    record.update(ci_low=_finite(low), ci_high=_finite(high))
                records.append(record)
    return records


def pairs_table(records: list[dict], matrix: SimilarityMatrix) -> str:
    """The records as an aligned text table, with the settings and the item count on a line above."""
    header = ["first", "second", "measure", "value"] + (["95% CI"] if matrix.n_bootstrap else [])
    rows = [header]
    for record in records:
        row = [record["first"], record["second"], MEASURES[record["measure"]].label, _number(record["value"])]
        if matrix.n_bootstrap:
            row.append(f"[{_number(record['ci_low'])}, {_number(record['ci_high'])}]")
        rows.append(row)
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    settings = matrix.settings
    about = (f"N = {matrix.n_items} items; RDMs {settings.rdm_metric}, k = {settings.k}, RBF sigma = "
             f"{settings.rbf_sigma} x median distance" + (f"; {matrix.n_bootstrap} bootstrap resamples, seed "
                                                          f"{matrix.seed}" if matrix.n_bootstrap else ""))
    return "\n".join([about, ""] + lines)


def _finite(value: float) -> float | None:
    # JSON has no NaN: an undefined value (e.g. debiased CKA on too few items) is null.
    return float(value) if math.isfinite(value) else None


def _number(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"


def _progress(progress: Progress) -> None:
    end = "\n" if progress.done == progress.total else ""
    print(f"\rsimilarity: {progress.done}/{progress.total} · {progress.message}".ljust(60), end=end, file=sys.stderr,
          flush=True)
