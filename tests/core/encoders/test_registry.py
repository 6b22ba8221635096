"""Encoder specs, layer listing, bundled weights' known answers, offline failure."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image

from core.encoders import registry as encoders
from core.encoders.registry import describe, list_layers, load_encoder
from core.encoders.specs import EncoderSpecError, WeightsUnavailable, parse_spec

IMAGENET_TABBY, IMAGENET_TIGER_CAT, IMAGENET_EGYPTIAN_CAT, IMAGENET_ESPRESSO = 281, 282, 285, 967


@pytest.mark.parametrize("spec", [
    "open_clip:ViT-B-16@openai", "timm:vit_base_patch16_224.augreg_in21k", "bundled:efficientnet_lite0",
    "untrained:timm:vit_base_patch16_224", "untrained:open_clip:ViT-B-16", "pixels:32",
    "file:timm:resnet50@/path/w.pt",
])
def test_spec_round_trip(spec: str) -> None:
    assert str(parse_spec(spec)) == spec


@pytest.mark.parametrize("bad", ["resnet50", "open_clip:ViT-B-16", "pixels:abc", "untrained:keras:x",
                                 "bundled:nope", "file:timm:resnet50"])
def test_bad_specs_say_what_is_valid(bad: str) -> None:
    with pytest.raises(EncoderSpecError) as error:
        parse_spec(bad)
    assert bad.split(":")[0] in str(error.value) or "spec" in str(error.value)


def test_untrained_vit_layers_are_its_twelve_blocks_then_final() -> None:
    info = describe("untrained:timm:vit_base_patch16_224")
    assert info.layers == tuple(f"blocks.{i}" for i in range(12)) + ("final",)
    assert info.poolings == ("cls", "mean") and info.default_pooling == "cls"


def test_resnet_layers_are_stem_and_four_stages() -> None:
    assert list_layers("untrained:timm:resnet50") == ["act1", "layer1", "layer2", "layer3", "layer4", "final"]
    assert describe("untrained:timm:resnet50").poolings == ("gap",)


def test_open_clip_vit_layers_are_its_resblocks() -> None:
    layers = list_layers("open_clip:ViT-B-16@openai")  # description needs no weights
    assert layers == [f"transformer.resblocks.{i}" for i in range(12)] + ["final"]


def test_describing_is_cheap_and_weight_identity_distinguishes_sources() -> None:
    started = time.perf_counter()
    trained = describe("timm:vit_base_patch16_224.augreg_in21k")
    untrained = describe("untrained:timm:vit_base_patch16_224")
    assert time.perf_counter() - started < 3.0
    assert trained.weights_id == "timm:vit_base_patch16_224.augreg_in21k"
    assert untrained.weights_id != trained.weights_id
    assert trained.preprocess["mean"] == [0.5, 0.5, 0.5]  # AugReg ViTs normalise to [-1, 1]


@pytest.fixture(scope="module")
def skimage_images() -> dict[str, Image.Image]:
    data = pytest.importorskip("skimage.data")
    return {"chelsea": Image.fromarray(data.chelsea()), "coffee": Image.fromarray(data.coffee())}


def test_bundled_efficientnet_knows_a_cat_and_an_espresso(skimage_images) -> None:
    encoder = load_encoder(describe("bundled:efficientnet_lite0"))
    batch = torch.stack([encoder.transform(skimage_images[name]) for name in ("chelsea", "coffee")])
    with torch.inference_mode():
        predicted = encoder.model(batch).argmax(dim=-1).tolist()
    assert predicted[0] in (IMAGENET_TABBY, IMAGENET_TIGER_CAT, IMAGENET_EGYPTIAN_CAT)
    assert predicted[1] == IMAGENET_ESPRESSO


def test_untrained_encoders_are_the_same_network_every_time() -> None:
    first = load_encoder(describe("untrained:timm:resnet18")).model.state_dict()
    second = load_encoder(describe("untrained:timm:resnet18")).model.state_dict()
    assert all(torch.equal(first[name], second[name]) for name in first)


@pytest.mark.parametrize("spec", ["untrained:timm:vit_small_patch16_224", "untrained:open_clip:ViT-B-32",
                                  "bundled:efficientnet_lite0"])
def test_one_pass_gives_every_layer_and_matches_single_layer_passes(spec: str, skimage_images) -> None:
    encoder = load_encoder(describe(spec))
    batch = torch.stack([encoder.transform(image) for image in skimage_images.values()])
    layers = encoder.info.layers
    with torch.inference_mode():
        together = encoder.forward_layers(batch, layers, encoder.info.default_pooling)
        alone = {layer: encoder.forward_layers(batch, (layer,), encoder.info.default_pooling)[layer]
                 for layer in (layers[0], layers[len(layers) // 2], "final")}
    assert list(together) == list(layers) or set(together) == set(layers)
    assert all(tensor.shape[0] == 2 and tensor.ndim == 2 for tensor in together.values())
    for layer, tensor in alone.items():
        np.testing.assert_allclose(together[layer].numpy(), tensor.numpy(), rtol=1e-4, atol=1e-5)


def test_pixels_are_the_resized_image(skimage_images) -> None:
    encoder = load_encoder(describe("pixels:8"))
    vector = encoder.forward_layers(encoder.transform(skimage_images["coffee"])[None], ("final",), "gap")["final"]
    assert vector.shape == (1, 3 * 8 * 8) and 0.0 <= float(vector.min()) and float(vector.max()) <= 1.0


def test_missing_weights_fail_fast_and_say_what_to_do() -> None:
    if encoders._reachable("huggingface.co", 443, 2.0):
        pytest.skip("the hub is reachable here; the offline failure cannot be observed")
    for spec in ("timm:vit_base_patch16_224.augreg_in21k", "open_clip:ViT-B-16@openai"):
        started = time.perf_counter()
        with pytest.raises(WeightsUnavailable) as error:
            load_encoder(describe(spec))
        assert time.perf_counter() - started < 5.0
        assert "file:" in str(error.value) and "network" in str(error.value)
        assert encoders.availability(describe(spec))[0] is False


def test_user_weight_file_loads_and_is_identified_by_its_hash(tmp_path) -> None:
    source = load_encoder(describe("untrained:timm:resnet18")).model
    path = tmp_path / "weights.pt"
    torch.save(source.state_dict(), path)
    encoder = load_encoder(describe(f"file:timm:resnet18@{path}"))
    assert all(torch.equal(value, source.state_dict()[name]) for name, value in encoder.model.state_dict().items())
    assert encoder.info.weights_id.startswith("sha256:")
    with pytest.raises(WeightsUnavailable):
        load_encoder(describe(f"file:timm:resnet18@{tmp_path / 'missing.pt'}"))
