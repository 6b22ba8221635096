"""Headless use: `python -m core <command>`, e.g. to fill the feature cache on a GPU server.

    python -m core extract --dataset oasis:/data/oasis --encoder timm:vit_base_patch16_224.augreg_in21k --layers all
    python -m core list-layers open_clip:ViT-B-16@openai
    python -m core catalogue
    python -m core dataset neural:/data/kriegeskorte92
    python -m core similarity A.npy B.npy C.csv --measure cka_linear,rsa_spearman --bootstrap 1000 --json
    python -m core rsa --data hIT.npy --models layer1.npy layer2.npy --method spearman --bootstrap 1000 --json
    python -m core study run studies/demo.toml --engine ray
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import core.lab  # noqa: F401  (registers the `lab:<run id>` encoders)
from core.data.datasets import DATASET_SPEC_HELP, DatasetError, ImageSet, load_dataset
from core.encoders.catalogue import PARADIGMS, entries_of
from core.encoders.registry import describe, spec_availability
from core.encoders.specs import (DEFAULT_DIM, MAX_DIM, MIN_DIM, POOLINGS, SPEC_HELP, EncoderSpecError, WeightsUnavailable,
                                 pooling_name)
from core.features.extract import extract
from core.paths import cache_root
from core.progress import Progress
from core.rsa_cli import add_rsa_parser, run_rsa
from core.similarity_cli import add_similarity_parser, run_similarity
from core.study_cli import add_study_parser, run_study_command
from core.stores import Stores
from core.studies.spec import StudyError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core", description="RepScope headless tools.")
    parser.add_argument("--cache", type=Path, default=None, help="cache folder (default: $REPSCOPE_CACHE or ./cache)")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("extract", help="extract features of one or more encoders into the cache")
    run.add_argument("--dataset", default="demo", help=DATASET_SPEC_HELP)
    run.add_argument("--encoder", action="append", required=True, help=SPEC_HELP + " Repeat for several.")
    run.add_argument("--layers", default="final", help='comma-separated layer names, or "all" (default: final)')
    run.add_argument("--pooling", default="auto", type=pooling_name, metavar="POOLING",
                     help=f"pooling of block outputs: {', '.join(POOLINGS)} or flat:<dim> (dim {MIN_DIM}..{MAX_DIM}; "
                          f"flat = flat:{DEFAULT_DIM}: the whole block output, sparse-random-projected to dim values; "
                          "docs/science.md §1.2). Default: auto")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    run.add_argument("--batch-size", type=int, default=32)
    run.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: automatic)")
    layers = commands.add_parser("list-layers", help="print the layers an encoder offers")
    layers.add_argument("spec", help=SPEC_HELP)
    catalogue = commands.add_parser("catalogue", help="the curated encoders by paradigm, ✓ where usable offline now")
    catalogue.add_argument("--paradigm", action="append", choices=PARADIGMS,
                           help="only this paradigm (repeat for several; default: all)")
    dataset = commands.add_parser("dataset", help="load a dataset spec and describe it: items, images, categories, "
                                                  "references, RDM groups, fingerprint")
    dataset.add_argument("spec", help=DATASET_SPEC_HELP)
    add_similarity_parser(commands)
    add_rsa_parser(commands)
    add_study_parser(commands)
    args = parser.parse_args(argv)
    cache = args.cache or cache_root()
    try:
        if args.command == "list-layers":
            info = describe(args.spec)
            print("\n".join(info.layers))
            flat = ", flat[:<dim>]" if info.supports_flat else ""
            print(f"# pooling: {', '.join(info.poolings)}{flat} (default {info.default_pooling})", file=sys.stderr)
        elif args.command == "catalogue":
            print(catalogue_table(args.paradigm or PARADIGMS))
        elif args.command == "dataset":
            print(dataset_summary(load_dataset(args.spec, cache)))
        elif args.command == "similarity":
            run_similarity(args)
        elif args.command == "rsa":
            run_rsa(args)
        elif args.command == "study":
            return run_study_command(args, cache)
        else:
            _extract(args, cache)
    except (DatasetError, EncoderSpecError, WeightsUnavailable, StudyError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def catalogue_table(paradigms) -> str:
    """The catalogue as an aligned text table, ✓ / ✗ = usable offline right now (✗ rows say why)."""
    rows = [("", "paradigm", "spec", "label", "training data", "params", "download")]
    reasons: dict[str, int] = {}  # why not, and for how many
    for entry in entries_of(tuple(paradigms)):
        ok, reason = spec_availability(entry.spec)
        rows.append(("✓" if ok else "✗", entry.paradigm, entry.spec, entry.label, entry.training_data,
                     f"{entry.params_m:.1f}M", f"{entry.download_mb} MB" if entry.download_mb else "-"))
        if not ok:
            reasons[reason] = reasons.get(reason, 0) + 1
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    n_usable = sum(row[0] == "✓" for row in rows[1:])
    why_not = [f"✗ ({count}): {reason}" for reason, count in reasons.items()]
    return "\n".join(lines + ["", f"{n_usable} of {len(rows) - 1} usable offline now."] + why_not)


def dataset_summary(image_set: ImageSet) -> str:
    """What a loaded dataset holds, one fact per line (its RDM groups with their subjects and how they were read)."""
    items = f"{len(image_set)} images" if image_set.has_images else f"{len(image_set)} items, no images"
    lines = [f"{image_set.name}\t{items}\t{len(image_set.categories)} categories\tfingerprint {image_set.fingerprint}",
             f"root\t{image_set.root}"]
    lines += [f"reference\t{reference.name}\t{reference.embedding.shape[1]} dimensions"
              for reference in image_set.references]
    for role, groups in (("rdm reference", image_set.rdm_references), ("model rdm", image_set.model_rdms)):
        lines += [f"{role}\t{group.name}\t"
                  + (f"{group.n_subjects} subject{'s' if group.n_subjects != 1 else ''}" if role == "rdm reference"
                     else f"{group.n_items} x {group.n_items}")
                  + f"\t{group.note or '-'}\t{', '.join(str(source) for source in group.sources)}" for group in groups]
    lines += [f"skipped\t{label}" for label in image_set.skipped_labels]
    return "\n".join(lines)


def _extract(args: argparse.Namespace, cache: Path) -> None:
    image_set = load_dataset(args.dataset, cache)
    store = Stores.at(cache).features
    wanted = "all" if args.layers == "all" else [name.strip() for name in args.layers.split(",") if name.strip()]
    for spec in args.encoder:
        def report(progress: Progress) -> None:
            # Padded so a shorter line fully overwrites the previous one after the carriage return.
            print(f"\r{spec}: {progress.done}/{progress.total} images · {progress.message}".ljust(100),
                  end="", file=sys.stderr, flush=True)

        feature_sets = extract(image_set, describe(spec), wanted, store, pooling=args.pooling, device=args.device,
                               batch_size=args.batch_size, num_workers=args.workers, progress=report)
        print(file=sys.stderr)
        for layer, feature_set in feature_sets.items():
            print(f"{spec}\t{layer}\t{feature_set.features.shape[0]}x{feature_set.features.shape[1]}\t"
                  f"{store.path(feature_set.key)}")


if __name__ == "__main__":
    raise SystemExit(main())
