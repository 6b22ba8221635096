"""Data roots: with REPSCOPE_DATA_ROOTS set, a browser can make the server read only what lies inside them."""
import builtins
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data import datasets
from core.data.roots import ROOTS_VARIABLE, DataRoots, OutsideRootsError, data_roots
from core.encoders.registry import describe
from core.encoders.specs import EncoderSpecError


@pytest.fixture()
def layout(tmp_path):
    """root/ (allowed: an image folder) and outside/ (an image, a CSV, an embedding, a weight file)."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    for folder in (root / "images" / "cats", outside / "images" / "dogs"):
        folder.mkdir(parents=True)
    pixels = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    for path in (root / "images" / "cats" / "a.jpg", root / "images" / "cats" / "b.jpg",
                 outside / "images" / "dogs" / "secret.jpg"):
        Image.fromarray(pixels).save(path)
    (outside / "OASIS.csv").write_text("Theme,Category,Valence_mean,Arousal_mean\n")
    np.save(outside / "embedding.npy", np.zeros((2, 3), np.float32))
    (outside / "w.pt").write_bytes(b"would be unpickled")
    return root, outside


@pytest.fixture()
def nothing_outside_is_opened(layout, monkeypatch):
    """Opening any file under outside/ fails the test loudly (what a refused path must never do)."""
    _, outside = layout
    def guarded(real_open):
        def opener(file, *args, **kwargs):
            if isinstance(file, (str, Path)) and Path(file).resolve().is_relative_to(outside):
                raise AssertionError(f"opened {file} outside the data roots")
            return real_open(file, *args, **kwargs)
        return opener
    monkeypatch.setattr(builtins, "open", guarded(builtins.open))
    monkeypatch.setattr(io, "open", guarded(io.open))  # pathlib's read_text / open
    monkeypatch.setattr(Image, "open", guarded(Image.open))


def refused(spec: str, roots: DataRoots, match: str = "outside the data roots") -> str:
    with pytest.raises(OutsideRootsError, match=match) as error:
        datasets.load_dataset(spec, roots.folders[0].parent / "cache", roots)
    assert str(roots.folders[0]) in str(error.value)  # the message names the root list
    return str(error.value)


def test_paths_outside_the_roots_are_refused_before_anything_is_opened(layout, nothing_outside_is_opened):
    root, outside = layout
    roots = DataRoots((root.resolve(),))
    refused(f"oasis:{outside}", roots)
    refused(f"folder:{root}/../outside/images", roots)  # `..` escape
    refused(f"things:{root}|embedding={outside / 'embedding.npy'}", roots)
    refused(f"embeddings:{outside / 'embedding.npy'}", roots)
    assert len(datasets.load_dataset(f"folder:{root / 'images'}", root.parent / "cache", roots)) == 2


def test_a_symlink_escape_is_refused(layout, nothing_outside_is_opened):
    root, outside = layout
    (root / "images" / "cats" / "c.jpg").symlink_to(outside / "images" / "dogs" / "secret.jpg")
    message = refused(f"folder:{root / 'images'}", DataRoots((root.resolve(),)))
    assert "c.jpg" in message and "resolves to" in message
    (root / "linked").symlink_to(outside / "images")
    refused(f"folder:{root / 'linked'}", DataRoots((root.resolve(),)))


def test_a_manifest_row_outside_the_roots_is_refused_naming_its_line(layout, nothing_outside_is_opened):
    root, outside = layout
    (root / "picks.csv").write_text(f"path,category\nimages/cats/a.jpg,cat\n{outside}/images/dogs/secret.jpg,dog\n")
    message = refused(f"manifest:{root / 'picks.csv'}", DataRoots((root.resolve(),)))
    assert "picks.csv line 3" in message


def test_without_roots_every_path_loads(layout):
    _, outside = layout
    assert len(datasets.load_dataset(f"folder:{outside / 'images'}", outside.parent / "cache", DataRoots())) == 1


def test_roots_come_from_the_environment_or_a_config_file(tmp_path):
    config = tmp_path / "repscope.toml"
    config.write_text(f'data_roots = ["{tmp_path / "a"}", "{tmp_path / "b"}"]\n')
    assert data_roots({}, [config]).folders == ((tmp_path / "a").resolve(), (tmp_path / "b").resolve())
    assert data_roots({ROOTS_VARIABLE: f"{tmp_path / 'c'}"}, [config]).folders == ((tmp_path / "c").resolve(),)
    assert not data_roots({}, [tmp_path / "missing.toml"]).confined


def test_a_weight_file_outside_the_roots_is_refused(layout, monkeypatch, nothing_outside_is_opened):
    root, outside = layout
    monkeypatch.setenv(ROOTS_VARIABLE, str(root))
    with pytest.raises(EncoderSpecError, match="weight file .* outside the data roots"):
        describe(f"file:timm:resnet18@{outside / 'w.pt'}")


def test_a_theme_or_concept_id_that_leaves_its_folder_is_refused(tmp_path, layout, nothing_outside_is_opened):
    _, outside = layout
    oasis = tmp_path / "root" / "oasis"
    (oasis / "images").mkdir(parents=True)
    (oasis / "OASIS.csv").write_text("Theme,Category,Valence_mean,Arousal_mean\n"
                                     "../../../outside/images/dogs/secret,Animal,4,4\n")
    with pytest.raises(datasets.DatasetError, match="line 2: Theme .* not a plain file name"):
        datasets.load_dataset(f"oasis:{oasis}", tmp_path / "cache", DataRoots(((tmp_path / "root").resolve(),)))


def test_a_saved_selection_opens_under_the_roots_and_its_rows_are_checked(layout, tmp_path):
    root, outside = layout
    selections = tmp_path / "cache" / "selections"
    selections.mkdir(parents=True)
    (selections / "mine.csv").write_text(f"path,category\n{root}/images/cats/a.jpg,cat\n")
    (selections / "theirs.csv").write_text(f"path,category\n{outside}/images/dogs/secret.jpg,dog\n")
    roots = DataRoots((root.resolve(),))
    assert len(datasets.load_dataset(f"manifest:{selections / 'mine.csv'}", tmp_path / "cache", roots)) == 1
    with pytest.raises(OutsideRootsError, match="theirs.csv line 2"):
        datasets.load_dataset(f"manifest:{selections / 'theirs.csv'}", tmp_path / "cache", roots)


def test_a_malformed_roots_setting_is_a_clear_error(tmp_path):
    config = tmp_path / "repscope.toml"
    config.write_text("data_roots = 5\n")
    with pytest.raises(datasets.DatasetError, match="must be a list of folder paths"):
        data_roots({}, [config])
