"""Extraction: one pass = per-layer passes, determinism, cache hits, resume, bad images, CLI."""
from __future__ import annotations

import dataclasses
import re
import time

import numpy as np
import pytest
from PIL import Image

from core import cli
from core.data.datasets import DatasetError, ImageSet, image_folder
from core.data.transforms import InputTransform
from core.encoders.registry import describe, load_encoder
from core.features import extract as extract_module
from core.features.extract import cached_features, extract, extraction_message, feature_keys, layer_statuses
from core.features.store import FeatureStore
from core.jobs import eta_seconds


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> ImageSet:
    """12 noise images in 3 categories, 64x48 px."""
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for category in ("ant", "bee", "cow"):
        (root / category).mkdir()
        for index in range(4):
            pixels = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / category / f"{category}{index}.png")
    return image_folder(root)


def test_pixels_features_are_the_resized_images_in_row_order(small_set, tmp_path) -> None:
    features = extract(small_set, describe("pixels:8"), ["final"], FeatureStore(tmp_path))["final"].features
    encoder = load_encoder(describe("pixels:8"))
    expected = np.stack([encoder.transform(Image.open(path).convert("RGB")).flatten().numpy()
                         for path in small_set.paths])
    np.testing.assert_allclose(features, expected, atol=1e-6)


def test_all_layers_in_one_pass_equal_one_layer_at_a_time_and_are_deterministic(small_set, tmp_path) -> None:
    spec = "untrained:timm:resnet18"
    together = extract(small_set, describe(spec), "all", FeatureStore(tmp_path / "a"), batch_size=5)
    again = extract(small_set, describe(spec), "all", FeatureStore(tmp_path / "b"), batch_size=12)
    assert list(together) == ["act1", "layer1", "layer2", "layer3", "layer4", "final"]
    for layer in ("layer2", "final"):
        alone = extract(small_set, describe(spec), [layer], FeatureStore(tmp_path / f"only-{layer}"))[layer]
        np.testing.assert_allclose(together[layer].features, alone.features, rtol=1e-4, atol=1e-5)
    for layer, feature_set in together.items():
        np.testing.assert_allclose(feature_set.features, again[layer].features, rtol=1e-4, atol=1e-5)
        assert feature_set.features.shape[0] == len(small_set)
    assert together["layer4"].features.shape[1] == 512


def test_cache_hit_never_loads_the_model_and_is_fast(small_set, tmp_path, monkeypatch) -> None:
    store = FeatureStore(tmp_path)
    spec = "untrained:timm:vit_base_patch16_224"
    key = feature_keys(small_set, describe(spec), ["blocks.5"])["blocks.5"]
    store.save(key, np.random.default_rng(0).normal(size=(1000, 768)).astype(np.float32))
    monkeypatch.setattr(extract_module, "load_encoder", lambda *a, **k: pytest.fail("model loaded on a cache hit"))
    started = time.perf_counter()
    hit = extract(small_set, describe(spec), ["blocks.5"], store)["blocks.5"]
    assert time.perf_counter() - started < 1.0
    assert hit.features.shape == (1000, 768)


def test_interrupted_extraction_resumes_from_its_last_chunk(small_set, tmp_path) -> None:
    store, spec = FeatureStore(tmp_path), "untrained:timm:resnet18"
    seen: list[int] = []

    def stop_after_first_chunk(progress) -> None:
        seen.append(progress.done)
        if progress.done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract(small_set, describe(spec), ["layer3", "final"], store, batch_size=4, chunk_rows=4,
                progress=stop_after_first_chunk)
    keys = feature_keys(small_set, describe(spec), ["layer3", "final"])
    assert [store.rows_done(key) for key in keys.values()] == [4, 4] and not store.has(keys["final"])
    resumed: list[int] = []
    result = extract(small_set, describe(spec), ["layer3", "final"], store, batch_size=4, chunk_rows=4,
                     progress=lambda progress: resumed.append(progress.done))
    assert resumed == [4, 8, 12]  # starts at the 4 stored rows: they were not recomputed
    fresh = extract(small_set, describe(spec), ["layer3", "final"], FeatureStore(tmp_path / "fresh"))
    for layer in ("layer3", "final"):
        np.testing.assert_allclose(result[layer].features, fresh[layer].features, rtol=1e-4, atol=1e-5)


def counting_forward_passes(monkeypatch) -> list[int]:
    """Images per forward pass of every encoder `extract` loads from now on."""
    forwarded: list[int] = []

    def load_counting(info, device):
        encoder = load_encoder(info, device)

        def forward_layers(images, layers, pooling):
            forwarded.append(len(images))
            return encoder.forward_layers(images, layers, pooling)

        return dataclasses.replace(encoder, forward_layers=forward_layers)

    monkeypatch.setattr(extract_module, "load_encoder", load_counting)
    return forwarded


def test_a_time_flush_keeps_every_batch_and_resume_recomputes_none(small_set, tmp_path, monkeypatch) -> None:
    """flush_s=0: a chunk per batch long before chunk_rows, so a kill after 2 batches keeps 8 rows."""
    store, spec, layers = FeatureStore(tmp_path), "untrained:timm:resnet18", ["layer2", "final"]
    forwarded = counting_forward_passes(monkeypatch)

    def kill_after_two_batches(progress) -> None:
        if progress.done >= 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract(small_set, describe(spec), layers, store, batch_size=4, flush_s=0, progress=kill_after_two_batches)
    keys = feature_keys(small_set, describe(spec), layers)
    assert forwarded == [4, 4] and [store.rows_done(key) for key in keys.values()] == [8, 8]
    seen, timed = [], []

    def timed_message(done: int, resumed: int, elapsed_s: float, unit: str = "images") -> str:
        timed.append(elapsed_s)
        return extraction_message(done, resumed, elapsed_s, unit)

    monkeypatch.setattr(extract_module, "extraction_message", timed_message)
    result = extract(small_set, describe(spec), layers, store, batch_size=4, flush_s=0, progress=seen.append)
    assert forwarded == [4, 4, 4]  # only the last 4 images went through the model again
    assert [(p.done, p.skipped) for p in seen] == [(8, 8), (12, 8)]
    # this run's 4 rows, not 12
    assert seen[-1].message == f"8 resumed from the cache · {4 / timed[-1]:.1f} images/s in this run"
    monkeypatch.undo()
    fresh = extract(small_set, describe(spec), layers, FeatureStore(tmp_path / "fresh"), batch_size=4)
    for layer in layers:
        np.testing.assert_allclose(result[layer].features, fresh[layer].features, rtol=1e-4, atol=1e-5)


def test_without_the_time_flush_a_kill_before_the_first_chunk_keeps_nothing(small_set, tmp_path) -> None:
    store = FeatureStore(tmp_path)

    def kill_after_two_batches(progress) -> None:
        if progress.done >= 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract(small_set, describe("pixels:4"), ["final"], store, batch_size=4, flush_s=3600, progress=kill_after_two_batches)
    assert store.rows_done(feature_keys(small_set, describe("pixels:4"), ["final"])["final"]) == 0


def test_progress_message_counts_this_runs_rows_and_says_what_was_resumed() -> None:
    # (288 - 96) rows in 4 s
    assert extraction_message(288, 96, 4.0) == "96 resumed from the cache · 48.0 images/s in this run"
    assert eta_seconds(288 - 96, 900 - 96, 4.0) == pytest.approx(612 / 48)  # the job's ETA leaves the 96 out too
    assert extraction_message(0, 0, 0.0) == "loading the model"
    assert extraction_message(900, 0, 10.0) == "90.0 images/s in this run"
    assert extraction_message(48, 0, 2.0, unit="views") == "24.0 views/s in this run"


def test_a_view_is_cached_under_its_own_key(small_set, tmp_path) -> None:
    store = FeatureStore(tmp_path)
    flipped = InputTransform("hflip", lambda image, row: image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    clean = extract(small_set, describe("pixels:4"), ["final"], store)["final"]
    mirrored = extract(small_set, describe("pixels:4"), ["final"], store, input_transform=flipped)["final"]
    assert clean.key != mirrored.key and clean.key.view == "clean" and mirrored.key.view == "hflip"
    image = mirrored.features[0].reshape(3, 4, 4)
    np.testing.assert_allclose(image[:, :, ::-1], clean.features[0].reshape(3, 4, 4), atol=1e-6)


def test_a_described_encoder_is_never_parsed_or_described_again(small_set, tmp_path, monkeypatch) -> None:
    """Issue 16: status (availability included), extraction and cached features all read the one EncoderInfo."""
    from core.encoders import registry

    info, store = describe("pixels:4"), FeatureStore(tmp_path)
    entered: list[str] = []
    monkeypatch.setattr(registry, "parse_spec", lambda spec: entered.append(spec))
    monkeypatch.setattr(registry.PixelSource, "describe", lambda self, spec: entered.append(str(spec)))
    assert layer_statuses(small_set, info, ["final"], store)[0].state == "missing"
    extract(small_set, info, ["final"], store)
    assert layer_statuses(small_set, info, ["final"], store)[0].state == "cached"
    assert cached_features(small_set, info, ["final"], store)["final"].features.shape == (12, 48)
    assert entered == []


def test_statuses_go_from_missing_to_cached(small_set, tmp_path) -> None:
    store = FeatureStore(tmp_path)
    before = layer_statuses(small_set, "pixels:4", ["final"], store)
    assert [status.state for status in before] == ["missing"]
    extract(small_set, describe("pixels:4"), ["final"], store)
    after = layer_statuses(small_set, "pixels:4", ["final"], store)
    assert after[0].state == "cached" and after[0].detail == "12 x 48"
    assert cached_features(small_set, describe("pixels:4"), ["final"], store)["final"].features.shape == (12, 48)


def test_a_corrupt_image_is_reported_by_name(tmp_path) -> None:
    root = tmp_path / "broken"
    (root / "cat").mkdir(parents=True)
    Image.new("RGB", (16, 16)).save(root / "cat" / "fine.png")
    (root / "cat" / "garbage.png").write_bytes(b"not an image at all")
    with pytest.raises(DatasetError, match="garbage.png"):
        extract(image_folder(root), describe("pixels:4"), ["final"], FeatureStore(tmp_path / "store"))


def test_extraction_names_every_bad_file_of_the_set_at_once(tmp_path) -> None:
    root = tmp_path / "broken"
    (root / "cat").mkdir(parents=True)
    for index in range(6):
        Image.new("RGB", (16, 16)).save(root / "cat" / f"fine{index}.png")
    (root / "cat" / "early.png").write_bytes(b"not an image")
    (root / "cat" / "late.png").write_bytes(b"nor this")  # in a later batch than early.png
    with pytest.raises(DatasetError) as caught:
        extract(image_folder(root), describe("pixels:4"), ["final"], FeatureStore(tmp_path / "store"), batch_size=2)
    message = str(caught.value)
    assert message.startswith("2 image file(s) cannot be read") and "early.png" in message and "late.png" in message


def test_cli_extracts_into_the_cache_and_lists_layers(small_set, tmp_path, capsys) -> None:
    cache = tmp_path / "cache"
    assert cli.main(["--cache", str(cache), "extract", "--dataset", f"folder:{small_set.root}",
                     "--encoder", "pixels:4", "--layers", "final"]) == 0
    assert "12x48" in capsys.readouterr().out
    assert layer_statuses(small_set, "pixels:4", ["final"], FeatureStore(cache / "features"))[0].state == "cached"
    assert cli.main(["list-layers", "untrained:timm:resnet18"]) == 0
    assert capsys.readouterr().out.split() == ["act1", "layer1", "layer2", "layer3", "layer4", "final"]
    assert cli.main(["list-layers", "nonsense"]) == 2
    assert "Unknown encoder spec" in capsys.readouterr().err


def test_a_resumed_cli_run_says_what_it_resumed_and_rates_only_this_runs_rows(small_set, tmp_path, capsys) -> None:
    cache = tmp_path / "cache"

    def kill_after_two_batches(progress) -> None:
        if progress.done >= 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract(small_set, describe("pixels:4"), ["final"], FeatureStore(cache / "features"), batch_size=4, flush_s=0,
                progress=kill_after_two_batches)
    assert cli.main(["--cache", str(cache), "extract", "--dataset", f"folder:{small_set.root}",
                     "--encoder", "pixels:4", "--batch-size", "4"]) == 0
    lines = [line.strip() for line in capsys.readouterr().err.split("\r") if line.strip()]
    assert lines[0] == "pixels:4: 8/12 images · 8 resumed from the cache"
    assert re.fullmatch(r"pixels:4: 12/12 images · 8 resumed from the cache · [0-9.]+ images/s in this run", lines[-1])


@pytest.mark.slow
def test_bundled_features_of_real_oasis_separate_its_categories(oasis_root, isolated_cache) -> None:
    """ImageNet features must carry category information that raw pixels barely do."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from core.data.datasets import oasis

    image_set = oasis(oasis_root)
    store = FeatureStore(isolated_cache / "features")  # shared with the affect test on OASIS
    categories = image_set.metadata["category"].to_numpy(dtype=str)
    groups = image_set.metadata["group"].to_numpy(dtype=str)

    def probe(features: np.ndarray) -> float:
        classifier = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
        return cross_val_score(classifier, features, categories, groups=groups, cv=GroupKFold(5),
                               scoring="balanced_accuracy").mean()

    bundled = extract(image_set, describe("bundled:efficientnet_lite0"), ["final"], store)["final"].features
    pixels = extract(image_set, describe("pixels:32"), ["final"], store)["final"].features
    assert bundled.shape == (900, 1280) and np.isfinite(bundled).all()
    bundled_accuracy, pixel_accuracy = probe(np.asarray(bundled)), probe(np.asarray(pixels))
    assert bundled_accuracy > 0.65 and bundled_accuracy > pixel_accuracy + 0.25  # measured: 0.74 vs 0.32


def test_an_encoder_that_cannot_be_described_is_unavailable_not_an_exception(small_set, tmp_path) -> None:
    statuses = layer_statuses(small_set, f"file:timm:resnet18@{tmp_path / 'gone.pt'}", ["final"],
                              FeatureStore(tmp_path / "store"))
    assert [status.state for status in statuses] == ["unavailable"] and "gone.pt" in statuses[0].detail


VIT_TINY = "untrained:timm:vit_tiny_patch16_224"  # flat pooling: 197 tokens x 192 = 37,824 values a block


@pytest.fixture(scope="module")
def demo_handful(isolated_cache) -> ImageSet:
    """8 images spread over the demo set."""
    from core.data.datasets import demo

    return demo(isolated_cache).subset(range(0, 384, 48))


def raw_flat_maps(image_set: ImageSet, spec: str, layer: str) -> np.ndarray:
    """(N, n_features) unreduced flattened block outputs, straight from the encoder's forward."""
    import torch

    from core.data.images import load_image

    encoder = load_encoder(describe(spec))
    images = torch.stack([encoder.transform(load_image(path)) for path in image_set.paths])
    with torch.inference_mode():
        return encoder.forward_layers(images, (layer,), "flat")[layer].numpy()


def test_flat_features_are_n_by_dim_for_vit_tokens_and_cnn_maps(demo_handful, tmp_path) -> None:
    store = FeatureStore(tmp_path)
    vit = extract(demo_handful, describe(VIT_TINY), ["blocks.5", "final"], store, pooling="flat")
    cnn = extract(demo_handful, describe("untrained:timm:resnet18"), ["layer3"], store, pooling="flat:256")
    assert vit["blocks.5"].features.shape == (8, 4096) and vit["blocks.5"].key.pooling == "flat:4096/srp-seed0"
    assert vit["final"].features.shape == (8, 192) and vit["final"].key.pooling == "model"  # final keeps its own
    assert cnn["layer3"].features.shape == (8, 256) and cnn["layer3"].key.pooling == "flat:256/srp-seed0"


def test_flat_keeps_every_token_prefix_first_and_every_map_in_c_order(small_set) -> None:
    """Known answer: the flattened tokens' first token is the cls pooling, the rest average to mean; maps to gap."""
    import torch

    encoder = load_encoder(describe(VIT_TINY))
    images = torch.stack([encoder.transform(Image.open(path).convert("RGB")) for path in small_set.paths[:2]])
    with torch.inference_mode():
        vit = encoder.forward_layers
        tokens = vit(images, ("blocks.5",), "flat")["blocks.5"].reshape(2, 197, 192)
        torch.testing.assert_close(tokens[:, 0], vit(images, ("blocks.5",), "cls")["blocks.5"])
        torch.testing.assert_close(tokens[:, 1:].mean(dim=1), vit(images, ("blocks.5",), "mean")["blocks.5"])
        cnn = load_encoder(describe("untrained:timm:resnet18")).forward_layers
        maps = cnn(images, ("layer2",), "flat:64")["layer2"].reshape(2, 128, 28, 28)
        torch.testing.assert_close(maps.mean(dim=(2, 3)), cnn(images, ("layer2",), "gap")["layer2"])


def test_flat_features_are_identical_across_runs(demo_handful, tmp_path) -> None:
    runs = [extract(demo_handful, describe(VIT_TINY), ["blocks.2", "blocks.11"], FeatureStore(tmp_path / name),
                    pooling="flat:512", batch_size=4) for name in ("first", "second")]
    for layer in ("blocks.2", "blocks.11"):
        np.testing.assert_array_equal(runs[0][layer].features, runs[1][layer].features)
    assert not np.allclose(runs[0]["blocks.2"].features, runs[0]["blocks.11"].features)


def test_flat_features_keep_the_pairwise_distances_of_the_raw_maps(demo_handful, tmp_path) -> None:
    """Johnson-Lindenstrauss: 37824 -> 4096 values changes each euclidean distance by ~1 / sqrt(4096) at most."""
    from core.analyses.rdm import rdm, upper_triangle

    raw = raw_flat_maps(demo_handful, VIT_TINY, "blocks.5")
    flat = extract(demo_handful, describe(VIT_TINY), ["blocks.5"], FeatureStore(tmp_path), pooling="flat")["blocks.5"]
    assert raw.shape == (8, 37824)
    raw_distances = upper_triangle(rdm(raw, "euclidean"))
    relative_error = np.abs(upper_triangle(rdm(flat.features, "euclidean")) - raw_distances) / raw_distances
    assert np.median(relative_error) < 0.02 and relative_error.max() < 0.05  # measured: median 0.005, max 0.019


def test_a_block_no_wider_than_dim_is_stored_unprojected(small_set, tmp_path) -> None:
    spec = "untrained:timm:resnet18"  # layer4: 512 x 7 x 7 = 25088 values <= 32768
    stored = extract(small_set, describe(spec), ["layer4"], FeatureStore(tmp_path), pooling="flat:32768")["layer4"]
    assert stored.features.shape == (12, 25088)
    np.testing.assert_allclose(stored.features, raw_flat_maps(small_set, spec, "layer4"), rtol=1e-4, atol=1e-5)


def test_flat_keys_differ_from_cls_keys_and_from_other_dims(small_set) -> None:
    info = describe(VIT_TINY)
    keys = {pooling: feature_keys(small_set, info, ["blocks.5", "final"], pooling)
            for pooling in ("cls", "flat", "flat:4096", "flat:2048")}
    blocks = {pooling: key["blocks.5"] for pooling, key in keys.items()}
    assert [key.pooling for key in blocks.values()] == ["cls", "flat:4096/srp-seed0", "flat:4096/srp-seed0",
                                                         "flat:2048/srp-seed0"]
    assert len({blocks["cls"].digest, blocks["flat"].digest, blocks["flat:2048"].digest}) == 3
    assert blocks["flat"] == blocks["flat:4096"]  # one canonical name, one array
    assert len({key["final"] for key in keys.values()}) == 1  # final is the model's own embedding whatever the pooling


def test_pixels_rejects_flat_pooling_with_a_clear_message(small_set, tmp_path) -> None:
    with pytest.raises(ValueError, match=r"pixels:32 has no blocks, only 'final' .* flat pooling does not apply"):
        extract(small_set, describe("pixels:32"), ["final"], FeatureStore(tmp_path), pooling="flat")


def test_a_flat_batch_is_freed_before_the_next_forward(small_set, tmp_path, monkeypatch) -> None:
    """Unreduced maps of more than one batch never exist: the previous batch's outputs are gone at every forward."""
    import weakref

    previous: list[weakref.ref] = []
    alive_at_forward: list[int] = []

    def load_tracking(info, device):
        encoder = load_encoder(info, device)

        def forward_layers(images, layers, pooling):
            alive_at_forward.append(sum(output() is not None for output in previous))
            outputs = encoder.forward_layers(images, layers, pooling)
            previous[:] = [weakref.ref(output) for output in outputs.values()]
            return outputs

        return dataclasses.replace(encoder, forward_layers=forward_layers)

    monkeypatch.setattr(extract_module, "load_encoder", load_tracking)
    features = extract(small_set, describe("untrained:timm:resnet18"), ["layer1", "layer2"], FeatureStore(tmp_path),
                       pooling="flat:64", batch_size=4)
    assert alive_at_forward == [0, 0, 0] and features["layer1"].features.shape == (12, 64)


def test_an_interrupted_flat_extraction_resumes_with_the_same_projection(small_set, tmp_path) -> None:
    store, spec, layers = FeatureStore(tmp_path), "untrained:timm:resnet18", ["layer3", "final"]

    def kill_after_two_batches(progress) -> None:
        if progress.done >= 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract(small_set, describe(spec), layers, store, pooling="flat:64", batch_size=4, flush_s=0,
                progress=kill_after_two_batches)
    resumed = extract(small_set, describe(spec), layers, store, pooling="flat:64", batch_size=4)
    fresh = extract(small_set, describe(spec), layers, FeatureStore(tmp_path / "fresh"), pooling="flat:64", batch_size=4)
    for layer in layers:
        np.testing.assert_array_equal(resumed[layer].features, fresh[layer].features)


def test_cli_takes_flat_and_flat_dim_poolings(small_set, tmp_path, capsys) -> None:
    arguments = ["--cache", str(tmp_path / "cache"), "extract", "--dataset", f"folder:{small_set.root}",
                 "--encoder", "untrained:timm:resnet18", "--layers", "layer4"]
    assert cli.main(arguments + ["--pooling", "flat:64"]) == 0
    assert "\tlayer4\t12x64\t" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(arguments + ["--pooling", "flat:8"])
    assert "argument --pooling: invalid pooling_name value: 'flat:8'" in capsys.readouterr().err
    assert cli.main(arguments[:-3] + ["pixels:4", "--pooling", "flat"]) == 2
    assert "pixels:4 has no blocks" in capsys.readouterr().err
