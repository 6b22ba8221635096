"""Objective lab: train one backbone under different pretraining objectives, then analyse every run anywhere."""
import streamlit as st

from core.features.extract import resolve_device
from core.lab.runs import TrainConfig, finished_run_ids, plan_training, run_id_of_job, train_job_key
from core.lab.train import train
from core.paths import cache_root
from core.studies import analyses
from core.studies.analyses.lab import timm_architecture, train_configs
from views.ui import resources
from views.ui.background import follow_jobs, job_outcomes, job_progress, session_id, submit_job
from views.ui.lab_dynamics import dynamics_section
from views.ui.lab_runs import JOBS, SWITCH_KEY, loss_curves, runs_panel, train_help, train_label
from views.ui.settings import in_url, setting_input, settings_from
from views.ui.sidebar import page_start, switch_page

OBJECTIVE_LABELS = {"supervised": "supervised (cross-entropy)", "simclr": "SimCLR (NT-Xent, 2 views)",
                    "clamp": "CLAMP (manifold packing, m views)", "language": "language-aligned (CLIP-style)"}

selection, image_set = page_start(
    "Objective lab",
    "Hold the architecture, data, augmentations, optimiser and budget fixed and change only the pretraining "
    "loss; every finished run becomes an encoder `lab:<run id>` that every page can analyse.")
if image_set.metadata["category"].nunique() < 2:
    st.info(f"{image_set.name} has one category: the supervised objective and the captions need categories. "
            "Pick a dataset with at least two.")
    st.stop()

LAB = analyses.get("lab")
controls = st.columns([3, 2, 1, 1])
objectives = setting_input(LAB, "objectives", "Objectives", container=controls[0], format_func=OBJECTIVE_LABELS.get)
backbone = controls[1].text_input("Backbone (timm)", **in_url("lab.backbone", value=LAB.settings.default("backbone")),
                                  help=LAB.settings.describe("backbone").help).strip()
image_size = setting_input(LAB, "image_size", "Image size", container=controls[2], step=16)
epochs = setting_input(LAB, "epochs", "Epochs", container=controls[3])
more = st.columns(6)
batch_size = setting_input(LAB, "batch_size", "Batch size", container=more[0], step=8)
views = setting_input(LAB, "views", "Views (CLAMP m)", container=more[1])
seed = setting_input(LAB, "seed", "Seed", container=more[2])
max_images = setting_input(LAB, "max_images", "Images (0 = all)", container=more[3])
probe_per_class = setting_input(LAB, "probe_per_class", "Probe images per class", container=more[4])
probe_views = setting_input(LAB, "probe_views", "Probe views", container=more[5])
with st.expander("Optimiser and loss settings"):
    tuning = st.columns(5)
    optimizer = setting_input(LAB, "optimizer", "Optimiser", container=tuning[0])
    lr = setting_input(LAB, "lr", "Learning rate", container=tuning[1], format="%.0e")
    weight_decay = setting_input(LAB, "weight_decay", "Weight decay", container=tuning[2], format="%.0e")
    temperature = setting_input(LAB, "temperature", "Temperature τ", container=tuning[3])
    radius_scale = setting_input(LAB, "radius_scale", "CLAMP r_s", container=tuning[4])

try:
    timm_architecture(backbone)
except ValueError as error:
    st.error(f"Backbone {backbone!r} {error}.")
    st.stop()
settings = settings_from(LAB, objectives=objectives, backbone=backbone, image_size=image_size, epochs=epochs,
                         batch_size=batch_size, views=views, seed=seed, max_images=max_images,
                         probe_per_class=probe_per_class, probe_views=probe_views, optimizer=optimizer, lr=lr,
                         weight_decay=weight_decay, temperature=temperature, radius_scale=radius_scale)
configs = train_configs(settings, selection.dataset_spec)
cache = cache_root()
registry = resources.job_registry()
# Every session shows the progress of every training run of this server, whichever tab started it.
follow_jobs(JOBS, [job.key for job in registry.statuses() if run_id_of_job(job.key)])
plan = plan_training(configs.values(), finished_run_ids(cache), registry.statuses(), session_id())


def start_training(configs: list[TrainConfig]) -> None:
    """Submit a job per run; a run that trains already for another session is joined (one job per run)."""
    device = str(resolve_device(selection.device))
    for config in configs:
        submit_job(JOBS, train_job_key(config.run_id), f"{config.objective} · {config.run_id}",
                   lambda report, config=config: train(config, cache, device=device, progress=report))


st.button(train_label(plan), type="primary", disabled=not (plan.start or plan.join), on_click=start_training,
          args=(plan.start + plan.join,), help=train_help(plan))
job_progress(JOBS, "images", "Stops after the current step; the last finished epoch is kept and Train resumes from it.")
job_outcomes([train_job_key(config.run_id) for config in configs.values()],
             "cancelled; Train resumes from the last finished epoch.")

st.subheader("Training loss")
loss_curves(image_set, configs, cache)

st.subheader("Learning dynamics")
dynamics_section(image_set, configs, cache)

st.subheader("Runs")
runs_panel(selection, image_set, cache, configs.values())
if st.session_state.get(SWITCH_KEY):
    switch_page(st.session_state.pop(SWITCH_KEY))
