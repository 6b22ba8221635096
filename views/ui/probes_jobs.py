"""The Layer probes page's background runs: one job per encoder that extracts its missing layers, then fits, with
the button that says what it will do, the estimate and one progress bar per encoder."""
from __future__ import annotations

from typing import Sequence

import streamlit as st

from core.analyses.probe_runs import ProbeRun, probe_run, run_probe_curves, run_rate_key
from core.analyses.probes import ProbeSettings
from core.data.datasets import ImageSet
from core.jobs import ACTIVE, job_key
from views.ui import resources
from views.ui.background import NO_ESTIMATE, estimate_text, follow_jobs, job_outcomes, job_progress, submit_job
from views.ui.sidebar import Selection

JOBS = "probe_jobs"  # the session's job list of this page
NAMED_IN_LABEL = 3  # encoders the button names one by one; beyond, it sums them up (the caption lists each)


def compute_label(runs: Sequence[ProbeRun]) -> str:
    """"Compute probe curves: extract all 9 layers of a, then 18 fits; 2 fits of b" (summed up past a few)."""
    if len(runs) <= NAMED_IN_LABEL:
        return "Compute probe curves: " + "; ".join(run.describe() for run in runs)
    extracting = sum(bool(run.missing_layers) for run in runs)
    return (f"Compute probe curves of {len(runs)} encoders: "
            + (f"extract {extracting} of them, then " if extracting else "")
            + f"{sum(len(run.fits) for run in runs)} fits")


def fitted_encoders(image_set: ImageSet, selection: Selection, encoders: Sequence[str], settings: ProbeSettings,
                    probes: Sequence[str], *, button_key: str) -> list[str]:
    """The encoders of `encoders` whose every layer is extracted and every fit cached; for the others, the "Compute
    probe curves" button (key `button_key`), the estimate and the jobs' progress. Stops the page while none can be
    drawn."""
    store, results = resources.feature_store(), resources.result_cache()
    runs = {spec: probe_run(image_set, resources.encoder_info(spec), store, settings=settings, probes=probes,
                            pooling=selection.pooling_of(spec), results=results) for spec in encoders}
    todo = [spec for spec in encoders if runs[spec].pending]
    if not todo:
        return list(encoders)

    def probe_job_key(spec: str) -> str:
        return job_key("probes", image_set.fingerprint, spec, selection.pooling_of(spec), repr(settings),
                       ",".join(probes))

    def rate_key(spec: str) -> str:
        return run_rate_key(image_set, runs[spec], settings, selection.pooling_of(spec), selection.device)

    def start_runs(specs: list[str]) -> None:
        """Button callback: one background job per encoder, so a long run survives reruns and page changes."""
        for spec in specs:
            def work(report, spec=spec, encoder=resources.encoder_info(spec)):
                return run_probe_curves(image_set, encoder, store, settings=settings, probes=probes,
                                        pooling=selection.pooling_of(spec), device=selection.device,
                                        batch_size=selection.batch_size, results=results, progress=report)

            submit_job(JOBS, probe_job_key(spec), spec, work, rate_key=rate_key(spec))

    follow_jobs(JOBS, map(probe_job_key, todo))
    registry = resources.job_registry()
    idle = [spec for spec in todo
            if (status := registry.status(probe_job_key(spec))) is None or status.state not in ACTIVE]
    action = st.columns([3, 2], vertical_alignment="center")
    action[0].button(compute_label([runs[spec] for spec in todo]), type="primary", disabled=not idle,
                     on_click=start_runs, args=(idle,), key=button_key,
                     help="One press does everything: a layer not extracted yet is extracted first (all layers of an "
                          "encoder in one forward pass per batch, at the sidebar's pooling, device and batch size), "
                          "then each fit runs (one fit = one layer × one probe: the affect ridge gives valence and "
                          "arousal together; the category probe is a second fit), fold by fold of its "
                          "cross-validation. One job per encoder in the background, with one progress line that "
                          "counts the images extracted, then the folds fitted (each stage with its own ETA), so "
                          "other widgets and pages stay usable; extracted rows and finished fits are cached, so a "
                          "rerun, a cancelled run or an added encoder does only what is missing.")
    action[1].caption(_estimates(runs, todo, rate_key))
    job_progress(JOBS, "steps", "Stops after the current batch or fold; what was extracted and the fits finished so "
                                "far stay cached and the next run does only the rest.")
    job_outcomes(map(probe_job_key, todo),
                 "cancelled. What was extracted and fitted so far is kept; Compute probe curves resumes.")
    drawn = [spec for spec in encoders if spec not in todo]
    if not drawn:
        st.info("Press **Compute probe curves**: it extracts what is missing and fits the probes at every layer."
                if idle else "The curves appear here when the runs finish; other widgets and pages stay usable "
                             "meanwhile.")
        st.stop()
    st.caption(f"Not drawn until computed: {', '.join(todo)}.")
    return drawn


def _estimates(runs: dict[str, ProbeRun], todo: Sequence[str], rate_key) -> str:
    """"Estimate — a: about 20 s (…); …" from each run's last measured rate per fold (with an extraction, its whole
    time per fold; per image for an extraction alone); else say that no rate is known yet."""
    estimates = [f"{spec}: {text}" for spec in todo
                 if (text := estimate_text(rate_key(spec), runs[spec].n_folds or runs[spec].n_images,
                                           "folds" if runs[spec].fits else "images"))]
    return "Estimate — " + "; ".join(estimates) if estimates else NO_ESTIMATE
