"""Brain and behaviour (docs/science.md §10): every encoder layer, the dataset's model RDMs and its other RDM groups
as models of a reference group's per-subject RDMs, with `core.analyses.rsa_inference.evaluate_rsa`'s inference.

Plain functions over arrays: `candidate_models` gathers the models (condensed RDMs with what each is), `evaluate`
runs one `evaluate_rsa` per reference group and comparator, and `model_table` / `ceiling_table` / `pairwise_table` / `layer_curves`
turn the evaluations into the tables a study step stores and the Brain page shows; `best_layer_table` picks each
encoder's layer on held-out stimuli (docs/science.md §12), never the best layer on the same stimuli.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from core.analyses.layer_choice import held_out_layer
from core.analyses.rdm import rdm
from core.analyses.rsa import compare_rdms, condensed
from core.analyses.rsa_inference import RsaEvaluation, evaluate_rsa
from core.data.neural import RdmReference
from core.progress import Report

LAYER, FILE, GROUP = "encoder layer", "model RDM file", "RDM group"
SIGNIFICANCE = 0.05  # the level of the markers (below the lower ceiling, pairwise differences after FDR)


@dataclass(frozen=True)
class Candidate:
    """One model: its name, what it is (LAYER / FILE / GROUP), its condensed RDM (P,) and, for a layer, where."""

    name: str
    kind: str
    rdm: np.ndarray
    encoder: str = ""
    layer: str = ""
    depth: float = float("nan")


def group_label(name: str) -> str:
    """A dataset's RDM group (or model RDM file) as a model name: `rdm · <name>` (as on the Alignment page)."""
    return f"rdm · {name}"


def layer_candidates(features: Mapping[tuple[str, str], np.ndarray], layer_order: Mapping[str, Sequence[str]],
                     metric: str = "correlation") -> list[Candidate]:
    """Each (spec, layer)'s (N, d) features as a model: its RDM under `metric` (float64), depth 0..1 within the
    encoder's `layer_order`."""
    found = []
    for (spec, layer), array in features.items():
        names = list(layer_order[spec])
        matrix = rdm(np.asarray(array, dtype=np.float64), metric, dtype=np.float64)
        found.append(Candidate(f"{spec} · {layer}", LAYER, condensed(matrix[None])[0], spec, layer,
                               names.index(layer) / max(len(names) - 1, 1)))
    return found


def rdm_candidates(groups: Sequence[RdmReference], models: Sequence[RdmReference],
                   chosen: Sequence[str] | None = None) -> list[Candidate]:
    """The dataset's model RDM files and RDM groups as models (each group by its subjects' mean RDM); `chosen`
    (their `rdm · <name>` labels) keeps those only."""
    found = [Candidate(group_label(item.name), FILE, condensed(item.mean[None])[0]) for item in models]
    found += [Candidate(group_label(item.name), GROUP, condensed(item.mean[None])[0]) for item in groups]
    return [item for item in found if chosen is None or item.name in chosen]


@dataclass(frozen=True)
class BrainResult:
    """Models against each reference group: one `RsaEvaluation` per group and comparator, and the candidates."""

    candidates: tuple[Candidate, ...]
    evaluations: Mapping[tuple[str, str], RsaEvaluation]  # (reference group name, comparator) -> its evaluation
    references: Mapping[str, RdmReference]


def evaluate(candidates: Sequence[Candidate], references: Sequence[RdmReference],
             methods: str | Sequence[str] = "corr", n_bootstrap: int = 0, resample: str = "both", seed: int = 0,
             progress: Report | None = None) -> BrainResult:
    """Every candidate against each reference group's subjects (a group is never its own model), by each comparator
    of `methods` (the same seed: every comparator sees the same resamples)."""
    methods = (methods,) if isinstance(methods, str) else tuple(methods)
    evaluations = {}
    runs = [(reference, method) for reference in references for method in methods]
    for index, (reference, method) in enumerate(runs):
        own = group_label(reference.name)
        models = [item for item in candidates if item.name != own]
        if not models:
            continue
        stage = f"{reference.name}{f' · {method}' if len(methods) > 1 else ''} ({index + 1}/{len(runs)})"
        evaluations[reference.name, method] = evaluate_rsa(
            np.stack([item.rdm for item in models]), condensed(reference.rdms), method,
            [item.name for item in models], n_bootstrap, resample, seed,
            progress=None if progress is None else _staged(progress, stage))
    return BrainResult(tuple(candidates), evaluations, {item.name: item for item in references})


def _staged(progress: Report, stage: str) -> Report:
    """`progress` with each report's message and stage naming the reference group (a new stage: a new count and
    rate)."""
    return lambda report: progress(replace(report, message=f"{stage}: {report.message}", stage=stage))


def model_table(result: BrainResult) -> pd.DataFrame:
    """One row per model × reference: kind, encoder, layer, depth, method, mean, 95% CI, p vs 0, p vs the lower
    ceiling, the ceiling's bounds, the ceiling-normalised mean (mean / lower bound) and `below_lower_ceiling`
    (p < 0.05 and the mean under the lower bound)."""
    by_name = {item.name: item for item in result.candidates}
    records = []
    for (reference, _), evaluation in result.evaluations.items():
        normalised = evaluation.ceiling_normalised
        for m, name in enumerate(evaluation.model_names):
            item = by_name[name]
            records.append({
                "reference": reference, "model": name, "kind": item.kind, "encoder": item.encoder,
                "layer": item.layer, "depth": item.depth, "method": evaluation.method,
                "mean": float(evaluation.mean[m]), "ci_low": float(evaluation.ci_low[m]),
                "ci_high": float(evaluation.ci_high[m]), "p_vs_zero": float(evaluation.p_vs_zero[m]),
                "p_vs_lower_ceiling": float(evaluation.p_vs_lower_ceiling[m]),
                "ceiling_lower": evaluation.ceiling.lower, "ceiling_upper": evaluation.ceiling.upper,
                "ceiling_normalised": float(normalised[m]),
                "below_lower_ceiling": bool(evaluation.p_vs_lower_ceiling[m] < SIGNIFICANCE
                                            and evaluation.mean[m] < evaluation.ceiling.lower),
                "resample": evaluation.resample, "n_bootstrap": evaluation.n_bootstrap,
                "n_subjects": evaluation.per_subject.shape[1]})
    return pd.DataFrame(records)


def ceiling_table(result: BrainResult) -> pd.DataFrame:
    """reference, method, lower, upper, lower / upper 95% CI over the bootstrap (NaN without), subjects, note."""
    records = []
    for (reference, _), evaluation in result.evaluations.items():
        samples = evaluation.ceiling_samples
        ok = samples[~np.isnan(samples).any(axis=1)] if len(samples) else samples
        low = np.quantile(ok, [0.025, 0.975], axis=0) if len(ok) else np.full((2, 2), np.nan)
        group = result.references[reference]
        records.append({"reference": reference, "method": evaluation.method, "lower": evaluation.ceiling.lower,
                        "upper": evaluation.ceiling.upper, "lower_ci_low": float(low[0, 0]),
                        "lower_ci_high": float(low[1, 0]), "upper_ci_low": float(low[0, 1]),
                        "upper_ci_high": float(low[1, 1]), "n_subjects": group.n_subjects, "note": group.note,
                        "warnings": "; ".join(evaluation.warnings)})
    return pd.DataFrame(records)


def pairwise_table(result: BrainResult) -> pd.DataFrame:
    """reference, method, model_a, model_b, difference (a − b), its 95% CI, p, p_fdr (Benjamini-Hochberg over the
    pairs of one reference and comparator), p_bonferroni."""
    return pd.DataFrame([{"reference": reference, "method": method, "model_a": pair.model_a, "model_b": pair.model_b,
                          "difference": pair.difference, "ci_low": pair.ci_low, "ci_high": pair.ci_high,
                          "p": pair.p, "p_fdr": pair.p_fdr, "p_bonferroni": pair.p_bonferroni}
                         for (reference, method), evaluation in result.evaluations.items()
                         for pair in evaluation.pairwise],
                        columns=["reference", "method", "model_a", "model_b", "difference", "ci_low", "ci_high", "p",
                                 "p_fdr", "p_bonferroni"])


def per_subject_table(result: BrainResult) -> pd.DataFrame:
    """reference, method, model, subject, value: each model against each subject's RDM."""
    return pd.DataFrame([{"reference": reference, "method": method, "model": name, "subject": subject,
                          "value": float(evaluation.per_subject[m, s])}
                         for (reference, method), evaluation in result.evaluations.items()
                         for m, name in enumerate(evaluation.model_names)
                         for s, subject in enumerate(result.references[reference].subjects)])


def layer_curves(models: pd.DataFrame, reference: str, method: str | None = None) -> pd.DataFrame:
    """The encoder layers' rows of `model_table` against `reference` (by comparator `method`; None: the table holds
    one) in depth_curves_figure's columns: encoder, layer, depth, value (the mean), ci_low, ci_high."""
    rows = models[(models["reference"] == reference) & (models["kind"] == LAYER)
                  & ((models["method"] == method) if method is not None else True)]
    return rows[["encoder", "layer", "depth", "mean", "ci_low", "ci_high"]].rename(columns={"mean": "value"}) \
        .reset_index(drop=True)


def best_layer_table(result: BrainResult, n_splits: int = 10, seed: int = 0) -> pd.DataFrame:
    """reference, method, encoder, layer, score, score_sd, in_sample_layer, in_sample_score, n_items, rule: per
    reference group × comparator × encoder, the layer chosen on a random half of the stimuli and scored (the mean
    over subjects of the comparator on the sub-RDMs) on the other half, over `n_splits` seeded splits."""
    by_name = {item.name: item for item in result.candidates}
    records = []
    for (reference, method), evaluation in result.evaluations.items():
        data = result.references[reference].rdms  # (S, N, N)
        layers: dict[str, dict[str, np.ndarray]] = {}
        for name in evaluation.model_names:
            item = by_name[name]
            if item.kind == LAYER:
                layers.setdefault(item.encoder, {})[item.layer] = item.rdm
        for encoder, rdms in layers.items():
            def score(layer: str, items: np.ndarray, rdms=rdms) -> float:
                model = _square(rdms[layer])[np.ix_(items, items)]
                return float(compare_rdms(condensed(model[None]), condensed(data[:, items][:, :, items]),
                                          method).mean())

            choice = held_out_layer(score, list(rdms), data.shape[1], n_splits=n_splits, seed=seed)
            records.append({"reference": reference, "method": method, "encoder": encoder, "layer": choice.layer,
                            "score": choice.score, "score_sd": float(np.std(choice.scores, ddof=1)),
                            "in_sample_layer": choice.in_sample_best, "in_sample_score": choice.in_sample_score,
                            "n_items": data.shape[1], "rule": choice.rule})
    return pd.DataFrame(records, columns=["reference", "method", "encoder", "layer", "score", "score_sd",
                                          "in_sample_layer", "in_sample_score", "n_items", "rule"])


def _square(vector: np.ndarray) -> np.ndarray:
    """A condensed RDM (P,) as its (N, N) matrix (zero diagonal)."""
    from scipy.spatial.distance import squareform

    return squareform(np.asarray(vector, dtype=np.float64), checks=False)


def second_order_mds(rdms: Mapping[str, np.ndarray], method: str = "corr", seed: int = 0) -> pd.DataFrame:
    """name, x, y: metric MDS (scikit-learn, precomputed) of the condensed RDMs `rdms` (name -> (P,)) on
    1 − comparator between every two of them: RDMs that rank the pairs alike lie close."""
    from sklearn.manifold import MDS

    from core.analyses.rsa import compare_rdms

    names = list(rdms)
    stack = np.stack([np.asarray(rdms[name], float) for name in names])
    similarity = compare_rdms(stack, stack, method)
    distance = 1 - (similarity + similarity.T) / 2
    np.fill_diagonal(distance, 0)
    distance = np.maximum(distance, 0)
    if len(names) < 3:
        xy = np.c_[np.r_[0.0, distance[0, 1:]], np.zeros(len(names))][:len(names)]
    else:
        xy = MDS(n_components=2, metric="precomputed", init="classical_mds", n_init=1,
                 random_state=seed).fit_transform(distance)
    return pd.DataFrame({"name": names, "x": xy[:, 0], "y": xy[:, 1]})


def mds_table(result: BrainResult, seed: int = 0) -> pd.DataFrame:
    """reference, method, name, kind, x, y: per reference group and comparator, the second-order MDS of its models'
    RDMs and its subjects' RDMs (kind "subject", named `<group> · <subject>`) under that comparator."""
    by_name = {item.name: item for item in result.candidates}
    frames = []
    for (reference, method), evaluation in result.evaluations.items():
        group = result.references[reference]
        rdms = {name: by_name[name].rdm for name in evaluation.model_names}
        subjects = {f"{reference} · {subject}": vector for subject, vector in zip(group.subjects,
                                                                                    condensed(group.rdms))}
        points = second_order_mds(rdms | subjects, evaluation.method, seed)
        kinds = {**{name: by_name[name].kind for name in rdms}, **{name: "subject" for name in subjects}}
        frames.append(points.assign(reference=reference, method=method, kind=points["name"].map(kinds)))
    columns = ["reference", "method", "name", "kind", "x", "y"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
