"""The curated catalogue: real checkpoints of the four paradigms, described without weights, numbers that hold."""
from __future__ import annotations

import open_clip
import pytest
import timm
import torch

from core.encoders.catalogue import CATALOGUE, CLIP, CONTROL, PARADIGMS, entries_of
from core.encoders.registry import describe
from core.encoders.specs import FINAL_LAYER, parse_spec

PRETRAINED = [entry for entry in CATALOGUE if entry.spec.startswith(("timm:", "open_clip:"))]


def test_entries_are_canonical_unique_and_span_the_paradigms() -> None:
    assert [str(parse_spec(entry.spec)) for entry in CATALOGUE] == [entry.spec for entry in CATALOGUE]
    assert len({entry.spec for entry in CATALOGUE}) == len({entry.label for entry in CATALOGUE}) == len(CATALOGUE)
    counts = {paradigm: len(entries_of([paradigm])) for paradigm in PARADIGMS}
    assert all(count >= 4 for count in counts.values()), counts
    assert 25 <= len(CATALOGUE) - counts[CONTROL] <= 35


def test_every_pretrained_entry_is_a_real_checkpoint_of_its_library() -> None:
    timm_names, open_clip_names = set(timm.list_pretrained()), set(open_clip.list_pretrained())
    for entry in PRETRAINED:
        spec = parse_spec(entry.spec)
        known = (spec.arch, spec.tag) in open_clip_names if spec.framework == "open_clip" else spec.arch in timm_names
        assert known, f"{entry.spec} is not in {spec.framework}.list_pretrained()"


@pytest.mark.slow  # ~30 s: every architecture built on the meta device
@pytest.mark.parametrize("entry", PRETRAINED, ids=lambda entry: entry.spec)
def test_entries_describe_without_weights_and_their_sizes_hold(entry) -> None:
    info = describe(entry.spec)
    assert info.layers[-1] == FINAL_LAYER and info.preprocess
    spec = parse_spec(entry.spec)
    if spec.framework == "timm":
        with torch.device("meta"):
            model = timm.create_model(spec.arch, pretrained=False)
        image_tower = checkpoint = sum(parameter.numel() for parameter in model.parameters())
        assert len(info.layers) > 2  # blocks to pick, not only the embedding
        assert info.preprocess["input_size"][1:] == list(model.pretrained_cfg["input_size"][1:])
    else:
        model = open_clip.create_model(spec.arch, pretrained=None, device="meta")
        image_tower = sum(parameter.numel() for parameter in model.visual.parameters())
        checkpoint = sum(parameter.numel() for parameter in model.parameters())
        assert entry.paradigm == CLIP
        assert info.preprocess["mean"] == list(open_clip.get_pretrained_cfg(spec.arch, spec.tag)["mean"])
    assert entry.params_m == pytest.approx(image_tower / 1e6, rel=0.02)
    assert entry.download_mb == pytest.approx(4 * checkpoint / 1e6, rel=0.05)  # float32 on the hub
