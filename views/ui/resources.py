"""Process-wide resources and cached loaders shared by every page."""
from __future__ import annotations

from pathlib import Path

import streamlit as st
import torch
from streamlit import runtime

from core.data import datasets, image_check
from core.encoders.registry import UNUSABLE, EncoderInfo, availability, describe, describe_version
from core.features.extract import FeatureSet, cached_features
from core.analyses.similarity import SimilarityStore
from core.features.results import ResultStore
from core.features.store import FeatureStore, Memo, ResultCache
from core.stores import Stores
from core.jobs import JobRegistry, job_slots
from core.lab.runs import LabRun, finished_run_ids, lab_spec, list_runs  # importing the lab registers `lab:` specs
from core.paths import cache_root, private_folder


@st.cache_resource
def private_cache() -> Path:
    """The cache root, created owner-only (0700) once per process (app.py calls this before any page)."""
    return private_folder(cache_root())


def stores() -> Stores:
    """Every store under the cache root of the moment (REPSCOPE_CACHE), the ones studies and the CLI open."""
    return _stores(str(cache_root()))


@st.cache_resource(max_entries=4)
def _stores(root: str) -> Stores:
    return Stores.at(root)


def feature_store() -> FeatureStore:
    return stores().features


@st.cache_resource
def job_registry() -> JobRegistry:
    """Every session's background jobs: at most `job_slots` run at once (one per GPU, 2 on CPU, or
    $REPSCOPE_MAX_JOBS); the rest queue. A job whose sessions are all closed may be cancelled by anyone."""
    return JobRegistry(max_workers=job_slots(torch.cuda.device_count()), session_open=session_open)


def session_open(session_id: str) -> bool:
    """Whether a browser session is still connected (a closed tab's is not); True where no server tells (AppTest)."""
    return not runtime.exists() or bool(runtime.get_instance().is_active_session(session_id))


@st.cache_resource
def check_registry() -> JobRegistry:
    """A worker of its own for image checks of large datasets, so they never queue behind an extraction."""
    return JobRegistry(max_workers=1)


@st.cache_resource(max_entries=8, show_spinner="Loading dataset…")
def image_set(spec: str) -> datasets.ImageSet:
    """The ImageSet of a dataset spec such as `demo` or `oasis:/data/oasis` (DatasetError propagates)."""
    return datasets.load_dataset(spec, cache_root())  # confined to the data roots (core.data.roots) when set


@st.cache_data(max_entries=16, show_spinner="Checking the images…")
def image_problems(fingerprint: str, _image_set: datasets.ImageSet) -> list[image_check.ImageProblem]:
    """Every unreadable image of the set with fingerprint `fingerprint` (the key: the set itself is not hashed)."""
    return image_check.check_images(_image_set)


def encoder_info(spec: str) -> EncoderInfo:
    """The spec described once: every page and widget asks here (errors of `describe` propagate, uncached)."""
    return _described(spec, describe_version(spec))


@st.cache_data(max_entries=256, show_spinner=False)
def _described(spec: str, version: str) -> EncoderInfo:
    """`version` is the key part that changes with the weight file or lab run behind a file: / lab: spec."""
    return describe(spec)


@st.cache_data(ttl=60, show_spinner=False)
def encoder_availability(spec: str) -> tuple[bool, str]:
    """(usable offline now, why not), re-checked every minute: weights may have been downloaded meanwhile."""
    try:
        return availability(encoder_info(spec))
    except UNUSABLE as error:
        return False, str(error)


@st.cache_resource(max_entries=64, show_spinner=False,
                   hash_funcs={datasets.ImageSet: lambda image_set: image_set.fingerprint})
def feature_set(image_set: datasets.ImageSet, encoder: EncoderInfo, layer: str, pooling: str) -> FeatureSet:
    """A stored feature array (memory-mapped); call only for layers whose status is `cached`."""
    return cached_features(image_set, encoder, [layer], feature_store(), pooling)[layer]


def result_cache() -> ResultCache:
    """On-disk JSON results (probe scores per layer, a matrix's controls), shared by every session and process."""
    return stores().scores


def result_store() -> ResultStore:
    """Analysis results on disk (alignments, out-of-fold predictions, study steps), shared by every session."""
    return stores().results


def similarity_store() -> SimilarityStore:
    """Similarity matrices on disk, shared by every session and with studies."""
    return stores().similarity


@st.cache_resource
def result_memo() -> Memo:
    """Process-wide bounded memo of analysis results keyed by feature digest + parameters.

    Not st.cache_data: results are computed in the page with a live progress bar, which a
    cached function cannot drive.
    """
    return Memo(max_entries=512)


def lab_runs() -> list[LabRun]:
    """Objective lab runs on disk (read each rerun: a run finishing in the background appears at once)."""
    return list_runs(cache_root())


def finished_lab_specs() -> list[str]:
    """`lab:<run id>` of every finished Objective lab run (the sidebar lists them on every rerun: no history reads)."""
    return [lab_spec(run_id) for run_id in finished_run_ids(cache_root())]
