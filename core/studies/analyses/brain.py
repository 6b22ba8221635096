"""Brain: every layer of the step's encoders, the dataset's model RDMs and its other RDM groups against the per-subject
RDMs of its neural / behavioural reference groups, with rsatoolbox-grade inference (docs/science.md §10).

A step stores four tables: `models` (every model × reference: mean, 95% CI, p vs 0 and vs the lower noise ceiling,
ceiling-normalised mean), `noise_ceiling`, `pairwise` (all model differences, FDR and Bonferroni corrected) and
`per_subject`; the layer curves are the `models` rows of kind "encoder layer".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.analyses.brain import (LAYER, BrainResult, best_layer_table, ceiling_table, evaluate, group_label,
                                 layer_candidates, layer_curves, mds_table, model_table, pairwise_table,
                                 per_subject_table, rdm_candidates)
from core.analyses.permutation_null import rsa_null
from core.analyses.rdm import RDM_METRICS
from core.analyses.registry import Analysis, Board, Settings, register, setting
from core.analyses.scoreboard import Measure
from core.analyses.rsa import METHODS, condensed
from core.data.datasets import ImageSet
from core.jobs import job_key
from core.progress import Progress, Report
from core.studies.board import cell
from core.studies.context import Drawn, Figures, StepOutput, StudyContext, Tables, clean_units, feature_sets
from core.studies.study import Step

MIN_RESAMPLES = 20
RESAMPLE_CHOICES = ("both", "subjects", "stimuli")
MIN_REFERENCE_SUBJECTS = 2  # the default references: groups with at least this many subjects (a noise ceiling)


def _resamples(value):
    if isinstance(value, bool) or not isinstance(value, int) or not (value == 0 or MIN_RESAMPLES <= value <= 10000):
        raise ValueError(f"must be 0 (no bootstrap) or a number of resamples from {MIN_RESAMPLES} to 10000")
    return value


def name_list(value):
    """A setting naming groups or models: None (the defaults) or a non-empty list of names, kept as a tuple."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(item, str) and item for item in value):
        raise ValueError("must be a non-empty list of names")
    return tuple(value)


def _methods(value):
    """One comparator (a name, or a list of one: kept as the name, so a single comparator's results keep their keys)
    or several (a tuple, in the order given)."""
    listed = [value] if isinstance(value, str) else value
    if not isinstance(listed, (list, tuple)) or not listed or any(item not in METHODS for item in listed) \
            or len(set(listed)) < len(listed):
        raise ValueError(f"must be one of {', '.join(METHODS)} or a list of distinct ones")
    return listed[0] if len(listed) == 1 else tuple(listed)


def _model_names(value):
    """A list of names, empty allowed (no model RDMs: the encoder layers only)."""
    if value is None or (isinstance(value, (list, tuple)) and not value):
        return None if value is None else ()
    return name_list(value)


@dataclass(frozen=True)
class BrainSettings(Settings):
    reference_groups: tuple | None = setting(None, "The dataset's RDM groups (neural or behavioural: one RDM per subject) "
                                       "every model is compared with, each with its own noise ceiling. Default: every "
                                       f"group with at least {MIN_REFERENCE_SUBJECTS} subjects.", many=True,
                                       check=name_list)
    models: tuple | None = setting(None, "Besides every layer of the step's encoders: which of the dataset's model "
                                   "RDM files and other RDM groups (as `rdm · <name>`, a group by its subjects' mean "
                                   "RDM) are models too. Default: all of them; [] none.", many=True,
                                   check=_model_names)
    method: str | tuple = setting("corr", "RDM comparator(s), as rsatoolbox 0.3 names them: corr (Pearson r), "
                                  "spearman, tau-a (Kendall, for categorical models with many ties), rho-a, cosine, "
                                  "and the whitened corr_cov / cosine_cov. Several: each is evaluated (the same "
                                  "resamples) and the table holds every one.", choices=METHODS, many=True,
                                  check=_methods)
    rdm_metric: str = setting("correlation", "Dissimilarity of an encoder layer's RDM: correlation distance "
                              "(1 − Pearson r between two items' features), as the 92-image literature uses; cosine "
                              "or euclidean otherwise.", choices=RDM_METRICS)
    n_bootstrap: int = setting(1000, "Bootstrap resamples for the 95% CIs and tests (seeded). 0: no bootstrap (the "
                               "t-tests then use the spread over subjects, as rsatoolbox's eval_fixed).",
                               check=_resamples)
    resample: str = setting("both", "What the bootstrap resamples: subjects (generalise to new subjects), stimuli "
                            "(to new images of the same kind) or both (rsatoolbox's dual bootstrap, with its "
                            "correction of the doubled variance; the default for claims about both).",
                            choices=RESAMPLE_CHOICES)
    seed: int = setting(0, "Seed of the bootstrap draws: the same seed gives the same CIs.", low=0,
                       high=2 ** 31 - 1)

    def __post_init__(self) -> None:
        # A page's multiselect gives a list: one comparator is kept as its name, as a study file's `method = "corr"`.
        if not isinstance(self.method, str):
            object.__setattr__(self, "method", _methods(self.method))

    @property
    def methods(self) -> tuple[str, ...]:
        """The comparators, in the order chosen."""
        return (self.method,) if isinstance(self.method, str) else tuple(self.method)


def chosen_references(settings: BrainSettings, image_set: ImageSet) -> list:
    """The chosen reference groups (default: every group with at least MIN_REFERENCE_SUBJECTS subjects)."""
    groups = image_set.rdm_references
    if settings.reference_groups:
        return [group for name in settings.reference_groups for group in groups if group.name == name]
    return [group for group in groups if group.n_subjects >= MIN_REFERENCE_SUBJECTS]


def check(step: Step, image_set: ImageSet) -> tuple[str, str] | None:
    groups = [group.name for group in image_set.rdm_references]
    if not groups:
        return "analysis", (f"{step.dataset} has no neural or behavioural RDM groups (a neural:<folder> dataset, or "
                            f"|rdms=<file> on any dataset, gives them)")
    for name in step.settings.reference_groups or ():
        if name not in groups:
            return "reference_groups", f"{step.dataset} has no RDM group {name!r}; it has {', '.join(groups)}"
    if not step.settings.reference_groups and not chosen_references(step.settings, image_set):
        return "reference_groups", (f"no RDM group of {step.dataset} has {MIN_REFERENCE_SUBJECTS} or more subjects; name "
                              f"one of {', '.join(groups)}")
    known = [group_label(item.name) for item in image_set.rdm_references + image_set.model_rdms]
    for name in step.settings.models or ():
        if name not in known:
            return "models", f"{step.dataset} has no model RDM {name!r}; it has {', '.join(known)}"
    return None


def compute(settings: BrainSettings, image_set: ImageSet, features: dict, layer_order: dict,
            progress: Report | None = None) -> BrainResult:
    """The evaluation of every layer in `features` ((spec, layer) -> (N, d)) and the chosen RDMs against the chosen
    reference groups: what a step runs and the Brain page calls."""
    candidates = layer_candidates(features, layer_order, settings.rdm_metric)
    candidates += rdm_candidates(image_set.rdm_references, image_set.model_rdms, settings.models)
    return evaluate(candidates, chosen_references(settings, image_set), settings.methods, settings.n_bootstrap,
                    settings.resample, settings.seed, progress)


TABLES = ("models", "noise_ceiling", "pairwise", "per_subject", "mds", "best_layers")


def result_key(settings: BrainSettings, image_set: ImageSet, layer_digests) -> str:
    """Where the tables of `settings` over the layers of `layer_digests` (their feature keys' digests) are stored in
    the ResultCache: the page's key and a study step's alike (default references and models resolved to names)."""
    references = sorted(group.name for group in chosen_references(settings, image_set))
    offered = [group_label(item.name) for item in image_set.model_rdms + image_set.rdm_references]
    models = sorted(offered if settings.models is None else settings.models)
    return "brain|" + job_key("brain", image_set.fingerprint, references, models, settings.method,
                              settings.rdm_metric, settings.n_bootstrap, settings.resample, settings.seed,
                              sorted(layer_digests))


def store_tables(cache, key: str, tables: Tables) -> None:
    cache.set(key, {name: {"columns": list(table.columns), "records": table.to_dict("records")}
                    for name, table in tables.items()})


def stored_tables(cache, key: str) -> Tables | None:
    """The tables stored under `key` (None: not computed yet, or stored before a table was added: computed anew)."""
    found = cache.get(key)
    if found is None or any(name not in found for name in TABLES):
        return None
    tables = {name: pd.DataFrame(found[name]["records"], columns=found[name]["columns"]) for name in TABLES}
    method = tables["models"]["method"].iloc[0] if len(tables["models"]) else ""
    for table in tables.values():  # stored before several comparators: one comparator, named in `models` only
        if "method" not in table.columns:
            table.insert(1, "method", method)
    return tables


def result_tables(result: BrainResult, seed: int = 0) -> Tables:
    """The stored tables of `result`; `seed` draws the stimulus halves of the held-out layer choice."""
    return {"models": model_table(result), "noise_ceiling": ceiling_table(result),
            "pairwise": pairwise_table(result), "per_subject": per_subject_table(result), "mds": mds_table(result),
            "best_layers": best_layer_table(result, seed=seed)}


def run(step: Step, context: StudyContext, engine, report: Report) -> StepOutput:
    image_set = context.image_set(step)
    found = feature_sets(step, context).items() if image_set.has_images else ()
    features = {(layer.spec, layer.layer): np.asarray(feature_set.features) for layer, feature_set in found}
    key = result_key(step.settings, image_set, [feature_set.key.digest for _, feature_set in found])
    tables = stored_tables(context.scores, key)
    if tables is None:
        result = compute(step.settings, image_set, features, dict(step.layers), report)
        if not result.evaluations:
            raise ValueError(f"{step.label}: nothing to compare (no models besides the reference groups)")
        tables = result_tables(result, step.settings.seed)
        store_tables(context.scores, key, tables)  # under the Brain page's key: the step opens there at once
    n_models = tables["models"]["model"].nunique()
    references = list(tables["noise_ceiling"]["reference"])
    return StepOutput(tables, f"{n_models} models × {len(references)} references "
                              f"({', '.join(step.settings.methods)}, {step.settings.n_bootstrap} resamples)",
                      {"references": references, "result_key": key})


def draw(step: Step, stored, tables: Tables, context: StudyContext) -> Drawn:
    """Per reference group and comparator (named `_<method>` when the step has several): the model comparison, the
    layer curves and the second-order MDS."""
    from core.figures.brain import layer_curves_figure, mds_figure, model_comparison_figure

    figures: Figures = {}
    methods = step.settings.methods
    for reference in tables["models"]["reference"].unique():
        for method in methods:
            models, ceilings, pairwise, points = (one_view(tables.get(name), reference, method)
                                                  for name in ("models", "noise_ceiling", "pairwise", "mds"))
            slug = "".join(ch if ch.isalnum() else "-" for ch in str(reference))
            slug += f"_{method}" if len(methods) > 1 else ""
            figures[f"models_{slug}"] = lambda models=models, pairwise=pairwise: model_comparison_figure(
                models, pairwise)
            if (models["kind"] == LAYER).any():
                ceiling = ceilings.iloc[0]
                figures[f"layers_{slug}"] = lambda models=models, ceiling=ceiling, reference=reference, \
                    method=method: layer_curves_figure(layer_curves(models, reference), reference,
                                                       (ceiling["lower"], ceiling["upper"]), method)
            if points is not None:
                figures[f"mds_{slug}"] = lambda points=points, method=method: mds_figure(
                    points, dict(zip(points["name"], points["kind"])), method)
    return figures, {}, []


def one_view(table: pd.DataFrame | None, reference: str, method: str) -> pd.DataFrame | None:
    """The rows of a stored table against `reference` by comparator `method` (a table stored before several
    comparators has one, and no `method` column; None: not stored)."""
    if table is None:
        return None
    chosen = table["reference"] == reference
    return table[chosen & (table["method"] == method) if "method" in table.columns else chosen]


def page_state(settings: BrainSettings, meta) -> tuple[dict, list[str]]:
    """The page's widgets of a stored step: its bootstrap is a toggle with a number of resamples."""
    state = {f"brain.{name}": value for name, value in settings.items()
             if value is not None and name != "n_bootstrap"}
    state = {key: list(value) if isinstance(value, tuple) else value for key, value in state.items()}
    state["brain.method"] = list(settings.methods)  # a multiselect, also for one comparator
    state["brain.bootstrap_on"] = settings.n_bootstrap > 0
    if settings.n_bootstrap:
        state["brain.n_bootstrap"] = int(settings.n_bootstrap)
    return state, []


# --- the Scoreboard's columns and cells of a stored step (core.studies.scoreboard) ---------------------------------

def brain_measures(step: Step, context: StudyContext) -> list[Measure]:
    groups = context.image_set(step).rdm_references
    names = list(step.settings.reference_groups or [group.name for group in groups])
    return [measure for name in names for measure in _brain_columns(name, "")]


def _brain_columns(reference: str, method: str) -> list[Measure]:
    """The brain columns of one reference group (and comparator, where a step has several)."""
    suffix = f" vs {reference}" + (f" ({method})" if method else "")
    tail = f"_{method}" if method else ""  # the export table's column: the measure and comparator, not the group
    return [Measure(f"brain{suffix}", f"brain score{suffix}", "comparator", True, "brain", base=f"brain{tail}",
                    reference=reference),
            Measure(f"brain_normalised{suffix}", f"brain ceiling-normalised{suffix}", "share of ceiling", True,
                    "brain", base=f"brain_normalised{tail}", reference=reference),
            Measure(f"brain_held_out{suffix}", f"brain, layer chosen on held-out stimuli{suffix}", "comparator",
                    True, "brain", base=f"brain_held_out{tail}", reference=reference)]


def read_brain(step, tables, meta, context, rule):
    from core.analyses.brain import LAYER

    models = tables["models"]
    best = tables.get("best_layers", pd.DataFrame(columns=["reference", "method", "encoder", "layer", "score"]))
    several = "method" in models and models["method"].nunique() > 1
    cells, measures = [], []
    for (reference, method), rows in models.groupby(["reference", "method"] if "method" in models else
                                                     ["reference", pd.Series("", index=models.index)], sort=False):
        score, normalised, held_out = _brain_columns(reference, method if several else "")
        measures += [score, normalised, held_out]
        for spec, layer, row in reported_layers(step, rows, rule):
            cells += [cell(spec, score.name, row["mean"], row["ci_low"], row["ci_high"], layer=layer, step=step),
                      cell(spec, normalised.name, row["ceiling_normalised"], layer=layer, step=step)]
        for row in rows[rows["kind"] != LAYER].to_dict("records"):  # the dataset's model RDMs, as references
            cells.append(cell(row["model"], score.name, row["mean"], row["ci_low"], row["ci_high"], step=step))
        chosen = best[(best["reference"] == reference) & ((best["method"] == method) if "method" in best else True)]
        cells += [cell(row["encoder"], held_out.name, row["score"], layer=row["layer"], step=step)
                  for row in chosen.to_dict("records")]
    return cells, measures, {}


def reported_layers(step: Step, rows: pd.DataFrame, rule):
    """(encoder, layer, its `models` row) of each encoder in `rows` (one reference and comparator) at the layer the
    rule reports (layers in the step's depth order)."""
    for spec, layers in rows[rows["kind"] == LAYER].groupby("encoder", sort=False):
        layer = rule.pick([layer for layer in step.layers.get(spec, ()) if layer in set(layers["layer"])]
                          or list(layers["layer"]))
        yield spec, layer, layers[layers["layer"] == layer].iloc[0]


def brain_nulls(step: Step, stored, context: StudyContext, rule, n_perm: int, seed: int,
                progress: Report | None = None) -> list[dict]:
    """The permutation null of every `brain vs <group>` cell of a stored step (the rule's layer of each encoder, and
    each model RDM, vs each reference group's per-subject RDMs, by each comparator): `rsa_null` of the model's
    condensed RDM (from the cached features, under the step's RDM metric) against the group's (S, M) RDMs, so its
    observed value is the mean over subjects the step stored (a group with a missing pair gives no null); `progress`
    after each cell."""
    image_set = context.image_set(step)
    models = stored.table("models")
    if "method" not in models:  # stored before several comparators: the step's one
        models = models.assign(method=step.settings.methods[0])
    several = models["method"].nunique() > 1
    groups = {group.name: group for group in image_set.rdm_references}
    wanted = []  # (model name, spec, layer, reference, method)
    for (reference, method), rows in models.groupby(["reference", "method"], sort=False):
        wanted += [(spec, spec, layer, reference, method) for spec, layer, _ in reported_layers(step, rows, rule)]
        wanted += [(name, "", "", reference, method) for name in rows.loc[rows["kind"] != LAYER, "model"]]
    found = feature_sets(step, context) if image_set.has_images else {}
    features = {(layer.spec, layer.layer): np.asarray(item.features) for layer, item in found.items()
                if any((layer.spec, layer.layer) == (spec, name) for _, spec, name, _, _ in wanted)}
    rdms = {candidate.name: candidate.rdm for candidate in layer_candidates(features, dict(step.layers),
                                                                           step.settings.rdm_metric)}
    rdms |= {candidate.name: candidate.rdm for candidate in rdm_candidates(image_set.rdm_references,
                                                                           image_set.model_rdms)}
    records = []
    for done, (model, spec, layer, reference, method) in enumerate(wanted):
        try:
            null = rsa_null(rdms[f"{spec} · {layer}" if spec else model], condensed(groups[reference].rdms),
                            method=method, n_perm=n_perm, seed=seed)
        except ValueError:  # a subject's RDM with a missing pair would move with the permutation: no null (the
            null = None     # cell shows none)
        if null is not None:
            records.append({"model": model, "measure": _brain_columns(reference, method if several else "")[0].name,
                            "observed": null.observed, "null_p": null.p, "null_z": null.z, "null_q95": null.q95,
                            "beats_null": null.beats_null, "n_perm": n_perm, "seed": seed})
        if progress is not None:
            progress(Progress(done + 1, len(wanted), f"{step.label}: {model} vs {reference}"))
    return records


ENTRY = register(Analysis("brain", "Brain", "views/brain.py", "🧠", BrainSettings, clean_units, run, draw,
                          check=check, page_state=page_state, needs_images=False, all_layers=True, order=55,
                         board=Board(brain_measures, read_brain, brain_nulls)))
