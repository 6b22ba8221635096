"""The Layer probes page's background fits: one job per encoder, with its button, estimate and progress."""
from __future__ import annotations

from typing import Mapping, Sequence

import streamlit as st

from core.analyses.probes import ProbeSettings, encoder_curves, fit_rate_key, pending_fits
from core.data.datasets import ImageSet
from core.jobs import ACTIVE, job_key
from views.ui import resources
from views.ui.background import estimates_caption, follow_jobs, job_outcomes, job_progress, submit_job

JOBS = "probe_jobs"  # the session's job list of this page


def fitted_encoders(image_set: ImageSet, ready: Sequence[str], pooling: Mapping[str, str], settings: ProbeSettings,
                    probes: Sequence[str], *, button_key: str) -> list[str]:
    """The encoders of `ready` whose every fit is cached; for the others, the "Compute probe curves" button (key
    `button_key`), the estimate and the jobs' progress. Stops the page while none can be drawn."""
    results = resources.result_cache()
    pending = {spec: pending_fits(image_set, resources.encoder_info(spec), settings=settings, probes=probes,
                                  pooling=pooling[spec], results=results) for spec in ready}
    todo = [spec for spec in ready if pending[spec]]
    if not todo:
        return list(ready)

    def probe_job_key(spec: str) -> str:
        return job_key("probes", image_set.fingerprint, spec, pooling[spec], repr(settings), ",".join(probes))

    def rate_key(spec: str) -> str:
        return fit_rate_key(image_set, spec, pending[spec], settings, pooling[spec])

    def start_probes(specs: list[str]) -> None:
        """Button callback: one background job per encoder, so a long fit survives reruns and page changes."""
        store = resources.feature_store()
        for spec in specs:
            def work(report, spec=spec, encoder=resources.encoder_info(spec)):
                return encoder_curves(image_set, encoder, store, settings=settings, probes=probes,
                                      pooling=pooling[spec], results=results, progress=report)

            submit_job(JOBS, probe_job_key(spec), spec, work, rate_key=rate_key(spec))

    follow_jobs(JOBS, map(probe_job_key, todo))
    registry = resources.job_registry()
    idle = [spec for spec in todo
            if (status := registry.status(probe_job_key(spec))) is None or status.state not in ACTIVE]
    n_fits = sum(len(pending[spec]) for spec in todo)
    action = st.columns([2, 3], vertical_alignment="center")
    action[0].button(f"Compute probe curves ({n_fits} fits, {len(todo)} encoder{'s' * (len(todo) > 1)})",
                     type="primary", disabled=not idle, on_click=start_probes, args=(idle,), key=button_key,
                     help="One fit = one layer × one probe (the affect ridge gives valence and arousal together; the "
                          "category probe is a second fit). Runs in the background with a progress bar, so other "
                          "widgets and pages stay usable; every finished layer is cached, so a rerun, a cancelled "
                          "run or an added encoder fits only what is missing.")
    action[1].caption(estimates_caption({spec: (rate_key(spec), len(pending[spec])) for spec in todo}, "fits"))
    job_progress(JOBS, "fits", "Stops after the current fit; the layers fitted so far stay cached and the next run "
                               "fits only the rest.")
    job_outcomes(map(probe_job_key, todo),
                 "cancelled. The layers fitted so far are kept; Compute probe curves resumes.")
    drawn = [spec for spec in ready if spec not in todo]
    if not drawn:
        st.info("Press **Compute probe curves** to fit the probes at every layer." if idle else
                "The curves appear here when the fits finish; other widgets and pages stay usable meanwhile.")
        st.stop()
    st.caption(f"Not drawn until computed: {', '.join(todo)}.")
    return drawn
