"""Every layer of two encoders (and the toolbox's model RDMs) against human IT with a dual bootstrap: one
`evaluate_rsa` call vs rsatoolbox's `eval_dual_bootstrap` called per model in a loop.

    python bench/brain.py [--quick] [--samples 1000] [--method corr] [--baseline-models K] [--seed 0]

Data: the 92-image set's human IT RDMs (Kriegeskorte et al. 2008; 4 subjects, sessions averaged) from
../shared/data/kriegeskorte92. Models: RDMs (1 - Pearson r) of the 92 images' features from every layer of
`bundled:efficientnet_lite0` (9) and `untrained:timm:vit_small_patch16_224` (13), extracted with core.features.extract
into a temporary cache, plus the 7 model RDM files and monkey IT: 30 models. (a) ours: one `evaluate_rsa(models,
data, method, n_bootstrap=N, resample="both")` — the draws are made once and each is evaluated for all 30 models in
one vectorised pass. (b) rsatoolbox 0.3.2: `eval_dual_bootstrap(model, data, method, N=N)` for each model in a loop
(what a script per layer does). Checks that the point estimates (rsatoolbox's `eval_fixed`) agree to 1e-10.
Target: (b) / (a) >= 20. `--baseline-models K` times (b) on K models and extrapolates linearly (each call is
independent, so its cost is per model); the output says so.

`--quick` (seconds): 3 models (two file RDMs and monkey IT, no extraction), 20 samples.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from scipy.spatial.distance import pdist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.analyses.rsa import compare_rdms, condensed  # noqa: E402
from core.analyses.rsa_inference import evaluate_rsa  # noqa: E402
from core.data.neural import read_rdm_file  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "kriegeskorte92"
ENCODERS = ("bundled:efficientnet_lite0", "untrained:timm:vit_small_patch16_224")
FILES = ("model_animacy", "model_FaceBodyManmadeNatobj", "model_EVA", "model_HMAX", "model_V1", "model_Silhouette",
         "model_RADON", "mIT_674neurons")
TOLERANCE = 1e-10


def encoder_rdms() -> dict[str, np.ndarray]:
    """{f"{spec} {layer}": condensed (P,) 1 - Pearson RDM} of every layer of the two encoders on the 92 images."""
    from core.data.datasets import load_dataset
    from core.encoders.registry import describe
    from core.features.extract import extract
    from core.features.store import FeatureStore

    rdms = {}
    with tempfile.TemporaryDirectory() as cache:
        image_set = load_dataset(f"manifest:{DATA / 'stimuli.csv'}", Path(cache))
        for spec in ENCODERS:
            start = time.perf_counter()
            features = extract(image_set, describe(spec), "all", FeatureStore(Path(cache) / "features"),
                               device="cpu", batch_size=32, num_workers=0)
            print(f"extracted {len(features)} layers of {spec} in {time.perf_counter() - start:.1f} s")
            for layer, feature_set in features.items():
                rdms[f"{spec} {layer}"] = pdist(np.asarray(feature_set.features, float), "correlation")
    return rdms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--samples", type=int, default=None)
    parser.add_argument("--method", default="corr")
    parser.add_argument("--baseline-models", type=int, default=None, help="time rsatoolbox on this many models only")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (DATA / "rdms" / "hIT_subjects_sessions.npy").is_file():
        print(f"the 92-image data are absent ({DATA}); nothing to measure")
        return 1
    samples = args.samples or (20 if args.quick else 1000)
    human_it = read_rdm_file(DATA / "rdms" / "hIT_subjects_sessions.npy")
    data, note = condensed(human_it.rdms), f"human IT: {human_it.note}"
    files = ("model_animacy", "model_EVA", "mIT_674neurons") if args.quick else FILES
    rdms = {} if args.quick else encoder_rdms()
    rdms.update({name: condensed(read_rdm_file(DATA / "rdms" / f"{name}.npy").rdms)[0] for name in files})
    names, models = list(rdms), np.array(list(rdms.values()))
    print(f"{note}; {len(names)} models, {samples} dual-bootstrap samples, method {args.method}")

    start = time.perf_counter()
    ours = evaluate_rsa(models, data, args.method, names, n_bootstrap=samples, resample="both", seed=args.seed)
    time_ours = time.perf_counter() - start

    from importlib.metadata import version

    import rsatoolbox.inference.evaluate as rsatoolbox_evaluate
    from rsatoolbox.inference import eval_dual_bootstrap, eval_fixed
    from rsatoolbox.model import ModelFixed
    from rsatoolbox.rdm import RDMs

    rsatoolbox_evaluate.tqdm = SimpleNamespace(trange=range)  # no per-sample progress bar (nor its cost)
    rsa_data = RDMs(data)
    rsa_models = [ModelFixed(name, vector) for name, vector in zip(names, models)]
    n_timed = min(args.baseline_models or len(names), len(names))
    np.random.seed(args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fixed = eval_fixed(rsa_models, rsa_data, method=args.method)
        start = time.perf_counter()
        baseline = []
        for model in rsa_models[:n_timed]:
            baseline.append(eval_dual_bootstrap(model, rsa_data, method=args.method, N=samples))
        time_baseline = (time.perf_counter() - start) * len(names) / n_timed
    point_gap = float(np.abs(fixed.evaluations[0].mean(axis=-1) - ours.mean).max())
    check = float(np.abs(compare_rdms(models, data, args.method) - fixed.evaluations[0]).max())
    sd_ours = np.nanstd(ours.samples[:, :n_timed], axis=0)
    sd_base = np.array([np.nanstd(r.evaluations[:, 0, 0, 0, 0]) for r in baseline])
    print(f"rsatoolbox {version('rsatoolbox')}")
    print(f"(a) ours, one evaluate_rsa call:          {time_ours:8.2f} s")
    extrapolated = f" (timed on {n_timed} models, extrapolated to {len(names)})" if n_timed < len(names) else ""
    print(f"(b) eval_dual_bootstrap per model loop:   {time_baseline:8.2f} s{extrapolated}")
    print(f"speed-up rsatoolbox / ours: {time_baseline / time_ours:.1f}x (target >= 20x)")
    print(f"point estimates agree: max |ours - eval_fixed| = {point_gap:.2e} (tolerance {TOLERANCE}); "
          f"per subject {check:.2e}")
    print(f"bootstrap SD of the both-resampled evaluations, ours / rsatoolbox (different draws): "
          f"median ratio {np.median(sd_ours / sd_base):.3f}")
    print(f"noise ceiling lower {ours.ceiling.lower:.4f} upper {ours.ceiling.upper:.4f}")
    for k in np.argsort(-ours.mean)[:6]:
        print(f"  {names[k]:<44} {ours.mean[k]:.4f} [{ours.ci_low[k]:.4f}, {ours.ci_high[k]:.4f}]  "
              f"p(>0) {ours.p_vs_zero[k]:.3g}  p(vs lower) {ours.p_vs_lower_ceiling[k]:.3g}")
    return 0 if point_gap < TOLERANCE and check < TOLERANCE else 1


if __name__ == "__main__":
    raise SystemExit(main())
