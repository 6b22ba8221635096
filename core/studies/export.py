"""`study export`: a study's stored results as one zip, what a methods section and a supplement need.

Per finished step, `<NN>_<analysis>_<dataset>/` holds every stored table as CSV, the figures its page draws
from them as HTML and, where Chromium renders, PNG, SVG and PDF (provenance in each file's metadata), and
provenance.json. Every HTML loads the one plotly.js at the archive's root (`../plotly.min.js`): inlined, the
demo study's 30 figures made a 55 MB zip. `methods.md` gives the data, encoders, every setting, input, timing
and result of every step, the library versions, and what was not run or cannot be drawn. Nothing is fitted
again: a figure whose data a step does not store is drawn from what the cache holds beside it (the stored
out-of-fold predictions, features and view features; each analysis's `draw`), and one whose inputs
have left the cache is left out and named, never approximated.
"""
from __future__ import annotations

import json
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.export import (PLOTLYJS_FILE, STATIC_FORMATS, ExportUnavailable, embed_provenance, figure_to_bytes,
                         plotlyjs_bytes, static_export_status, table_to_csv)
from core.features.results import StoredResult
from core.paths import atomic_write
from core.provenance import PROVENANCE_FILE, library_versions, readable_preprocess
from core.studies import analyses
from core.studies.context import StudyContext, Tables, open_context, slug
from core.studies.run import STEP_KIND, StepStatus, step_units, study_status
from core.studies.scoreboard import study_scoreboard
from core.studies.study import Study

METHODS_FILE = "methods.md"


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote: figures (each once, whatever its formats), CSV tables, and a note ("" when none)."""

    n_figures: int
    n_tables: int
    note: str = ""


def export_study(study: Study, cache: str | Path, out: str | Path) -> ExportSummary:
    """Write the zip `out`: methods.md, the study file, and per finished step its CSV tables and figures."""
    context = open_context(study, cache)
    static, message = static_export_status()
    note = "" if static else f"figures as HTML only: {message}"
    files: dict[str, bytes] = {}
    sections, metas, n_figures, n_tables = [], [], 0, 0
    for status in study_status(study, cache):
        step = status.step
        stored = context.results.get(STEP_KIND, status.key) if status.state == "done" else None
        if stored is None:  # pending or failed: listed in methods.md, never an error
            sections.append(_step_section(status, None, context))
            continue
        folder = f"{step.index + 1:02d}_{step.analysis}_{slug(step.dataset)}"
        tables = {name: stored.table(name) for name in stored.table_names}
        figures, extra, omitted = analyses.get(step.analysis).draw(step, stored, tables, context)
        tables |= extra
        files |= {f"{folder}/{name}.csv": table_to_csv(table) for name, table in tables.items()}
        provenance = json.dumps(stored.meta.get("provenance", {}), indent=2, sort_keys=True)
        files[f"{folder}/{PROVENANCE_FILE}"] = provenance.encode()
        drawn: dict[str, list[str]] = {}  # figure -> the formats written
        for stem, draw in figures.items():
            try:
                fig = draw()
            except Exception as error:  # noqa: BLE001 - a figure the stored data cannot give is named, not fatal
                omitted.append(f"{stem}: cannot be drawn from what the cache holds ({type(error).__name__}: {error})")
                continue
            html = figure_to_bytes(fig, "html", plotlyjs=f"../{PLOTLYJS_FILE}")  # the step folder is one level down
            files[f"{folder}/{stem}.html"] = embed_provenance(html, "html", provenance)
            drawn[stem] = ["html"]
            try:
                for fmt in STATIC_FORMATS if static else ():
                    files[f"{folder}/{stem}.{fmt}"] = _with_provenance(figure_to_bytes(fig, fmt), fmt, provenance)
                    drawn[stem].append(fmt)
            except ExportUnavailable as error:  # Chromium failed: HTML only from here on, and the note says so
                static, note = False, f"figures as HTML only from {folder}/{stem} on: {error}"
        n_figures, n_tables = n_figures + len(drawn), n_tables + len(tables)
        metas.append(stored.meta)
        sections.append(_step_section(status, stored, context, folder, tables, drawn, omitted))
    study_file = {study.path.name: study.path.read_bytes()} if study.path.is_file() else {}
    if metas:  # the study's answer in one table (beside methods.md, not a step's table), from the same stored steps
        board = study_scoreboard(study, cache)
        files |= {"scoreboard.csv": table_to_csv(board.table()), "scoreboard.tex": board.latex().encode()}
    shared = {PLOTLYJS_FILE: plotlyjs_bytes()} if n_figures else {}
    files = {METHODS_FILE: _methods(study, context, metas, sections, note).encode(), **study_file, **shared, **files}
    atomic_write(out, lambda temporary: _write_zip(temporary, files))
    return ExportSummary(n_figures, n_tables, note)


# --- methods.md ------------------------------------------------------------------------------------------------------

def _methods(study: Study, context: StudyContext, metas: list[dict], sections: list[str], note: str) -> str:
    """The whole methods.md: study, a draft paragraph, data, encoders, a section per step, library versions."""
    now = library_versions()
    lines = [f"# Methods: {study.name}", "", study.description, "",
             f"Study file `{study.path}` (copied into this archive as `{study.path.name}`). {len(metas)} of "
             f"{len(study.steps)} steps finished; exported {_utc(time.time())} with RepScope {now['repscope']}."
             + (f" Note: {note}." if note else ""), ""]
    if metas:
        lines += ["A draft paragraph (every number it rests on is in the sections below):", "",
                  "> " + _paragraph(study, metas)]
    else:
        lines.append(f"No step of this study has finished, so there are no figures or tables: run "
                     f"`python -m core study run {study.path}` first.")
    lines += ["", "## Data", "", "| dataset | name | items | categories | reference embeddings | fingerprint |",
              "|---|---|---|---|---|---|"]
    for spec, image_set in study.image_sets.items():
        references = ", ".join(reference.name for reference in image_set.references) or "none"
        lines.append(_row(f"`{spec}`", image_set.name, len(image_set), image_set.metadata["category"].nunique(),
                          references, f"`{image_set.fingerprint}`"))
    for spec, image_set in study.image_sets.items():
        if image_set.skipped:
            lines += ["", f"`{spec}` left out {len(image_set.skipped)} unreadable image(s) (`|unreadable=skip`): "
                      + "; ".join(f"`{label}`" for label in image_set.skipped_labels) + "."]
    weights = {record["encoder"]: record["weights"] for meta in reversed(metas)
               for record in meta.get("provenance", {}).get("features", [])}
    lines += ["", "## Encoders", "", f"Pooling `{study.pooling}`: on blocks as resolved per encoder below; a final "
              "layer keeps the model's own embedding. Weights as the stored provenance records them (as the encoder "
              "describes them where no step is stored).", "",
              "| encoder | weights | block pooling | resolution | crop | normalisation | interpolation |",
              "|---|---|---|---|---|---|---|"]
    for spec in dict.fromkeys(spec for step in study.steps for spec in step.encoders):
        info = context.info(spec)
        lines.append(_row(f"`{spec}`", f"`{weights.get(spec, info.weights_id)}`", context.pooling(spec),
                          *readable_preprocess(info.preprocess).values()))
    lines += ["", "## Steps", "", *sections, "## Library versions", "",
              "Computed with: the versions stored with each step's result (joined by / where steps differ); "
              "exported with: this export's.", "", "| package | computed with | exported with |", "|---|---|---|"]
    for package, version in now.items():
        computed = " / ".join(dict.fromkeys(meta.get("versions", {}).get(package, "?") for meta in metas)) or "—"
        lines.append(_row(package, computed, version))
    return "\n".join(lines) + "\n"


def _step_section(status: StepStatus, stored: StoredResult | None, context: StudyContext, folder: str = "",
                  tables: Tables | None = None, drawn: dict[str, list[str]] | None = None,
                  omitted: list[str] = ()) -> str:
    """One step: state, dataset, encoders, every setting; when done its timing, files and input feature arrays."""
    step, meta = status.step, stored.meta if stored is not None else {}
    layers = "; ".join(f"`{spec}`: {', '.join(step.layers[spec])}" for spec in step.encoders)
    lines = [f"### {step.label}", ""]
    if stored is None:
        lines.append(f"- **Not run** ({status.state})" + (f": {status.error}" if status.error else "") +
                     ". No figures or tables; run the study to compute it.")
    else:
        lines += [f"- **Result:** {meta.get('summary', '')}",
                  f"- **Computed** in {meta.get('seconds', '?')} s on the {meta.get('engine', '?')} engine, stored "
                  f"{_utc(meta.get('stored_at', 0))} as `{STEP_KIND}/{status.key}`."]
    lines += [f"- **Analysis:** {step.analysis} on `{step.dataset}` (fingerprint "
              f"`{context.image_set(step).fingerprint}`), pooling `{context.study.pooling}`.",
              f"- **Encoders · layers:** {layers or 'none (the step trains its own)'}."]
    if stored is not None:
        lines.append(f"- **Files** in `{folder}/`: tables " + ", ".join(
            f"{name}.csv ({len(table)} rows)" for name, table in tables.items()) + "; figures " + (", ".join(
                f"{stem} ({'/'.join(formats)})" for stem, formats in drawn.items()) or "none") +
            f"; {PROVENANCE_FILE}.")
        lines += [f"- **Not drawn:** {reason}." for reason in omitted]
    rows = {name: _value(value) for name, value in meta.get("settings", step.stored_settings).items()}
    rows |= dict(analyses.get(step.analysis).methods_rows(step, stored))  # what the settings alone do not say
    lines += ["", "| setting | value |", "|---|---|", *(_row(name, value) for name, value in rows.items())]
    records = meta.get("provenance", {}).get("features", [])
    if records:
        # The provenance lists the step's feature keys in this order (run.step_meta), each once.
        keys = list(dict.fromkeys(key for unit in step_units(step, context) for key in unit.keys.values()))
        digests = [key.digest for key in keys] if len(keys) == len(records) else [""] * len(records)
        lines += ["", "Input feature arrays (the stored features this step read):", "",
                  "| feature set | weights | layer | pooling | view | images fingerprint | device | feature key |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [_row(record["label"], f"`{record['weights']}`", record["layer"], record["pooling"], record["view"],
                       f"`{record['images_fingerprint']}`", record.get("device", ""), f"`{digest}`" if digest else "")
                  for record, digest in zip(records, digests)]
    return "\n".join(lines) + "\n\n"


def _paragraph(study: Study, metas: list[dict]) -> str:
    """Who was compared on what, with which analyses and software: plain sentences from the stored metadata."""
    versions = metas[0].get("versions", {})
    layers = sorted({layer for meta in metas for names in meta["layers"].values() for layer in names})
    datasets = ", ".join(f"{meta['dataset']} (fingerprint {meta['dataset_fingerprint']})"
                         for meta in {meta["dataset"]: meta for meta in metas}.values())
    encoders = list(dict.fromkeys(spec for meta in metas for spec in meta["encoders"]))
    analyses = "; ".join(f"{meta['analysis']} ({_value({k: v for k, v in meta['settings'].items() if v is not None})})"
                         for meta in metas)
    software = ", ".join(f"{package} {versions.get(package, '?')}"
                         for package in ("python", "numpy", "scikit-learn", "POT", "torch", "timm"))
    return (f"We compared {len(encoders)} image encoder(s) ({', '.join(encoders)}) on {datasets}, reading layer(s) "
            f"{', '.join(layers)} with {study.pooling} pooling. Analyses: {analyses}. Computed with RepScope "
            f"{versions.get('repscope', '?')}, {software}.")


# --- small helpers ---------------------------------------------------------------------------------------------------

def _value(value: Any) -> str:
    """A setting as a study file writes it: true/false, lists comma-separated, numbers exactly, None as not set."""
    if value is None:
        return "not set (the analysis default)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ", ".join(_value(item) for item in value)
    if isinstance(value, dict):
        return "; ".join(f"{key}: {_value(item)}" for key, item in value.items())
    return str(value)


def _row(*cells: Any) -> str:
    return "| " + " | ".join(str(cell).replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))


def _with_provenance(data: bytes, fmt: str, text: str) -> bytes:
    try:
        return embed_provenance(data, fmt, text)
    except ExportUnavailable:  # a PDF without document info goes in without it (provenance.json lies beside)
        return data


def _write_zip(path: Path, files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
