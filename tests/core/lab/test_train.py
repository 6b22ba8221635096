"""Objective lab: each loss against a hand-computed value, determinism, resume, and runs as encoders."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from core.analyses.manifolds import clamp_packing_loss, manifold_summary
from core.data.datasets import demo
from core.data.transforms import AugmentationPipeline
from core.encoders.registry import availability, describe
from core.lab.runs import TrainConfig, finished_run_ids, list_runs, load_run
from core.lab.train import LabModel, _to_tensor, captions, language_loss, nt_xent_loss, supervised_loss, train
from core.progress import Progress

E = math.e


def test_supervised_loss_by_hand() -> None:
    logits = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    expected = (math.log(2) + -math.log(E ** 2 / (E ** 2 + 1))) / 2
    assert float(supervised_loss(logits, torch.tensor([0, 0]))) == pytest.approx(expected)


def test_nt_xent_by_hand() -> None:
    views = torch.eye(2)  # two images, both views identical, orthogonal across images; τ = 1
    # Each anchor: positive cos 1, two negatives cos 0 (the other image's two views).
    assert float(nt_xent_loss(views, views.clone(), 1.0)) == pytest.approx(-math.log(E / (E + 2)))
    assert float(nt_xent_loss(views, views.clone(), 0.5)) == pytest.approx(-math.log(E ** 2 / (E ** 2 + 2)))


def test_language_loss_by_hand_with_repeated_captions() -> None:
    image, text = torch.eye(2), torch.eye(2)
    distinct = language_loss(image, text, torch.tensor([0, 1]), 1.0)
    assert float(distinct) == pytest.approx(-math.log(E / (E + 1)))
    repeated = language_loss(image, text, torch.tensor([0, 0]), 1.0)  # one caption: both texts are positives
    assert float(repeated) == pytest.approx(-0.5 * math.log(E / (E + 1)) - 0.5 * math.log(1 / (E + 1)))


def test_clamp_objective_is_the_manifolds_page_loss() -> None:
    views = np.random.default_rng(0).normal(size=(12, 4, 8))
    reported = manifold_summary(views, np.repeat(["a", "b"], 6), radius_scale=7.0).clamp_loss
    assert clamp_packing_loss(views, 7.0) == pytest.approx(reported, rel=1e-9)
    tensor = torch.tensor(views, requires_grad=True)
    loss = clamp_packing_loss(tensor, 7.0)
    assert loss.item() == pytest.approx(reported, rel=1e-9)
    loss.backward()
    assert torch.isfinite(tensor.grad).all() and tensor.grad.abs().sum() > 0
    duplicated = torch.tensor(np.repeat(views[:1], 3, axis=0), requires_grad=True)  # identical centroids
    clamp_packing_loss(duplicated, 7.0).backward()
    assert torch.isfinite(duplicated.grad).all()


def test_clamp_loss_decreases_over_a_few_steps_on_the_demo(isolated_cache: Path) -> None:
    image_set = demo(isolated_cache)
    torch.manual_seed(0)
    model = LabModel("resnet18", 32, image_size=32)
    pipeline = AugmentationPipeline(size=32)
    images = [image_set.paths[row] for row in range(0, 384, 24)]  # 16 images, 4 views each
    from core.data.images import load_image
    batch = torch.stack([_to_tensor(pipeline(load_image(path), np.random.default_rng((row, view))))
                         for row, path in enumerate(images) for view in range(4)])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        loss = clamp_packing_loss(model(batch).reshape(16, 4, -1), 7.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1, losses


def test_captions_come_from_the_metadata(isolated_cache: Path) -> None:
    image_set = demo(isolated_cache)
    assert captions(image_set)[0] == "a photo of Cool spiky dark blob, a kind of Blob"


CONFIG = TrainConfig("simclr", epochs=2, max_images=64, batch_size=32, image_size=32)


def test_a_two_epoch_run_finishes_and_registers_an_encoder(isolated_cache: Path, monkeypatch) -> None:
    demo(isolated_cache)
    run = train(CONFIG, isolated_cache)
    record = load_run(isolated_cache, run.name)
    assert record.finished and record.epochs_done == 2 and len(record.history) == 2 * 2
    # Nothing resumes a finished run: its checkpoint (model + optimizer state) is gone, the weights stay.
    assert sorted(path.name for path in run.iterdir()) == ["backbone.pt", "config.json", "history.json",
                                                           "result.json"]
    assert record.result["images"] == 64 and record.result["final_loss"] == record.history[-1]["loss"]
    assert CONFIG.run_id in [run.run_id for run in list_runs(isolated_cache)]
    assert CONFIG.run_id in finished_run_ids(isolated_cache)
    monkeypatch.setenv("REPSCOPE_CACHE", str(isolated_cache))
    info = describe(record.spec)
    assert info.layers == ("act1", "layer1", "layer2", "layer3", "layer4", "final")
    assert info.preprocess["input_size"] == [3, 32, 32] and availability(info) == (True, "available offline")


def test_runs_are_deterministic_and_resume_from_the_last_epoch(isolated_cache: Path, tmp_path: Path) -> None:
    demo(isolated_cache)
    reference = train(CONFIG, isolated_cache)
    other = tmp_path / "cache"
    shutil.copytree(isolated_cache / "demo", other / "demo")

    def stop_in_second_epoch(progress: Progress) -> None:
        if progress.done > 64:
            raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        train(CONFIG, other, progress=stop_in_second_epoch)
    interrupted = load_run(other, CONFIG.run_id)
    assert not interrupted.finished and interrupted.epochs_done == 1
    assert (other / "lab" / CONFIG.run_id / "checkpoint.pt").is_file()
    resumed = train(CONFIG, other)
    assert not (resumed / "checkpoint.pt").exists()
    assert load_run(other, CONFIG.run_id).history == load_run(isolated_cache, CONFIG.run_id).history
    first = torch.load(reference / "backbone.pt", weights_only=True)
    second = torch.load(resumed / "backbone.pt", weights_only=True)
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="Unknown objective 'byol'"):
        TrainConfig("byol")
    with pytest.raises(ValueError, match="at least 2 views"):
        TrainConfig("clamp", views=1)


def test_a_run_reports_while_its_images_load_and_after_every_step(isolated_cache: Path, tmp_path: Path) -> None:
    """Issue 30: a cancelled job stops at its next report, so a run must report between steps (not only epochs)
    and while it decodes its images, before the first step."""
    demo(isolated_cache)
    reports: list[Progress] = []
    other = tmp_path / "cache"
    shutil.copytree(isolated_cache / "demo", other / "demo")
    train(CONFIG, other, progress=reports.append)
    messages = [report.message for report in reports]
    assert messages[:3] == ["loading images 32/64", "loading images 64/64", "starting at epoch 1/2"]
    steps = reports[3:]
    assert [report.done for report in steps] == [32, 64, 96, 128]  # batch 32: one report per step
    assert all(report.total == 128 and report.message.startswith(f"epoch {1 + index // 2}/2 · loss")
               for index, report in enumerate(steps))

    def cancel_while_loading(progress: Progress) -> None:
        raise KeyboardInterrupt(progress.message)

    fresh = tmp_path / "fresh"
    shutil.copytree(isolated_cache / "demo", fresh / "demo")
    with pytest.raises(KeyboardInterrupt, match="loading images 32/64"):  # the first report, before any step
        train(CONFIG, fresh, progress=cancel_while_loading)
