"""Objective lab: train one backbone under different pretraining objectives, then analyse every run anywhere."""
import streamlit as st
import timm

from core.features.extract import resolve_device
from core.lab.runs import OBJECTIVES, OPTIMIZERS, TrainConfig, finished_run_ids, plan_training, run_id_of_job, \
    train_job_key
from core.lab.train import train
from core.paths import cache_root
from views.ui import resources
from views.ui.background import follow_jobs, job_outcomes, job_progress, session_id, submit_job
from views.ui.lab_runs import JOBS, SWITCH_KEY, loss_curves, runs_panel, train_help, train_label
from views.ui.settings import in_url
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

controls = st.columns([3, 2, 1, 1])
objectives = controls[0].multiselect("Objectives", OBJECTIVES, **in_url("lab.objectives", default=list(OBJECTIVES)),
                                     format_func=OBJECTIVE_LABELS.get,
                                     help="Each is trained separately from the same initial weights (seed), on the "
                                          "same images and augmented views, for the same epochs.")
backbone = controls[1].text_input("Backbone (timm)", **in_url("lab.backbone", value="resnet18"),
                                  help="Any timm architecture, randomly initialised. resnet18 at 64 px trains on a CPU "
                                       "in minutes; ViTs want a GPU.").strip()
image_size = controls[2].number_input("Image size", 32, 384, step=16, **in_url("lab.image_size", value=64),
                                      help="Training resolution (random resized crops of this size); the run's "
                                           "encoder preprocesses at the same size.")
epochs = controls[3].number_input("Epochs", 1, 1000, **in_url("lab.epochs", value=30),
                                  help="Passes over the images.")
more = st.columns(4)
batch_size = more[0].number_input("Batch size", 4, 4096, step=8, **in_url("lab.batch_size", value=64),
                                  help="Images per step (each with its views).")
views = more[1].number_input("Views (CLAMP m)", 2, 32, **in_url("lab.views", value=4),
                             help="Views per image for CLAMP; SimCLR always uses 2, supervised and language 1.")
seed = more[2].number_input("Seed", 0, 2**31 - 1, **in_url("lab.seed", value=0),
                            help="Initial weights, image order and augmentations; the same seed gives the same run.")
max_images = more[3].number_input("Images (0 = all)", 0, 10_000_000, **in_url("lab.max_images", value=0),
                                  help="Train on a random subset of this many images (seeded); 0 uses the whole set.")
with st.expander("Optimiser and loss settings"):
    tuning = st.columns(5)
    optimizer = tuning[0].selectbox("Optimiser", OPTIMIZERS, **in_url("lab.optimizer"),
                                    help="AdamW, or LARS (timm's) as in SimCLR; cosine schedule to 0 either way.")
    lr = tuning[1].number_input("Learning rate", 1e-6, 10.0, format="%.0e", **in_url("lab.lr", value=2e-3),
                                help="Peak learning rate of the cosine schedule.")
    weight_decay = tuning[2].number_input("Weight decay", 0.0, 1.0, format="%.0e",
                                          **in_url("lab.weight_decay", value=1e-4),
                                          help="Decoupled (AdamW) or LARS weight decay.")
    temperature = tuning[3].number_input("Temperature τ", 0.01, 5.0, **in_url("lab.temperature", value=0.2),
                                         help="Softmax temperature of SimCLR's NT-Xent and the language objective.")
    radius_scale = tuning[4].number_input("CLAMP r_s", 0.5, 50.0, **in_url("lab.radius_scale", value=7.0),
                                          help="CLAMP's radius scale (7 for CIFAR-sized images, 8.5 for ImageNet).")

if backbone not in timm.list_models():
    st.error(f"timm has no architecture {backbone!r}; see timm.list_models() (e.g. resnet18, resnet50, "
             "vit_tiny_patch16_224).")
    st.stop()
configs = {objective: TrainConfig(objective, dataset=selection.dataset_spec, backbone=backbone,
                                  image_size=int(image_size), epochs=int(epochs), batch_size=int(batch_size),
                                  views=int(views), temperature=float(temperature), radius_scale=float(radius_scale),
                                  optimizer=optimizer, lr=float(lr), weight_decay=float(weight_decay), seed=int(seed),
                                  max_images=int(max_images)) for objective in objectives}
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

st.subheader("Runs")
runs_panel(selection, image_set, cache, configs.values())
if st.session_state.get(SWITCH_KEY):
    switch_page(st.session_state.pop(SWITCH_KEY))
