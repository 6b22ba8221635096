"""Pretrained hub weights used offline from a Hugging Face cache, as on a cluster node without internet.

A throwaway cache ($HF_HOME in a temp folder) gets random weights written exactly where the hub
would put them (`hub/models--<org>--<name>/refs/main` + `snapshots/<rev>/<file>`); then the
✓ / ✗ availability must be ✓, `python -m core extract` must run with HF_HUB_OFFLINE=1, and the stored
features must equal the library's own loading of that file (timm `pretrained_cfg_overlay=dict(file=...)`,
`open_clip.create_model(arch, pretrained=<file>)` with the tag's QuickGELU).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.data.datasets import demo, load_dataset
from core.encoders import backbones
from core.encoders.catalogue import CATALOGUE_BY_SPEC, CLIP, PARADIGMS, SELF_SUPERVISED, SSL_FINE_TUNED, SUPERVISED
from core.encoders.registry import describe, spec_availability
from core.features.extract import feature_keys
from core.features.store import FeatureStore
from core.paths import cache_root
from tests.paths import REPO_ROOT

# One timm entry per paradigm and the open_clip CLIP entry, small architectures; open_clip distributes
# only CLIP-style image-text models, so CLIP is the one paradigm it can cover (checked below).
CACHED_ENTRIES = {
    "timm:deit_tiny_patch16_224.fb_in1k": SUPERVISED,
    "timm:eva02_tiny_patch14_224.mim_in22k": SELF_SUPERVISED,
    "timm:resnet18.fb_ssl_yfcc100m_ft_in1k": SSL_FINE_TUNED,
    "timm:resnet50_clip.openai": CLIP,
    "open_clip:RN50@openai": CLIP,  # hf_hub "timm/resnet50_clip.openai/": the trailing-slash form
}
# AugReg checkpoints were .npz files needing timm's custom loader; the hub serves plain state dicts.
CUSTOM_LOAD_ENTRY = "timm:vit_tiny_patch16_224.augreg_in21k"
N_IMAGES = 6
REVISION = "0123456789abcdef0123456789abcdef01234567"


def write_hub_file(hub_cache: Path, repo: str, filename: str, state: dict[str, torch.Tensor]) -> Path:
    """Save `state` as the hub would cache `repo`/`filename` at `main` (blob + snapshot link)."""
    from safetensors.torch import save_file
    folder = hub_cache / f"models--{repo.replace('/', '--')}"
    blob = folder / "blobs" / hashlib.sha256(f"{repo}/{filename}".encode()).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    save_file({name: tensor.contiguous() for name, tensor in state.items()}, str(blob))
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(REVISION)
    snapshot = folder / "snapshots" / REVISION / filename
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
    return snapshot


def random_state(spec: str) -> dict[str, torch.Tensor]:
    """A full checkpoint of the spec's architecture with seeded random weights (fp16 halves the bytes)."""
    framework, name = spec.split(":", 1)
    torch.manual_seed(7)
    if framework == "timm":
        import timm
        model = timm.create_model(name, pretrained=False)
    else:
        import open_clip
        model = open_clip.create_model(name.split("@")[0], pretrained=None)
    return {key: value.half() if value.is_floating_point() else value for key, value in model.state_dict().items()}


def reference_features(spec: str, weight_file: Path, images: list[Image.Image]) -> np.ndarray:
    """(N, D) `final` features by the library's own loading of `weight_file` and its own eval transform."""
    framework, name = spec.split(":", 1)
    if framework == "timm":
        import timm
        overlay = dict(file=str(weight_file), custom_load=False)  # a state dict, whatever the tag's original format
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay).eval()
        transform = timm.data.create_transform(**timm.data.resolve_model_data_config(model), is_training=False)
        with torch.inference_mode():
            x = torch.stack([transform(image) for image in images])
            return model.forward_head(model.forward_features(x), pre_logits=True).numpy()
    import open_clip
    arch, tag = name.split("@")
    quick_gelu = bool(open_clip.get_pretrained_cfg(arch, tag).get("quick_gelu"))
    model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=str(weight_file),
                                                                 force_quick_gelu=quick_gelu)
    with torch.inference_mode():
        return model.eval().encode_image(torch.stack([preprocess(image) for image in images])).numpy()


@pytest.fixture(scope="module")
def hub_home(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """$HF_HOME with every CACHED_ENTRIES checkpoint where the hub puts it; the path of each file."""
    home = tmp_path_factory.mktemp("hf-home")
    files = {}
    for spec in [*CACHED_ENTRIES, CUSTOM_LOAD_ENTRY]:
        framework, name = spec.split(":", 1)
        arch, _, tag = name.partition("@")
        weights = backbones.hub_weights(framework, arch, tag)
        files[spec] = write_hub_file(home / "hub", weights.repo, weights.filenames[0], random_state(spec))
    return home, files


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory) -> Path:
    """An image folder of N_IMAGES demo images, two categories."""
    root = tmp_path_factory.mktemp("few-images")
    source = demo(cache_root())
    for row in range(N_IMAGES):
        target = root / f"category{row % 2}" / Path(source.paths[row]).name
        target.parent.mkdir(exist_ok=True)
        shutil.copy(source.paths[row], target)
    return root


def test_the_catalogue_paradigms_are_covered() -> None:
    assert {CACHED_ENTRIES[spec] for spec in CACHED_ENTRIES} == set(PARADIGMS) - {"control"}
    assert all(CATALOGUE_BY_SPEC[spec].paradigm == paradigm for spec, paradigm in CACHED_ENTRIES.items())
    assert {entry.paradigm for entry in CATALOGUE_BY_SPEC.values() if entry.spec.startswith("open_clip:")} == {CLIP}


@pytest.mark.parametrize("framework, arch, tag, repo, first_file", [
    ("open_clip", "ViT-B-16", "openai", "timm/vit_base_patch16_clip_224.openai", "open_clip_model.safetensors"),
    ("open_clip", "ViTamin-S", "datacomp1b", "jienengchen/ViTamin-S", "pytorch_model.safetensors"),
    ("timm", "vit_base_patch16_224.augreg_in21k", "", "timm/vit_base_patch16_224.augreg_in21k", "model.safetensors"),
    ("timm", "resnet50", "", "timm/resnet50.a1_in1k", "model.safetensors"),  # tag-less: timm's default tag
])
def test_hub_names_follow_each_library(framework, arch, tag, repo, first_file) -> None:
    weights = backbones.hub_weights(framework, arch, tag)
    assert (weights.repo, weights.filenames[0]) == (repo, first_file)


@pytest.mark.parametrize("framework, arch, tag", [
    ("open_clip", "ViT-B-16", "openai"),  # "org/name/" (trailing slash): the default file
    ("open_clip", "ViTamin-S", "datacomp1b"),  # "org/name/file.bin"
    ("timm", "vit_base_patch16_224.augreg_in21k", ""),
])
@pytest.mark.parametrize("which", [0, -1])  # the .safetensors twin, or only the .bin
def test_a_cached_file_of_every_form_is_found(framework, arch, tag, which, tmp_path, monkeypatch) -> None:
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    weights = backbones.hub_weights(framework, arch, tag)
    assert backbones.cached_weight_file(framework, arch, tag) is None
    path = write_hub_file(tmp_path, weights.repo, weights.filenames[which], {"w": torch.zeros(1)})
    assert backbones.cached_weight_file(framework, arch, tag) == str(path)
    spec = f"open_clip:{arch}@{tag}" if framework == "open_clip" else f"timm:{arch}"
    assert spec_availability(spec) == (True, "available offline")


@pytest.mark.slow  # ~60 s: six architectures built three times, one extraction subprocess
def test_extraction_runs_offline_and_equals_the_libraries_own_loading(hub_home, small_folder, tmp_path) -> None:
    home, files = hub_home
    cache = tmp_path / "repscope-cache"
    env = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "REPSCOPE_CACHE": str(cache)}
    env.pop("HF_HUB_CACHE", None)
    catalogue = subprocess.run([sys.executable, "-m", "core", "catalogue"], cwd=REPO_ROOT, env=env,
                               capture_output=True, text=True, timeout=300)
    header, *lines = catalogue.stdout.splitlines()
    spec_at = header.index("spec")  # an aligned table: the spec column starts where its header does
    marks = {line[spec_at:].split()[0]: line[0] for line in lines if line[:1] in "✓✗" and len(line) > spec_at}
    assert {spec: marks[spec] for spec in CACHED_ENTRIES} == {spec: "✓" for spec in CACHED_ENTRIES}
    assert marks["timm:vit_base_patch16_224.dino"] == "✗"  # not in this cache
    command = [sys.executable, "-m", "core", "extract", "--dataset", f"folder:{small_folder}", "--layers", "final"]
    for spec in [*CACHED_ENTRIES, CUSTOM_LOAD_ENTRY]:
        command += ["--encoder", spec]
    run = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    image_set = load_dataset(f"folder:{small_folder}", cache)
    store = FeatureStore(cache / "features")
    images = [Image.open(path).convert("RGB") for path in image_set.paths]
    for spec in [*CACHED_ENTRIES, CUSTOM_LOAD_ENTRY]:
        stored = store.load(feature_keys(image_set, describe(spec), ["final"])["final"])
        expected = reference_features(spec, files[spec], images)
        assert stored.shape == expected.shape == (N_IMAGES, expected.shape[1])
        np.testing.assert_allclose(stored, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max(), err_msg=spec)
