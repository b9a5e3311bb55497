"""The embedded benchmark writer: determinism, the real on-disk formats, completeness marker."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from udaseg.data import datasets as D
from udaseg.benchmark import writer as demo
from udaseg.data import labels as L

SMALL = dict(n_source=6, n_target_train=4, n_target_val=3, source_size=(160, 90), target_size=(192, 96),
             n_synthia=4, progress=False)
GTA5_IDS = set(L.TRAINID_TO_LABELID) | {0, 4}  # + unlabeled, static (bins)
CITYSCAPES_IDS = GTA5_IDS | {1}  # + ego vehicle (the bonnet)
SYNTHIA_IDS = set(L.SYNTHIA_ID_OF_16) | {0, 16, 18, 20}  # + void, terrain, truck, train


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "a"
    manifest = demo.write_demo(root, seed=3, workers=1, **SMALL)
    return root, manifest


def test_same_seed_gives_the_same_bytes_whatever_the_workers(bench, tmp_path):
    root, _ = bench
    demo.write_demo(tmp_path / "b", seed=3, workers=2, **SMALL)
    a, b = _files(root), _files(tmp_path / "b")
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []


def test_another_seed_gives_other_scenes(bench, tmp_path):
    root, _ = bench
    demo.write_demo(tmp_path / "c", seed=4, workers=1, **SMALL)
    a, c = _files(root), _files(tmp_path / "c")
    images = [k for k in a if k.endswith(".png") and ("images/" in k or "leftImg8bit/" in k)]
    assert len(images) == 6 + 4 + 3
    assert all(a[k] != c[k] for k in images)


def test_layout_names_and_lists(bench):
    root, m = bench
    assert (root / "gta5" / "train.txt").read_text().split() == [f"{i:05d}.png" for i in range(1, 7)]
    for folder in ("images", "labels"):
        assert sorted(p.name for p in (root / "gta5" / folder).iterdir()) == [f"{i:05d}.png" for i in range(1, 7)]
    for folder in ("RGB", "GT/LABELS"):
        assert sorted(p.name for p in (root / "synthia" / folder).iterdir()) == [f"{i:07d}.png" for i in range(1, 5)]
    for split, n in (("train", 4), ("val", 3)):
        images = sorted((root / "cityscapes" / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
        assert len(images) == n
        assert {p.parent.name for p in images} <= set(demo.CITIES[split])
        for p in images:
            city, seq, frame, _ = p.name.split("_")
            assert city == p.parent.name and len(seq) == 6 and frame == "000019"
            stem = root / "cityscapes" / "gtFine" / split / city / p.name.replace("_leftImg8bit.png", "")
            assert Path(f"{stem}_gtFine_labelIds.png").is_file() and Path(f"{stem}_gtFine_color.png").is_file()
    assert m["counts"] == {"gta5": 6, "synthia": 4, "cityscapes_train": 4, "cityscapes_val": 3}


def test_gta5_labels_are_palette_pngs_of_labelids(bench):
    root, _ = bench
    for p in sorted((root / "gta5" / "labels").iterdir()):
        im = Image.open(p)
        assert im.mode == "P" and im.size == (160, 90)
        assert set(np.unique(np.asarray(im)).tolist()) <= GTA5_IDS
        palette = np.array(im.getpalette()[:768]).reshape(256, 3)
        assert palette[7].tolist() == [128, 64, 128] and palette[26].tolist() == [0, 0, 142]  # road, car
        image = Image.open(root / "gta5" / "images" / p.name)
        assert image.mode == "RGB" and image.size == (160, 90)


def test_cityscapes_labels_are_grey_labelids_at_image_size(bench):
    root, _ = bench
    for p in sorted((root / "cityscapes" / "gtFine").rglob("*_gtFine_labelIds.png")):
        im = Image.open(p)
        assert im.mode == "L" and im.size == (192, 96)
        ids = np.asarray(im)
        assert set(np.unique(ids).tolist()) <= CITYSCAPES_IDS
        assert (ids[-1] == 1).any()  # the ego car's bonnet at the bottom, as in Cityscapes
        colour = Image.open(str(p).replace("_labelIds", "_color"))
        assert colour.mode == "RGBA" and colour.size == (192, 96)
    for p in sorted((root / "cityscapes" / "leftImg8bit").rglob("*.png")):
        im = Image.open(p)
        assert im.mode == "RGB" and im.size == (192, 96)


def test_synthia_labels_are_16bit_three_channel(bench):
    root, _ = bench
    for p in sorted((root / "synthia" / "GT" / "LABELS").iterdir()):
        arr = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        assert arr.dtype == np.uint16 and arr.shape == (90, 160, 3)
        ids, inst, zero = arr[..., 2], arr[..., 1], arr[..., 0]  # OpenCV gives BGR: RGB channel 0 is last
        assert set(np.unique(ids).tolist()) <= SYNTHIA_IDS
        assert not zero.any()
        things = np.isin(ids, [10, 17, 8, 18, 19, 20, 12, 11])  # person, rider, car, truck, bus, train, moto, bike
        assert not inst[~things].any() and inst[things].any()
        # the same scene as the GTA5 copy (0000001.png ↔ 00001.png): same image, same classes
        gta5_name = p.name[2:]
        assert (root / "synthia" / "RGB" / p.name).read_bytes() == (root / "gta5" / "images" / gta5_name).read_bytes()
        gta = L.LABELID_TO_TRAINID[np.asarray(Image.open(root / "gta5" / "labels" / gta5_name))]
        assert np.array_equal(L.TRAINID19_TO_16[gta], L.SYNTHIA_LUT_16[ids])


def test_most_classes_appear_thin_ones_included(bench):
    root, m = bench
    seen = set()
    labels = list((root / "gta5" / "labels").iterdir()) + list((root / "cityscapes" / "gtFine").rglob("*_labelIds.png"))
    for p in labels:
        seen |= set(np.unique(L.LABELID_TO_TRAINID[np.asarray(Image.open(p))]).tolist())
    seen.discard(255)
    assert len(seen) >= 12, sorted(L.CLASSES_19[i] for i in seen)
    assert {L.CLASSES_19.index(c) for c in ("pole", "sign", "person", "car", "vegetation", "sky")} <= seen
    for domain in ("source", "target_train", "target_val"):
        assert abs(sum(m["class_frequencies"][domain]) - 1) < 1e-3


def test_the_real_readers_load_it(bench):
    root, _ = bench
    item = D.gta5(root / "gta5", split_list="train.txt")[0]
    assert tuple(item["image"].shape) == (3, 90, 160) and tuple(item["label"].shape) == (90, 160)
    assert len(D.synthia(root / "synthia", num_classes=16)) == 4
    val = D.cityscapes(root / "cityscapes", "val")
    assert len(val) == 3 and int(val[0]["label"].max()) == 255  # the bonnet is ignored
    assert len(D.cityscapes(root / "cityscapes", "train", with_labels=False)) == 4


def test_manifest_and_summary(bench):
    root, m = bench
    stored = json.loads((root / "manifest.json").read_text())
    assert stored == m
    assert stored["version"] == demo.DEMO_VERSION and stored["seed"] == 3
    assert stored["sizes"] == {"source": [160, 90], "target": [192, 96]}
    assert not (root / "manifest.json.tmp").exists()
    summary = (root / "DATA.md").read_text()
    assert f"version {demo.DEMO_VERSION}" in summary and "| sky |" in summary


def test_demo_is_complete(bench, tmp_path):
    root, m = bench
    assert demo.demo_is_complete(root) and demo.demo_is_complete(root, seed=3)
    assert not demo.demo_is_complete(root, seed=4)
    assert not demo.demo_is_complete(tmp_path / "nothing")
    assert not demo.demo_is_complete(tmp_path)  # empty folder
    (tmp_path / "manifest.json").write_text(json.dumps(dict(m, version=demo.DEMO_VERSION + 1)))
    assert not demo.demo_is_complete(tmp_path)  # another version
    (tmp_path / "manifest.json").write_text("{not json")
    assert not demo.demo_is_complete(tmp_path)


def test_rewrite_replaces_its_own_output_but_not_foreign_data(tmp_path):
    small = dict(SMALL, n_source=3, n_target_train=2, n_target_val=2, n_synthia=2)
    demo.write_demo(tmp_path / "d", seed=0, workers=1, **small)
    demo.write_demo(tmp_path / "d", seed=1, workers=1, **dict(small, n_source=2))
    assert sorted(p.name for p in (tmp_path / "d" / "gta5" / "images").iterdir()) == ["00001.png", "00002.png"]
    assert demo.demo_is_complete(tmp_path / "d", seed=1)
    (tmp_path / "e" / "gta5").mkdir(parents=True)
    with pytest.raises(FileExistsError):
        demo.write_demo(tmp_path / "e", seed=0, workers=1, **small)
    assert (tmp_path / "e" / "gta5").is_dir()
