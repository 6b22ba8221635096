"""Dataset loaders against the real OASIS and THINGS files and small trees built in tmp_path."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from core.data.datasets import (DATASET_SPEC_HELP, SPEC_FORMS, DatasetError, ImageSet, image_folder, load_dataset,
                               manifest, oasis, things)
from core.data.images import load_image
from core.data.tables import MissingPathError
from tests.paths import SHARED_DATA

OASIS_ROOT = SHARED_DATA / "oasis"
THINGS_DIR = SHARED_DATA / "gwtune" / "THINGS"
ONE_HOT_CSV = THINGS_DIR / "category_mat_manual_preprocessed.csv"
GROUP_EMBEDDING = THINGS_DIR / "THINGS_embedding_Group1.npy"
CATEGORY_TSV = SHARED_DATA / "things" / "things_misc" / "Categories_final_20200131.tsv"
SMALL_OASIS_ROWS = 8


def _need(*paths: Path) -> None:
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        pytest.skip(f"real data absent: {missing}")


def _tiny_image(path: Path, colour: tuple[int, ...] = (200, 30, 30), mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (8, 6), colour).save(path)
    return path


@pytest.fixture(scope="module")
def real_oasis() -> ImageSet:
    _need(OASIS_ROOT / "OASIS.csv", OASIS_ROOT / "images")
    return oasis(OASIS_ROOT)


@pytest.fixture()
def small_oasis(tmp_path: Path) -> Path:
    """The first SMALL_OASIS_ROWS rows of the real OASIS.csv (CR line endings kept) with their images."""
    _need(OASIS_ROOT / "OASIS.csv")
    lines = (OASIS_ROOT / "OASIS.csv").read_bytes().split(b"\r")
    root = tmp_path / "oasis"
    (root / "images").mkdir(parents=True)
    (root / "OASIS.csv").write_bytes(b"\r".join(lines[:SMALL_OASIS_ROWS + 1]))
    for line in lines[1:SMALL_OASIS_ROWS + 1]:
        theme = line.split(b",")[1].decode().strip()
        shutil.copy(OASIS_ROOT / "images" / f"{theme}.jpg", root / "images" / f"{theme}.jpg")
    return root


def _edit_csv(root: Path, edit) -> None:
    """Rewrite root/OASIS.csv as edit(table), keeping the unnamed first column."""
    table = edit(pd.read_csv(root / "OASIS.csv", lineterminator="\r"))
    table.rename(columns={"Unnamed: 0": ""}).to_csv(root / "OASIS.csv", index=False)


# --- real OASIS ---------------------------------------------------------------------------------------------

def test_real_oasis_counts_groups_and_ratings(real_oasis: ImageSet) -> None:
    metadata = real_oasis.metadata
    assert len(real_oasis) == 900 and list(metadata.index) == list(range(900))
    assert list(metadata.columns[:5]) == ["image_id", "category", "group", "valence", "arousal"]
    assert {"oasis_id", "Source", "Valence_SD", "Valence_N", "Arousal_SD", "Arousal_N"} <= set(metadata.columns)
    assert metadata["oasis_id"].iloc[0] == "I1" and metadata["image_id"].iloc[0] == "Acorns 1"
    # The file says "Scenery"; the paper calls the category "Scene".
    assert metadata["category"].value_counts().to_dict() == {"Person": 346, "Scenery": 220, "Object": 200,
                                                             "Animal": 134}
    sizes = metadata["group"].value_counts()
    assert len(sizes) == 248 and sizes.min() == 1 and sizes.max() == 31
    assert metadata.loc[metadata["image_id"] == "Acorns 3", "group"].item() == "Acorns"
    for column in ("valence", "arousal"):
        assert metadata[column].between(1, 7).all() and metadata[column].dtype == np.float64
    assert real_oasis.has_affect and real_oasis.categories == ["Animal", "Object", "Person", "Scenery"]
    assert real_oasis.reference_embedding is None
    assert len(real_oasis.fingerprint) == 16 and int(real_oasis.fingerprint, 16) >= 0


def test_real_oasis_strips_whitespace_and_points_at_existing_files(real_oasis: ImageSet) -> None:
    ids = real_oasis.metadata["image_id"]
    assert "Crosswalk 1" in set(ids) and not ids.str.endswith(" ").any()
    assert all(path.is_absolute() and path.is_file() for path in real_oasis.paths)
    row = ids[ids == "Crosswalk 1"].index[0]
    assert real_oasis.paths[row].name == "Crosswalk 1.jpg"


def test_real_oasis_loads_fast_and_fingerprint_is_stable(real_oasis: ImageSet) -> None:
    started = time.perf_counter()
    again = oasis(str(OASIS_ROOT))
    assert time.perf_counter() - started < 1.0
    assert again.fingerprint == real_oasis.fingerprint


def test_monkey_3_png_with_alpha_loads_as_rgb(real_oasis: ImageSet) -> None:
    path = next(path for path in real_oasis.paths if path.name == "Monkey 3.jpg")
    with Image.open(path) as raw:
        assert raw.format == "PNG" and raw.mode == "RGBA"
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (500, 400)


# --- load_image ---------------------------------------------------------------------------------------------

def test_load_image_composites_transparency_onto_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    rgba.save(tmp_path / "a.png")
    image = load_image(tmp_path / "a.png")
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (255, 0, 0) and image.getpixel((3, 3)) == (255, 255, 255)
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 0, 10, 200, 10] + [0] * 762)
    palette.putpixel((1, 1), 1)
    palette.save(tmp_path / "p.gif", transparency=0)
    assert np.asarray(load_image(tmp_path / "p.gif"))[0, 0].tolist() == [255, 255, 255]
    assert load_image(_tiny_image(tmp_path / "grey.png", 90, "L")).getpixel((0, 0)) == (90, 90, 90)


def test_load_image_names_corrupt_truncated_and_missing_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not an image at all")
    with pytest.raises(DatasetError, match="garbage.jpg"):
        load_image(garbage)
    whole = tmp_path / "whole.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(whole)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(DatasetError, match="truncated.jpg"):
        load_image(truncated)
    with pytest.raises(DatasetError, match="absent.jpg"):
        load_image(tmp_path / "absent.jpg")


# --- OASIS format errors and fingerprint ----------------------------------------------------------------------

def test_small_oasis_reads_cr_lf_and_crlf_alike(small_oasis: Path) -> None:
    reference = oasis(small_oasis).metadata
    assert len(reference) == SMALL_OASIS_ROWS
    text = (small_oasis / "OASIS.csv").read_bytes()
    for ending in (b"\n", b"\r\n"):
        (small_oasis / "OASIS.csv").write_bytes(text.replace(b"\r", ending))
        pd.testing.assert_frame_equal(oasis(small_oasis).metadata, reference)


def test_fingerprint_follows_image_bytes_and_csv_not_timestamps(small_oasis: Path) -> None:
    first = oasis(small_oasis).fingerprint
    assert oasis(small_oasis).fingerprint == first
    image = small_oasis / "images" / "Acorns 2.jpg"
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert oasis(small_oasis).fingerprint == first  # a touched (or copied) file is the same image
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in the middle, same size, same mtime
    image.write_bytes(bytes(data))
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    flipped = oasis(small_oasis).fingerprint
    assert flipped != first
    with image.open("ab") as handle:
        handle.write(b"\0")
    resized = oasis(small_oasis).fingerprint
    assert resized not in (first, flipped)
    _edit_csv(small_oasis, lambda table: table.assign(Valence_mean=table["Valence_mean"] + 0.01))
    assert oasis(small_oasis).fingerprint not in (first, flipped, resized)


def test_oasis_missing_column_is_named_with_columns_found(small_oasis: Path) -> None:
    _edit_csv(small_oasis, lambda table: table.drop(columns="Arousal_mean"))
    with pytest.raises(DatasetError, match="Arousal_mean") as caught:
        oasis(small_oasis)
    assert "Valence_SD" in str(caught.value) and "OASIS.csv" in str(caught.value)


def test_oasis_nan_rating_names_row_and_column(small_oasis: Path) -> None:
    _edit_csv(small_oasis, lambda table: table.assign(Valence_mean=table["Valence_mean"].where(table.index != 4)))
    with pytest.raises(DatasetError, match="Valence_mean") as caught:
        oasis(small_oasis)
    assert "line 6" in str(caught.value) and "Alcohol 2" in str(caught.value)


def test_oasis_duplicate_theme_is_named(small_oasis: Path) -> None:
    _edit_csv(small_oasis, lambda table: table.assign(Theme=table["Theme"].replace("Acorns 2", "Acorns 1")))
    with pytest.raises(DatasetError, match="duplicate Theme.*Acorns 1"):
        oasis(small_oasis)


def test_oasis_missing_image_names_theme_and_expected_path(small_oasis: Path) -> None:
    (small_oasis / "images" / "Alcohol 1.jpg").unlink()
    with pytest.raises(DatasetError, match="Alcohol 1") as caught:
        oasis(small_oasis)
    assert str(small_oasis / "images" / "Alcohol 1.jpg") in str(caught.value)


def test_oasis_corrupt_image_surfaces_only_when_loaded(small_oasis: Path) -> None:
    (small_oasis / "images" / "Acorns 3.jpg").write_bytes(b"\xff\xd8 broken")
    image_set = oasis(small_oasis)
    with pytest.raises(DatasetError, match="Acorns 3.jpg"):
        load_image(image_set.paths[2])


def test_oasis_missing_folder_csv_or_images(tmp_path: Path, small_oasis: Path) -> None:
    with pytest.raises(DatasetError, match="not an existing folder"):
        oasis(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="OASIS.csv not found"):
        oasis(tmp_path)
    shutil.rmtree(small_oasis / "images")
    with pytest.raises(DatasetError, match="images"):
        oasis(small_oasis)


def test_subset_reindexes_and_refingerprints(small_oasis: Path) -> None:
    image_set = oasis(small_oasis)
    part = image_set.subset([5, 0, 2])
    assert list(part.metadata.index) == [0, 1, 2]
    assert part.metadata["image_id"].tolist() == [image_set.metadata["image_id"][i] for i in (5, 0, 2)]
    assert part.paths == (image_set.paths[5], image_set.paths[0], image_set.paths[2])
    assert part.fingerprint != image_set.fingerprint and len(part) == 3
    assert image_set.subset(range(len(image_set))).fingerprint == image_set.fingerprint
    with pytest.raises(DatasetError, match="no images"):
        image_set.subset([])


# --- THINGS -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def things_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All 1854 THINGS concept folders (one tiny placeholder image each) and unique_id.txt from the real ids."""
    _need(ONE_HOT_CSV)
    concept_ids = pd.read_csv(ONE_HOT_CSV, index_col=0).index.tolist()
    root = tmp_path_factory.mktemp("things")
    for concept in concept_ids:
        folder = root / "object_images" / concept
        folder.mkdir(parents=True)
        (folder / f"{concept}_01b.jpg").write_bytes(b"placeholder")
    (root / "unique_id.txt").write_text("\n".join(concept_ids) + "\n")
    return root


def test_things_full_with_real_embedding_and_one_hot_categories(things_root: Path) -> None:
    _need(GROUP_EMBEDDING)
    image_set = things(things_root, embedding=GROUP_EMBEDDING, categories=ONE_HOT_CSV)
    one_hot = pd.read_csv(ONE_HOT_CSV, index_col=0)
    assert len(image_set) == 1854 and image_set.name == "things"
    assert image_set.reference_embedding.shape == (1854, 90)
    assert image_set.reference_embedding.dtype == np.float32
    np.testing.assert_array_equal(image_set.reference_embedding, np.load(GROUP_EMBEDDING)[0])
    assert image_set.reference_name == "THINGS_embedding_Group1"
    assert image_set.metadata["image_id"].tolist() == one_hot.index.tolist()
    assert (image_set.metadata["group"] == image_set.metadata["image_id"]).all()
    assert image_set.metadata["category"].value_counts().to_dict() == one_hot.sum(axis=0)[lambda s: s > 0].to_dict()
    assert len(image_set.categories) == 28 and not image_set.has_affect
    assert image_set.paths[0] == things_root / "object_images" / "aardvark" / "aardvark_01b.jpg"


def test_things_with_27_category_tsv_handles_several_zero_and_homonyms(things_root: Path) -> None:
    _need(CATEGORY_TSV)
    metadata = things(things_root, categories=CATEGORY_TSV).metadata.set_index("image_id")
    assert metadata.loc["aardvark", "category"] == "animal"
    assert metadata.loc["aardvark", "categories"] == "animal;mammal"
    assert metadata.loc["acorn", "category"] == "uncategorised" and metadata.loc["acorn", "categories"] == ""
    assert (metadata["category"] == "uncategorised").sum() == 406
    assert metadata.loc["bat1", "category"] == "animal" and metadata.loc["bat2", "category"] == "sports equipment"
    assert metadata.loc["flip_flop", "categories"] == "clothing;footwear"
    assert metadata.loc["first-aid_kit", "category"] == "medical equipment"


@pytest.fixture()
def small_things(tmp_path: Path) -> tuple[Path, list[str], list[int]]:
    """30 real concepts (every 61st id) with two files each, in reverse folder-name order in unique_id.txt."""
    _need(ONE_HOT_CSV)
    all_ids = pd.read_csv(ONE_HOT_CSV, index_col=0).index.tolist()
    rows = list(range(0, 1854, 61))[:30][::-1]
    concept_ids = [all_ids[row] for row in rows]
    for concept in concept_ids:
        _tiny_image(tmp_path / "images" / concept / "b.jpg")
        _tiny_image(tmp_path / "images" / concept / "a.png")
    (tmp_path / "images" / concept_ids[0] / ".hidden.jpg").write_bytes(b"x")
    (tmp_path / "unique_id.txt").write_text("\r\n".join(concept_ids))
    return tmp_path, concept_ids, rows


def test_things_small_text_embedding_order_and_first_file(small_things, tmp_path: Path) -> None:
    _need(GROUP_EMBEDDING)
    root, concept_ids, rows = small_things
    embedding = np.load(GROUP_EMBEDDING)[0][rows]
    np.savetxt(tmp_path / "spose_like.txt", embedding)
    image_set = things(root, embedding=tmp_path / "spose_like.txt")
    assert image_set.metadata["image_id"].tolist() == concept_ids
    assert all(path.name == "a.png" for path in image_set.paths)
    np.testing.assert_allclose(image_set.reference_embedding, embedding, rtol=1e-6)
    assert set(image_set.metadata["category"]) == {"all"}
    part = image_set.subset([3, 1])
    np.testing.assert_allclose(part.reference_embedding, embedding[[3, 1]], rtol=1e-6)
    (root / "unique_id.txt").unlink()
    assert things(root).metadata["image_id"].tolist() == sorted(concept_ids)


def test_things_errors_name_the_problem(small_things, tmp_path: Path) -> None:
    _need(GROUP_EMBEDDING, ONE_HOT_CSV)
    root, concept_ids, rows = small_things
    with pytest.raises(DatasetError, match="1854 rows but the dataset has 30"):
        things(root, embedding=GROUP_EMBEDDING)
    np.save(tmp_path / "bad.npy", np.zeros((2, 30, 4)))
    with pytest.raises(DatasetError, match=r"\(2, 30, 4\)"):
        things(root, embedding=tmp_path / "bad.npy")
    pd.read_csv(ONE_HOT_CSV, index_col=0).drop(index=concept_ids[:2]).to_csv(tmp_path / "partial.csv")
    with pytest.raises(DatasetError, match=f"no row for 2 concept.*{concept_ids[0]}"):
        things(root, categories=tmp_path / "partial.csv")
    with pytest.raises(DatasetError, match="unique-id file .*absent.txt not found"):
        things(root, unique_ids=tmp_path / "absent.txt")
    shutil.rmtree(root / "images" / concept_ids[5])
    with pytest.raises(DatasetError, match=concept_ids[5]):
        things(root)
    shutil.rmtree(root / "images")
    with pytest.raises(DatasetError, match="object_images"):
        things(root)


# --- category folders and manifests -------------------------------------------------------------------------

def test_image_folder_tree(tmp_path: Path) -> None:
    _tiny_image(tmp_path / "cats" / "tabby.JPG")
    _tiny_image(tmp_path / "cats" / "sub" / "kitten.png")
    _tiny_image(tmp_path / "dogs" / "rex.webp")
    _tiny_image(tmp_path / ".thumbs" / "skip.png")
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    image_set = image_folder(tmp_path)
    assert image_set.name == f"folder:{tmp_path.name}" and len(image_set) == 3
    assert image_set.metadata["image_id"].tolist() == ["cats/sub/kitten", "cats/tabby", "dogs/rex"]
    assert image_set.metadata["category"].tolist() == ["cats", "cats", "dogs"]
    assert (image_set.metadata["group"] == image_set.metadata["category"]).all()
    assert image_set.categories == ["cats", "dogs"] and not image_set.has_affect
    assert load_image(image_set.paths[2]).size == (8, 6)


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not an existing folder"):
        image_folder(tmp_path / "absent")
    with pytest.raises(DatasetError, match="no images"):
        image_folder(tmp_path)
    _tiny_image(tmp_path / "cats" / "a.jpg")
    _tiny_image(tmp_path / "cats" / "a.png")
    with pytest.raises(DatasetError, match="duplicate image ids.*cats/a"):
        image_folder(tmp_path)


def _manifest_tree(tmp_path: Path) -> Path:
    _tiny_image(tmp_path / "pics" / "one.jpg")
    _tiny_image(tmp_path / "pics" / "two.png")
    elsewhere = _tiny_image(tmp_path / "other" / "three.bmp")
    pd.DataFrame({"path": ["pics/one.jpg", "pics/two.png", str(elsewhere)],
                  "category": ["x", "y", "x"], "valence": [1.5, 6.0, 4.0], "arousal": [2, 3, 4],
                  "note": ["a", "b", "c"]}).to_csv(tmp_path / "list.csv", index=False)
    return tmp_path / "list.csv"


def test_manifest_happy_path_and_defaults(tmp_path: Path) -> None:
    csv_file = _manifest_tree(tmp_path)
    image_set = manifest(csv_file)
    metadata = image_set.metadata
    assert image_set.name == "manifest:list" and image_set.root == tmp_path
    assert metadata["image_id"].tolist() == ["one", "two", "three"]
    assert metadata["group"].tolist() == ["x", "y", "x"] and metadata["note"].tolist() == ["a", "b", "c"]
    assert image_set.has_affect and metadata["arousal"].dtype == np.float64
    assert image_set.paths[2] == tmp_path / "other" / "three.bmp"
    pd.DataFrame({"path": ["pics/one.jpg", "other/three.bmp"]}).to_csv(tmp_path / "bare.csv", index=False)
    bare = manifest(tmp_path / "bare.csv").metadata
    assert bare["category"].tolist() == ["all", "all"] and bare["group"].tolist() == ["all", "all"]
    assert not manifest(tmp_path / "bare.csv").has_affect


def test_manifest_errors_name_row_column_and_file(tmp_path: Path) -> None:
    csv_file = _manifest_tree(tmp_path)
    table = pd.read_csv(csv_file)
    with pytest.raises(DatasetError, match="manifest .*absent.csv not found"):
        manifest(tmp_path / "absent.csv")
    table.rename(columns={"path": "file"}).to_csv(tmp_path / "nopath.csv", index=False)
    with pytest.raises(DatasetError, match="'path' is missing.*'file'"):
        manifest(tmp_path / "nopath.csv")
    table.assign(path=["pics/one.jpg", "pics/gone.jpg", "pics/two.png"]).to_csv(tmp_path / "gone.csv", index=False)
    with pytest.raises(DatasetError, match="line 3.*gone.jpg"):
        manifest(tmp_path / "gone.csv")
    table.assign(valence=[1.0, None, 2.0]).to_csv(tmp_path / "nan.csv", index=False)
    with pytest.raises(DatasetError, match="valence .*line 3"):
        manifest(tmp_path / "nan.csv")
    table.assign(image_id=["a", "b", "a"]).to_csv(tmp_path / "dup.csv", index=False)
    with pytest.raises(DatasetError, match="duplicate image ids a; every image"):
        manifest(tmp_path / "dup.csv")
    table.iloc[:0].to_csv(tmp_path / "empty.csv", index=False)
    with pytest.raises(DatasetError, match="no images"):
        manifest(tmp_path / "empty.csv")


# --- spec strings -------------------------------------------------------------------------------------------

def test_load_dataset_specs(tmp_path: Path, small_things) -> None:
    csv_file = _manifest_tree(tmp_path / "m")
    assert load_dataset(f"manifest:{csv_file}", tmp_path).fingerprint == manifest(csv_file).fingerprint
    assert load_dataset(f" folder:{tmp_path / 'm' / 'pics'} ", tmp_path).name == "folder:pics"
    root, concept_ids, _ = small_things
    with_categories = load_dataset(f"things:{root}|categories={ONE_HOT_CSV}", tmp_path)
    assert len(with_categories) == 30 and "categories" in with_categories.metadata.columns
    with pytest.raises(DatasetError, match="bad THINGS option"):
        load_dataset(f"things:{root}|colour=red", tmp_path)
    with pytest.raises(DatasetError) as caught:
        load_dataset("imagenet:/data", tmp_path)
    assert all(form in str(caught.value) for form in SPEC_FORMS)
    with pytest.raises(DatasetError, match="names no path"):
        load_dataset("oasis:", tmp_path)
    assert all(form.split(":")[0] in DATASET_SPEC_HELP for form in SPEC_FORMS)


def test_load_dataset_oasis_spec(real_oasis: ImageSet, tmp_path: Path) -> None:
    assert load_dataset(f"oasis:{OASIS_ROOT}", tmp_path).fingerprint == real_oasis.fingerprint


@pytest.mark.parametrize("kind, name", [("oasis", "oasis"), ("things", "things"), ("folder", "images"),
                                        ("manifest", "rows.csv"), ("embeddings", "group1.npy")])
def test_a_dataset_path_that_is_not_there_says_where_it_looked(kind: str, name: str, tmp_path: Path) -> None:
    with pytest.raises(MissingPathError) as missing:
        load_dataset(f"{kind}:{tmp_path / name}", tmp_path)
    assert missing.value.path == tmp_path / name
    if "." in name:  # there, but the wrong kind: a folder for a file, a file for a folder
        (tmp_path / name).mkdir()
    else:
        (tmp_path / name).write_text("")
    with pytest.raises(DatasetError) as wrong:
        load_dataset(f"{kind}:{tmp_path / name}", tmp_path)
    assert not isinstance(wrong.value, MissingPathError), wrong.value
