"""Objective lab: train one backbone under different pretraining objectives, then analyse every run anywhere."""
from dataclasses import asdict

import pandas as pd
import streamlit as st
import timm

from core.encoders.specs import parse_spec
from core.features.extract import layer_statuses, resolve_device
from core.figures.lab import loss_curves_figure, loss_curves_table
from core.lab.runs import OBJECTIVES, OPTIMIZERS, TrainConfig, delete_run, finished_run_ids, load_run
from core.lab.train import train
from core.paths import cache_root
from core.provenance import Provenance
from views.ui import resources
from views.ui.background import has_jobs, job_outcomes, job_progress, submit_job
from views.ui.export_row import figure_block
from views.ui.extraction import start_extraction
from views.ui.sidebar import page_start, set_choice

OBJECTIVE_LABELS = {"supervised": "supervised (cross-entropy)", "simclr": "SimCLR (NT-Xent, 2 views)",
                    "clamp": "CLAMP (manifold packing, m views)", "language": "language-aligned (CLIP-style)"}
PAGES = {"Manifolds": "views/manifolds.py", "Affect": "views/affect.py", "Alignment": "views/alignment.py",
         "Inductive bias": "views/inductive_bias.py"}
# Pages whose figures use the cached clean features; Manifolds and Inductive bias extract their own views.
NEEDS_FEATURES = ("Affect", "Alignment")

selection, image_set = page_start(
    "Objective lab",
    "Hold the architecture, data, augmentations, optimiser and budget fixed and change only the pretraining "
    "loss; every finished run becomes an encoder `lab:<run id>` that every page can analyse.")
if image_set.metadata["category"].nunique() < 2:
    st.info(f"{image_set.name} has one category: the supervised objective and the captions need categories. "
            "Pick a dataset with at least two.")
    st.stop()

controls = st.columns([3, 2, 1, 1])
objectives = controls[0].multiselect("Objectives", OBJECTIVES, default=list(OBJECTIVES), key="lab_objectives", persist_state="session",
                                     format_func=OBJECTIVE_LABELS.get,
                                     help="Each is trained separately from the same initial weights (seed), on the "
                                          "same images and augmented views, for the same epochs.")
backbone = controls[1].text_input("Backbone (timm)", "resnet18", key="lab_backbone", persist_state="session",
                                  help="Any timm architecture, randomly initialised. resnet18 at 64 px trains on a CPU "
                                       "in minutes; ViTs want a GPU.").strip()
image_size = controls[2].number_input("Image size", 32, 384, 64, step=16, key="lab_image_size", persist_state="session",
                                      help="Training resolution (random resized crops of this size); the run's "
                                           "encoder preprocesses at the same size.")
epochs = controls[3].number_input("Epochs", 1, 1000, 30, key="lab_epochs", persist_state="session", help="Passes over the images.")
more = st.columns(4)
batch_size = more[0].number_input("Batch size", 4, 4096, 64, step=8, key="lab_batch_size", persist_state="session",
                                  help="Images per step (each with its views).")
views = more[1].number_input("Views (CLAMP m)", 2, 32, 4, key="lab_views", persist_state="session",
                             help="Views per image for CLAMP; SimCLR always uses 2, supervised and language 1.")
seed = more[2].number_input("Seed", 0, 2**31 - 1, 0, key="lab_seed", persist_state="session",
                            help="Initial weights, image order and augmentations; the same seed gives the same run.")
max_images = more[3].number_input("Images (0 = all)", 0, 10_000_000, 0, key="lab_max_images", persist_state="session",
                                  help="Train on a random subset of this many images (seeded); 0 uses the whole set.")
with st.expander("Optimiser and loss settings"):
    tuning = st.columns(5)
    optimizer = tuning[0].selectbox("Optimiser", OPTIMIZERS, key="lab_optimizer", persist_state="session",
                                    help="AdamW, or LARS (timm's) as in SimCLR; cosine schedule to 0 either way.")
    lr = tuning[1].number_input("Learning rate", 1e-6, 10.0, 2e-3, format="%.0e", key="lab_lr", persist_state="session",
                                help="Peak learning rate of the cosine schedule.")
    weight_decay = tuning[2].number_input("Weight decay", 0.0, 1.0, 1e-4, format="%.0e", key="lab_weight_decay", persist_state="session",
                                          help="Decoupled (AdamW) or LARS weight decay.")
    temperature = tuning[3].number_input("Temperature τ", 0.01, 5.0, 0.2, key="lab_temperature", persist_state="session",
                                         help="Softmax temperature of SimCLR's NT-Xent and the language objective.")
    radius_scale = tuning[4].number_input("CLAMP r_s", 0.5, 50.0, 7.0, key="lab_radius_scale", persist_state="session",
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
finished = set(finished_run_ids(cache))
todo = [config for config in configs.values() if config.run_id not in finished]


def start_training() -> None:
    device = str(resolve_device(selection.device))
    for config in todo:
        submit_job("lab_jobs", f"lab|{config.run_id}", f"{config.objective} · {config.run_id}",
                   lambda report, config=config: train(config, cache, device=device, progress=report))


st.button(f"Train {len(todo)} objective(s)" if todo else "All selected objectives are trained", type="primary",
          disabled=not todo or has_jobs("lab_jobs"), on_click=start_training,
          help="One run per objective, one after another, in the background: changing widgets or pages does not "
               "stop them. A run stopped midway resumes from its last finished epoch.")
job_progress("lab_jobs", "images", "Stops after the current step; the last finished epoch is kept and Train "
                                   "resumes from it.")
job_outcomes([f"lab|{config.run_id}" for config in todo], "cancelled; Train resumes from the last finished epoch.")


@st.fragment(run_every=2.0 if has_jobs("lab_jobs") else None)
def loss_curves() -> None:
    """Loss curves of the selected objectives' runs, redrawn every 2 s while training (history.json per epoch)."""
    runs = [load_run(cache, config.run_id) for config in configs.values()
            if (cache / "lab" / config.run_id / "config.json").is_file()]
    if not runs:
        return
    table = loss_curves_table({f"{run.config.objective} · {run.run_id}": run.history for run in runs})
    # Not stored features: what produced a curve is its run's whole TrainConfig.
    provenance = Provenance(image_set.name, image_set.fingerprint, parameters={"runs": {
        f"{run.config.objective} · {run.run_id}": {
            "spec": run.spec, **asdict(run.config), "epochs_done": run.epochs_done,
            "weights": f"sha256:{run.result['backbone_sha256']}" if run.finished else "in training"}
        for run in runs}})
    figure_block(loss_curves_figure(table), table, page="lab", figure="loss_curves", dataset=image_set.name,
                 provenance=provenance,
                 how_to_read="Mean loss of each optimisation step, logged once per epoch. Losses of different "
                             "objectives are not comparable with each other; compare their geometry on the "
                             "analysis pages instead.")


st.subheader("Training loss")
loss_curves()

st.subheader("Runs")
runs = resources.lab_runs()
if not runs:
    st.info("No runs yet: pick objectives and press **Train**.")
    st.stop()
table = pd.DataFrame([{"spec": run.spec, "objective": run.config.objective, "backbone": run.config.backbone,
                       "dataset": run.config.dataset, "image_size": run.config.image_size,
                       "epochs": f"{run.epochs_done}/{run.config.epochs}", "finished": run.finished,
                       "images": run.result.get("images"), "seconds": run.result.get("seconds"),
                       "final_loss": run.result.get("final_loss")} for run in runs])
st.dataframe(table, hide_index=True, width="stretch")
done = [run.spec for run in runs if run.finished]


def open_runs(specs: list[str], page: str) -> None:
    """Callback: put the runs' encoders (final layer) in the sidebar and on the Manifolds and Inductive bias
    pages; for a page that needs cached features, start extracting the runs' `final` layer; then switch."""
    set_choice("encoders", list(dict.fromkeys([*selection.encoders, *specs])))
    st.session_state["manifold_pairs"] = [f"{spec} · final" for spec in specs]
    st.session_state["bias_pairs"] = [f"{spec} · final" for spec in specs]
    if page in NEEDS_FEATURES:
        store = resources.feature_store()
        missing = [spec for spec in specs
                   if layer_statuses(image_set, resources.encoder_info(spec), ["final"], store)[0].state == "missing"]
        if missing:
            start_extraction(image_set, missing, {spec: ["final"] for spec in missing}, selection.pooling,
                             selection.device, selection.batch_size)
            st.session_state["extraction_notice"] = (
                f"Extracting the `final` layer of {', '.join(missing)} on {image_set.name} in the background; "
                f"{page}'s figures include {'it' if len(missing) == 1 else 'them'} once done (progress under "
                f"**Features**).")
    st.session_state["lab_switch_to"] = PAGES[page]


def remove_run(spec: str) -> None:
    delete_run(cache, parse_spec(spec).arch)  # a lab spec's arch is its run id
    set_choice("encoders", [s for s in selection.encoders if s != spec])


actions = st.columns([3, 2, 1, 1])
chosen = actions[0].multiselect("Runs", [run.spec for run in runs], default=done, key="lab_chosen_runs", persist_state="session",
                                help="Finished runs to open on an analysis page (side by side), or one to delete.")
page = actions[1].selectbox("Analysis page", list(PAGES), key="lab_open_page", persist_state="session",
                            help="Opens the page with these encoders selected in the sidebar (final layer).")
ready = [spec for spec in chosen if spec in done]
actions[2].button("Open", on_click=open_runs, args=(ready, page), disabled=not ready,
                  help="Adds the chosen finished runs to the sidebar's encoders and opens the page; for Affect and "
                       "Alignment it first starts extracting the runs' final layer in the background.")
actions[3].button("Delete", on_click=remove_run, args=(chosen[0] if len(chosen) == 1 else "",),
                  disabled=len(chosen) != 1 or has_jobs("lab_jobs"),
                  help="Deletes the one chosen run's folder (checkpoints, weights, history). Its cached features stay "
                       "until the cache is cleared.")
if st.session_state.get("lab_switch_to"):
    st.switch_page(st.session_state.pop("lab_switch_to"))
