"""Extraction's DataLoader workers: started safely from a job thread, the same features, picklable inputs."""
from __future__ import annotations

import os
import pickle
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.data.corruptions import gamma, global_shuffle
from core.data.datasets import ImageSet, demo, image_folder
from core.data.transforms import InputTransform, augmentation_views
from core.encoders.registry import describe, load_encoder
from core.features import extract as extract_module
from core.features.extract import extract
from core.features.store import FeatureStore

ENCODER = "untrained:timm:resnet18"


@dataclass(frozen=True)
class RecordProcess:
    """An InputTransform `apply` that leaves a file `<pid>-<parent pid>` in `folder` for each process it runs in."""

    folder: str

    def __call__(self, image: Image.Image, row: int) -> Image.Image:
        (Path(self.folder) / f"{os.getpid()}-{os.getppid()}").touch()
        return image


def on_thread(function, *args, **kwargs):
    """function(*args, **kwargs) run on a new thread, as the app's job registry runs extraction."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = function(*args, **kwargs)
        except Exception as error:  # re-raised below, on the test's thread
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), "extraction on the thread did not finish within 120 s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


@pytest.fixture(scope="module")
def demo_images(isolated_cache: Path) -> ImageSet:
    return demo(isolated_cache).subset(range(12))


@pytest.fixture(scope="module")
def grey_images(tmp_path_factory) -> ImageSet:
    """260 tiny grey images: enough that extraction picks workers by itself (>= 256)."""
    root = tmp_path_factory.mktemp("grey")
    (root / "grey").mkdir()
    for index in range(260):
        Image.new("RGB", (8, 8), (index % 256,) * 3).save(root / "grey" / f"{index}.png")
    return image_folder(root)


@pytest.mark.parametrize("view", ["corruption glo_4", "augmentation m=2"])
def test_two_workers_started_from_a_thread_give_the_in_process_features(view, demo_images, tmp_path) -> None:
    if view.startswith("corruption"):
        image_set, input_transform = demo_images, global_shuffle(4).input_transform
    else:
        image_set, input_transform = augmentation_views(demo_images.subset(range(6)), 2, seed=3)
    info = describe(ENCODER)
    layers = ["layer2", "final"]
    in_process = extract(image_set, info, layers, FeatureStore(tmp_path / "in-process"), batch_size=4,
                         num_workers=0, input_transform=input_transform)
    in_workers = on_thread(extract, image_set, info, layers, FeatureStore(tmp_path / "workers"), batch_size=4,
                           num_workers=2, input_transform=input_transform)
    clean = extract(demo_images if view.startswith("corruption") else image_set, info, ["final"],
                    FeatureStore(tmp_path / "clean"), num_workers=0)["final"].features
    for layer in layers:
        assert in_workers[layer].features.shape == in_process[layer].features.shape
        np.testing.assert_allclose(in_workers[layer].features, in_process[layer].features, rtol=1e-5, atol=1e-6)
    # The view really was applied in the workers: its features are not the clean ones.
    assert np.abs(in_workers["final"].features - clean).max() > 1e-2 * np.abs(clean).max()


def test_off_the_main_thread_workers_fork_from_the_server_not_from_this_process(grey_images, tmp_path) -> None:
    record = tmp_path / "processes"
    record.mkdir()
    features = on_thread(extract, grey_images, describe("pixels:4"), ["final"], FeatureStore(tmp_path / "store"),
                         input_transform=InputTransform("record", RecordProcess(str(record))))["final"].features
    processes = [tuple(map(int, file.name.split("-"))) for file in record.iterdir()]
    workers = extract_module._default_workers(len(grey_images))
    assert workers >= 1 and len(processes) == workers
    assert all(pid != os.getpid() and parent != os.getpid() for pid, parent in processes)  # forked by the server
    grey_levels = np.array([index % 256 for index in range(260)], dtype=np.float32) / 255
    rows = np.array([int(Path(path).stem) for path in grey_images.paths])
    np.testing.assert_allclose(features, np.repeat(grey_levels[rows, None], 48, axis=1), atol=1e-6)


def test_on_the_main_thread_workers_fork_from_this_process_as_the_cli_always_did(grey_images, tmp_path) -> None:
    record = tmp_path / "processes"
    record.mkdir()
    extract(grey_images, describe("pixels:4"), ["final"], FeatureStore(tmp_path / "store"),
            input_transform=InputTransform("record", RecordProcess(str(record))))
    processes = [tuple(map(int, file.name.split("-"))) for file in record.iterdir()]
    assert processes and all(pid != os.getpid() and parent == os.getpid() for pid, parent in processes)


def test_worker_context_and_count_rules() -> None:
    assert extract_module._worker_context(2) is None  # main thread: the platform default (fork on Linux)
    assert on_thread(extract_module._worker_context, 2).get_start_method() == "forkserver"
    assert on_thread(extract_module._worker_context, 0) is None
    assert extract_module._default_workers(255) == 0  # small runs stay in-process (worker start-up cost)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert on_thread(extract_module._default_workers, 256) == min(4, max(1, cpus - 1))


VIEWS = {"glo_8 per image": lambda images: global_shuffle(8, per_image=True).input_transform,
         "gamma_0.5": lambda images: gamma(0.5).input_transform,
         "augmentation m=2": lambda images: augmentation_views(images, 2, seed=1)[1]}


@pytest.mark.parametrize("view", VIEWS)
def test_input_transforms_pickle_and_apply_the_same(view, demo_images) -> None:
    input_transform = VIEWS[view](demo_images)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    copy = pickle.loads(pickle.dumps(input_transform))
    assert copy == input_transform
    for row in (0, 5):
        expected = np.asarray(input_transform.apply(image, row))
        np.testing.assert_array_equal(np.asarray(copy.apply(image, row)), expected)
        assert not np.array_equal(expected, np.asarray(image))


@pytest.mark.parametrize("spec", ["untrained:timm:resnet18", "untrained:open_clip:ViT-B-32", "pixels:8"])
def test_encoder_transforms_pickle(spec) -> None:
    transform = load_encoder(describe(spec)).transform
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 56, 3), dtype=np.uint8))
    torch.testing.assert_close(pickle.loads(pickle.dumps(transform))(image), transform(image), rtol=0, atol=0)

