"""`python -m core study run|status|export FILE`: a whole comparison, headless, locally or on Ray.

    python -m core study run studies/demo.toml                        # in this process
    python -m core study run studies/demo.toml --engine ray           # a local Ray cluster sized to this machine
    python -m core study run study.toml --engine ray --ray-address HEAD:6379 --gpus-per-task 1
    python -m core study status studies/demo.toml                     # done / pending / failed, per step
    python -m core study export studies/demo.toml demo_results.zip    # figures, tables and methods.md
    python -m core study scoreboard studies/demo.toml --csv board.csv --latex board.tex   # every model × measure
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from core.paths import atomic_write
from core.progress import Progress, Report
from core.studies.run import StepStatus, run_study, study_status
from core.studies.spec import StudyError, load_study


def add_study_parser(commands) -> None:
    """The `study` subcommand and its three actions, on the CLI's subparsers."""
    study = commands.add_parser("study", help="run a study file (every analysis of a comparison), show its state, "
                                              "export its results")
    actions = study.add_subparsers(dest="action", required=True)
    run = actions.add_parser("run", help="extract what is missing and run every step not yet stored")
    run.add_argument("file", type=Path, help="the study file (TOML; see studies/demo.toml)")
    run.add_argument("--engine", choices=("local", "ray"), default="local",
                     help="local: in this process (default); ray: Ray tasks on a local cluster sized to this machine, "
                          "or on the cluster at --ray-address")
    run.add_argument("--ray-address", default=None, metavar="ADDR",
                     help="join a running Ray cluster (HEAD:6379, from `ray start --head`) instead of starting one")
    run.add_argument("--gpus-per-task", type=float, default=0, metavar="G",
                     help="GPUs each extraction shard and each GWOT chain (torch backend) asks Ray for (default 0)")
    run.add_argument("--device", default=None, help="auto, cpu, cuda (default: the study's `device`, else auto)")
    run.add_argument("--batch-size", type=int, default=None, help="images per forward pass (default: the study's)")
    status = actions.add_parser("status", help="every step: done, pending or failed (with its error)")
    status.add_argument("file", type=Path)
    export = actions.add_parser("export", help="every figure (PNG/SVG/PDF/HTML), table (CSV) and a methods.md, zipped")
    export.add_argument("file", type=Path)
    export.add_argument("out", type=Path, help="the zip file to write")
    board = actions.add_parser("scoreboard", help="every model × every measure from the stored steps (nothing is "
                                                  "computed), with 95%% CIs and the status of each cell")
    board.add_argument("file", type=Path)
    board.add_argument("--csv", type=Path, default=None, metavar="OUT.csv",
                       help="write the table: a row per model × reference (reference, status), then per measure "
                            "<measure>, <measure>_ci_low/_ci_high, <measure>_status; measures of the model alone "
                            "repeat on each of its rows")
    board.add_argument("--latex", type=Path, default=None, metavar="OUT.tex",
                       help="write a paper-ready table, cells as value [lo, hi]")
    board.add_argument("--json", action="store_true", help="print the table as JSON records instead of text")


def run_study_command(args: argparse.Namespace, cache: Path) -> int:
    """One study action; returns the exit status (1 when a step failed or is still pending)."""
    study = load_study(args.file, cache)
    if args.action == "scoreboard":
        return _scoreboard(study, cache, args)
    if args.action == "status":
        statuses = study_status(study, cache)
    elif args.action == "export":
        from core.studies.export import export_study  # plotly/kaleido only when exporting
        if not args.out.parent.is_dir():
            raise StudyError(f"{args.out}: its folder {args.out.parent} does not exist; create it or choose another.")
        written = export_study(study, cache, args.out)
        print(f"{args.out}: {written.n_figures} figures, {written.n_tables} tables, methods.md"
              + (f" ({written.note})" if written.note else ""))
        return 0
    else:
        from core.studies.engines import make_engine
        try:
            engine = make_engine(args.engine, address=args.ray_address)
        except (ConnectionError, ImportError, RuntimeError) as error:  # no Ray, or no cluster at that address
            raise StudyError(f"cannot start the {args.engine} engine: {error}") from None
        try:
            statuses = run_study(study, cache, engine, device=args.device, batch_size=args.batch_size,
                                 gpus_per_task=args.gpus_per_task, bar=_progress_bar)
        except KeyboardInterrupt:
            print("\nstopped: every finished result is kept; run the same command to resume.", file=sys.stderr)
            return 130
        finally:
            engine.close()
    print(status_table(statuses))
    return 0 if all(status.state == "done" for status in statuses) else 1


def _scoreboard(study, cache: Path, args: argparse.Namespace) -> int:
    """Print (text or JSON) and write (CSV, LaTeX) the study's scoreboard; exit status 1 when a cell failed."""
    from core.studies.scoreboard import study_scoreboard
    for out in (args.csv, args.latex):
        if out is not None and not out.parent.is_dir():
            raise StudyError(f"{out}: its folder {out.parent} does not exist; create it or choose another.")
    board = study_scoreboard(study, cache)
    table = board.table()
    if args.csv is not None:
        atomic_write(args.csv, lambda temporary: table.to_csv(temporary, index=False))
    if args.latex is not None:
        atomic_write(args.latex, lambda temporary: temporary.write_text(board.latex()))
    if args.json:
        # Python's float repr, not pandas' 10 digits: each number is the stored one exactly; NaN as null
        records = table.astype(object).where(table.notna(), None).to_dict("records")
        print(json.dumps(records, ensure_ascii=False, default=lambda value: value.item()))
    else:
        counts = board.cells["status"].value_counts()
        print(board.cells.pivot_table(index="model", columns="measure", values="value", aggfunc="first",
                                      sort=False).T.to_string(float_format=lambda value: f"{value:.3f}"))
        print(", ".join(f"{count} {status}" for status, count in counts.items()) + f" cells. {board.rule}")
    return 1 if (board.cells["status"] == "failed").any() else 0


def status_table(statuses: list[StepStatus]) -> str:
    """A line per step: state, label, then its summary or error."""
    marks = {"done": "✓ done", "pending": "· pending", "failed": "✗ failed"}
    width = max(len(status.step.label) for status in statuses)
    lines = [f"{marks[status.state]:<10} {status.step.label:<{width}}  "
             f"{status.error or status.summary}{'  (computed now)' if status.ran and status.state == 'done' else ''}"
             for status in statuses]
    done = sum(status.state == "done" for status in statuses)
    return "\n".join(lines + [f"{done} of {len(statuses)} steps done."])


def _progress_bar(label: str, total: int, unit: str) -> Report:
    """A tqdm bar fed by a Report, with its message as the postfix; it closes itself once done reaches total."""
    bar = tqdm(total=total, desc=label, unit=unit, file=sys.stderr, leave=True, dynamic_ncols=True)

    def report(progress: Progress) -> None:
        bar.total, bar.n = progress.total, progress.done
        bar.set_postfix_str(progress.message, refresh=False)
        bar.refresh()
        if progress.done >= progress.total:
            bar.close()

    return report
