"""Alignment: entropic Gromov-Wasserstein optimal transport of one representation's RDM onto others' (§5).

A step stores each alignment in the ResultStore under the Alignment page's key, so it opens on the page.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from core.analyses.gwot import BACKENDS, DEFAULT_EPS, INITS, SEARCHES, Alignment, alignment_report, validate_rdms
from core.analyses.gwot_search import (ALIGNMENT_KIND, SearchSettings, alignment_result_key, assemble, load_alignment, refinement,
                                       run_chain, save_alignment, search_chains, starts_for)
from core.analyses.matching import matching_summary, per_category_matching
from core.analyses.rdm import RDM_METRICS
from core.analyses.representation import (Representation, layer_representation, rdm_group_representation,
                                          reference_representation)
from core.analyses.registry import Analysis, Board, CannotOpen, Settings, register, setting
from core.analyses.scoreboard import Measure, versus
from core.encoders.specs import ModelLayer
from core.figures.alignment import (epsilon_search_figure, matching_rates_figure, per_category_figure,
                                    rdm_pair_figure, transport_plan_figure)
from core.progress import Report
from core.studies.board import cell, chosen_layers
from core.studies.context import (STEP_KIND, Drawn, Figures, StepOutput, StudyContext, Tables, clean_units,
                                  feature_sets, representation_name, representation_names, slug)
from core.studies.study import Step

MIN_EPSILON = 1e-6  # the smallest ε the page offers


def _eps_range(value):
    if (not isinstance(value, (list, tuple)) or len(value) != 2 or
            not all(isinstance(item, (int, float)) and not isinstance(item, bool) for item in value)):
        raise ValueError("must be [smallest, largest], e.g. [1e-5, 1e-1]")
    low, high = map(float, value)
    if not MIN_EPSILON <= low <= high:
        raise ValueError(f"must be increasing, from {MIN_EPSILON:g} up; got [{low:g}, {high:g}]"
                         + (" (swap them?)" if high < low else ""))
    return low, high


@dataclass(frozen=True)
class AlignmentSettings(Settings):
    source: str | None = setting(None, "The representation whose items are transported (rows of the plan): an "
                                 "encoder layer, a human embedding, an RDM group's mean RDM (`rdm · <group>`: the RDM "
                                 "metric does not apply to it) or an upload.", check=representation_name)
    targets: tuple | None = setting(None, "The representations they are transported to (columns), one alignment "
                                    "each.", check=representation_names)
    metric: str = setting("cosine", "Dissimilarity between two items' vectors. Cosine is the usual choice for DNN "
                          "features, euclidean for SPoSE-style human embeddings.", choices=RDM_METRICS)
    normalise: bool = setting(False, "Divide both RDMs by their max, so one ε range suits both; off by default.")
    eps_range: tuple | None = setting(None, "Smallest and largest entropic regularisation tried, in the units of the "
                                      "squared RDM entries: defaults are [1e-5, 1e-1] for cosine/correlation RDMs and "
                                      "[1, 10] for euclidean human embeddings (docs/science.md §5). Too small for the "
                                      "RDMs' scale and trials fail (reported, discarded).", check=_eps_range)
    n_eps: int = setting(10, "Number of ε values, log-spaced over the range.", low=1, high=50)
    n_inits: int = setting(1, "Random initial plans per ε (seeds 0, 1, …). The trial with the smallest GW distance "
                           "over all ε and inits is selected. With annealing one is usually enough; without it, use "
                           "several.", low=1, high=20)
    init: str = setting("random", "GW is non-convex: each init can land in a different local optimum. Random "
                        "positive: a random matrix scaled to uniform marginals. Permutation: a random one-to-one plan "
                        "/ N. Uniform: p qᵀ (one deterministic init).", choices=INITS)
    search: str = setting("grid", "grid: all ε log-spaced. sequential: half of them on the grid, the rest between "
                          "the neighbours of the best so far.", choices=SEARCHES)
    anneal: bool = setting(True, "On (default): ε runs from large to small and each init continues from its own plan "
                           "at the previous ε. Several times faster, and on known answers it finds the true matching "
                           "where cold starts stall in a local optimum. Off: every trial starts from its own initial "
                           "plan (GWTune's protocol, docs/science.md §5); use several inits.")
    backend: str = setting("numpy", "numpy on the CPU, or torch: on the GPU when there is one (much faster for "
                           "thousands of items), else on the CPU. Same selection either way.", choices=BACKENDS)
    max_iter: int = setting(1000, "Outer (mirror-descent) steps per trial; a trial stops earlier when the GW "
                            "objective changes by < 1e-6 (relative).", low=10, high=5000)

    @property
    def search_settings(self) -> SearchSettings:
        """The search, with the ε range of the RDM metric where the step sets none."""
        return SearchSettings(self.eps_range or DEFAULT_EPS[self.metric], self.n_eps, self.n_inits, self.init,
                              self.search, self.anneal, self.max_iter, backend=self.backend)


def check(step: Step, image_set) -> tuple[str, str] | None:
    if not step.settings.source or not step.settings.targets:
        return "source", "an alignment step names its source and its targets"
    return None


def alignment_rdms(step: Step, context: StudyContext) -> tuple[dict[str, Representation],
                                                               Callable[[str], np.ndarray]]:
    """(the step's representations by label, label -> its (N, N) RDM under the step's metric)."""
    image_set, settings = context.image_set(step), step.settings
    items = image_set.metadata["image_id"].astype(str).to_numpy()
    features = {layer.label: feature_set for layer, feature_set in feature_sets(step, context).items()} \
        if image_set.has_images else {}
    representations = {f"human · {reference.name}": reference_representation(reference.name, reference.embedding)
                       for reference in image_set.references}
    representations |= {f"rdm · {group.name}": rdm_group_representation(group.name, group.mean)
                        for group in image_set.rdm_references}
    representations |= {layer.label: layer_representation(layer, context.pooling(layer.spec))
                         for layer in step.model_layers if layer.label in features}

    def matrix(name: str) -> np.ndarray:
        feature_set = features.get(name)
        return representations[name].rdm(items, settings.metric, normalise=settings.normalise,
                                          features=None if feature_set is None else np.asarray(feature_set.features))

    return representations, matrix


def run(step: Step, context: StudyContext, engine, report: Report) -> StepOutput:
    image_set, settings = context.image_set(step), step.settings
    categories = image_set.metadata["category"].astype(str).to_numpy()
    representations, matrix = alignment_rdms(step, context)
    source = matrix(settings.source)
    targets = {target: matrix(target) for target in settings.targets}
    keys = {target: stored_key(image_set.fingerprint, settings, representations, target) for target in targets}
    alignments = {target: load_alignment(context.results, key) for target, key in keys.items()}
    missing = {target: targets[target] for target, alignment in alignments.items() if alignment is None}
    for target, alignment in search_alignments(source, missing, settings.search_settings, engine, context,
                                               report).items():
        save_alignment(context.results, keys[target], alignment, stored_meta(settings, target, step.dataset))
        alignments[target] = alignment
    rows = []
    for target, alignment in alignments.items():
        rates = matching_summary(alignment.transport_plan, categories).set_index("measure")["rate"].to_dict()
        rsa = alignment_report(alignment, source, targets[target], categories).rsa
        rows.append({"source": settings.source, "target": target, "rsa": rsa, "epsilon": alignment.epsilon,
                     "gw_distance": alignment.gw_distance, **rates, "alignment_key": keys[target]})
    return StepOutput({"matching": pd.DataFrame(rows)},
                      ", ".join(f"{row['target']}: top-1 {row['top-1']:.1%}" for row in rows))


def stored_key(dataset_fingerprint: str, settings: AlignmentSettings, representations: Mapping[str, Representation],
               target: str) -> str:
    """Where the alignment of the settings' source to `target` is stored: the same items, representations, RDMs and
    search give the same key on the page, in a headless study and after a restart (a layer's key holds its pooling)."""
    return alignment_result_key(dataset_fingerprint, representations[settings.source].key,
                                representations[target].key, settings.metric, settings.normalise,
                                settings.search_settings)


def search_record(search: SearchSettings) -> dict:
    """The search settings an alignment's meta records (what "Open on its page" reads back)."""
    return {name: getattr(search, name) for name in ("eps_range", "n_eps", "n_inits", "init", "search", "warm_start",
                                                     "backend", "max_iter")}


def stored_meta(settings: AlignmentSettings, target: str, dataset: str) -> dict:
    """The meta a finished alignment of the settings' source to `target` is stored with."""
    return {"label": f"{settings.source} → {target}", "source": settings.source, "target": target,
            "dataset": dataset, "metric": settings.metric, "normalise": settings.normalise,
            "search_settings": search_record(settings.search_settings)}


def search_alignments(source: np.ndarray, targets: dict[str, np.ndarray], search: SearchSettings, engine,
                      context: StudyContext, report: Report) -> dict[str, Alignment]:
    """The ε search of (N, N) `source` against every (N, N) target as engine tasks, one per chain (an init's
    annealing path, or one cold trial) of every target at once, so all of them keep the workers busy."""
    for target in targets.values():
        validate_rdms(source, target)  # a NaN or misshapen RDM is named as such, before any trial
    handles = {name: engine.put(np.asarray(target, np.float32)) for name, target in targets.items()}
    shared = {"C_source": np.asarray(source, np.float32), "settings": search}
    gpus = context.gpus_per_task if search.backend == "torch" else 0
    keep = search.search == "sequential" and search.warm_start
    # Largest ε first: those trials are the slowest, so no worker is left with one at the end (assemble re-sorts).
    first_chains = sorted([(name, chain) for name in targets for chain in search_chains(search, search.first_stage())],
                          key=lambda pair: -pair[1].epsilons[0])
    first = engine.map(run_chain, [{"chain": chain, "C_target": handles[name], "keep_states": keep}
                                   for name, chain in first_chains], shared=shared, gpus=gpus, progress=report)
    by_target = {name: [result for (owner, _), result in zip(first_chains, first) if owner == name] for name in targets}
    second_chains = [(name, chain) for name in targets
                     for chain in search_chains(search, refinement(search, by_target[name]), stage=1)]
    second = engine.map(run_chain, [{"chain": chain, "C_target": handles[name],
                                     "starts": starts_for(chain, by_target[name])} for name, chain in second_chains],
                        shared=shared, gpus=gpus, progress=report)
    for (name, _), result in zip(second_chains, second):
        by_target[name].append(result)
    return {name: assemble(results, search) for name, results in by_target.items()}


def draw(step: Step, stored, tables: Tables, context: StudyContext) -> Drawn:
    categories = context.image_set(step).metadata["category"].astype(str).to_numpy()
    matrices = cache(lambda: alignment_rdms(step, context)[1])  # name -> RDM, as `run` computes it
    rdm = cache(lambda name: matrices()(name))  # each once (the source is every pair's)
    figures: Figures = {}
    extra, omitted = {}, []
    for row in tables["matching"].to_dict("records"):
        pair, name = (row["source"], row["target"]), slug(row["target"])
        figures[f"rdms_{name}"] = lambda pair=pair: rdm_pair_figure(rdm(pair[0]), rdm(pair[1]), categories, pair)
        alignment = load_alignment(context.results, row["alignment_key"])
        if alignment is None:
            omitted.append(f"{row['target']}: alignment {row['alignment_key']} is no longer in the cache "
                           "(matching.csv keeps its rates)")
            continue
        plan = alignment.transport_plan
        figures[f"transport_plan_{name}"] = lambda plan=plan, pair=pair: transport_plan_figure(plan, categories,
                                                                                             names=pair)
        figures[f"matching_rates_{name}"] = lambda plan=plan: matching_rates_figure(matching_summary(plan, categories))
        figures[f"epsilon_search_{name}"] = lambda found=alignment: epsilon_search_figure(found.trials, found.selected)
        figures[f"per_category_{name}"] = lambda plan=plan: per_category_figure(per_category_matching(plan, categories))
        extra[f"trials_{name}"] = alignment.trials  # every ε trial of the search, from the stored alignment
    return figures, extra, omitted


def methods_rows(step: Step, stored) -> list[tuple[str, str]]:
    """An unset ε range is the RDM metric's default: say which."""
    if step.settings.eps_range is not None:
        return []
    low, high = DEFAULT_EPS[step.settings.metric]
    return [("eps_range", f"not set: the {step.settings.metric} default, {low:g}, {high:g}")]


def page_state(settings: AlignmentSettings, meta) -> tuple[dict, list[str]]:
    """One target at a time on the page (the stored one, else the first), the others to compare; the ε range is
    held per RDM metric."""
    targets = list(settings.targets or ())
    target = meta.get("target") if meta.get("target") in targets else (targets[0] if targets else None)
    low, high = settings.eps_range or DEFAULT_EPS[settings.metric]
    state = {f"alignment.{name}": value for name, value in settings.items()
             if name not in ("targets", "eps_range") and value is not None}
    state |= {"alignment.target": target, f"alignment.eps_low.{settings.metric}": float(low),
              f"alignment.eps_high.{settings.metric}": float(high),
              "alignment.compare": [name for name in targets if name != settings.source]}
    return {name: value for name, value in state.items() if value is not None}, []


def open_stored(kind: str, meta, store) -> tuple[dict, dict, list[str]]:
    """An alignment the page stored: the study step it belongs to when there is one (every setting), else its pair
    and metric, and its search where the meta records it."""
    step = _step_of_alignment(store, meta["key"])
    if step is not None:
        return step, *page_state(AlignmentSettings.lenient(step.get("settings") or {}),
                                 {**step, "target": meta.get("target")})
    source, target, metric = meta.get("source"), meta.get("target"), meta.get("metric", "cosine")
    if not source or not target:
        raise CannotOpen("this alignment does not record its source and target")
    if any(name.startswith("upload · ") for name in (source, target)):
        raise CannotOpen("an uploaded matrix is not stored; upload it again on the Alignment page")
    search, notes = meta.get("search_settings"), []
    if search:
        settings = AlignmentSettings.lenient({
            "source": source, "targets": [target], "metric": metric, "eps_range": search["eps_range"],
            "n_eps": search["n_eps"], "n_inits": search["n_inits"], "init": search["init"], "search": search["search"],
            "anneal": search["warm_start"], "backend": search["backend"], "max_iter": search["max_iter"],
            "normalise": bool(meta.get("normalise", False))})
        widgets, _ = page_state(settings, {"target": target})
    else:
        widgets = {"alignment.source": source, "alignment.target": target, "alignment.metric": metric}
        notes.append("Stored by the Alignment page without its search settings: the pair and the RDM metric are "
                     "restored, the ε range, inits and the rest keep their current values (the page shows the stored "
                     "alignment when they match the ones it was run with).")
    layers: dict[str, list[str]] = {}
    for label in (source, target):
        if not label.startswith(("human · ", "rdm · ", "upload · ")) and " · " in label:
            layer = ModelLayer(*label.rsplit(" · ", 1))
            layers.setdefault(layer.spec, []).append(layer.layer)
    return {"dataset": meta.get("dataset"), "encoders": list(layers), "layers": layers}, widgets, notes


def _step_of_alignment(store, key: str) -> dict | None:
    """The stored study step whose alignment this is (its `matching` table names every alignment it stored)."""
    for meta in store.entries(STEP_KIND):
        if meta.get("analysis") != "alignment" or "matching" not in meta.get("tables", ()):
            continue
        stored = store.get(STEP_KIND, meta["key"])
        try:
            keys = set(stored.table("matching")["alignment_key"]) if stored else set()
        except (OSError, ValueError, KeyError):
            continue
        if key in keys:
            return dict(stored.meta)
    return None


# --- the Scoreboard's columns and cells of a stored step (core.studies.scoreboard) ---------------------------------

def alignment_measures(step: Step, context: StudyContext) -> list[Measure]:
    reference = step.settings.source or ""
    return [versus("gwot_top1", reference, "GWOT top-1", "rate", True, "alignment"),
            versus("gwot_category", reference, "GWOT category matching", "rate", True, "alignment")]


def read_alignment(step, tables, meta, context, rule):
    from core.analyses.matching import category_chance

    image_set = context.image_set(step)
    n = len(image_set)
    chance_category = category_chance(image_set.metadata["category"].astype(str).to_numpy())
    top1, category = alignment_measures(step, context)
    measures = [replace(top1, chance=1 / n), replace(category, chance=chance_category)]
    matching = tables["matching"]
    chosen = chosen_layers(matching["target"], "·", rule, step)
    cells = []
    for row in matching.to_dict("records"):
        if row["target"] in chosen:
            spec, layer = chosen[row["target"]]
            cells += [cell(spec, measures[0].name, row["top-1"], layer=layer, step=step),
                      cell(spec, measures[1].name, row["category"], layer=layer, step=step)]
    return cells, measures, {}


ENTRY = register(Analysis("alignment", "Alignment", "views/alignment.py", "🔗", AlignmentSettings, clean_units, run,
                          draw, check=check, page_state=page_state, methods_rows=methods_rows, needs_images=False,
                          order=40, result_kinds=(ALIGNMENT_KIND,), open_stored=open_stored,
                         board=Board(alignment_measures, read_alignment)))
