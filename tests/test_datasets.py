"""Each reader on small fixtures written in the real formats, and the bad inputs it must name."""
import warnings

import numpy as np
import pytest
from PIL import Image

from udaseg.data import datasets as D
from udaseg.data import labels as L
from udaseg.data.io import DatasetError
from udaseg.data.transforms import build_transforms

from fixtures import _palette_png, _rgb, _synthia_png, make_cityscapes, make_gta5


def test_gta5_palette_labels_to_trainids(tmp_path):
    make_gta5(tmp_path)
    ds = D.gta5(tmp_path)
    assert len(ds) == 3
    item = ds[0]
    assert item["image"].dtype.__str__() == "torch.uint8" and tuple(item["image"].shape) == (3, 6, 8)
    assert item["label"][0].tolist() == [0, 1, 2, 255, 13, 18, 11, 10]
    assert item["name"] == "00001.png" and item["orig_size"] == (6, 8)


def test_gta5_missing_pair_is_skipped_with_one_named_warning(tmp_path):
    make_gta5(tmp_path, n=4, drop_label=2)
    with pytest.warns(UserWarning, match=r"skipped 1 pair.*labels/00002\.png"):
        ds = D.gta5(tmp_path)
    assert [p[0].name for p in ds.pairs] == ["00001.png", "00003.png", "00004.png"]


def test_gta5_split_list(tmp_path):
    make_gta5(tmp_path, n=4)
    (tmp_path / "list.txt").write_text("00003.png\n00001.png\n\n")
    ds = D.gta5(tmp_path, split_list="list.txt")
    assert [p[0].name for p in ds.pairs] == ["00003.png", "00001.png"]
    with pytest.raises(DatasetError, match="nope.txt"):
        D.gta5(tmp_path, split_list="nope.txt")


def test_synthia_16bit_multichannel_label(tmp_path):
    (tmp_path / "RGB").mkdir()
    (tmp_path / "GT" / "LABELS").mkdir(parents=True)
    ids = np.array([[3, 4, 2, 21, 5, 7, 15, 9], [6, 1, 10, 17, 8, 19, 12, 11]] * 3, np.uint16)
    ids[0, 0] = 300  # an id no SYNTHIA class has: ignored, counted in a warning
    Image.fromarray(_rgb()).save(tmp_path / "RGB" / "0000001.png")
    _synthia_png(tmp_path / "GT" / "LABELS" / "0000001.png", ids)
    ds16 = D.synthia(tmp_path)
    with pytest.warns(UserWarning, match=r"0000001\.png: 1 pixels hold ids above 22"):
        lab = ds16[0]["label"]
    assert lab[0].tolist() == [255, 1, 2, 3, 4, 5, 6, 7]
    assert lab[1].tolist() == [8, 9, 10, 11, 12, 13, 14, 15]
    with pytest.warns(UserWarning):
        lab19 = D.synthia(tmp_path, num_classes=19)[0]["label"]
    assert lab19[1].tolist() == [8, 10, 11, 12, 13, 15, 17, 18]


def test_cityscapes_labels_and_unlabelled_target(tmp_path):
    make_cityscapes(tmp_path)
    ds = D.cityscapes(tmp_path, "val")
    assert len(ds) == 2 and ds.has_labels
    assert ds[0]["label"][0].tolist() == [0, 8, 10, 255, 13, 5, 6, 7]
    assert ds[0]["name"] == "frankfurt_000000_000019_leftImg8bit.png"
    # 16-class protocol: vegetation is 8, sky 9, car 12
    assert D.cityscapes(tmp_path, "val", num_classes=16)[0]["label"][0].tolist() == [0, 8, 9, 255, 12, 5, 6, 7]
    # the unlabelled target never opens label files: deleting them changes nothing
    for p in (tmp_path / "gtFine").rglob("*.png"):
        p.unlink()
    unl = D.cityscapes(tmp_path, "val", with_labels=False)
    assert "label" not in unl[1] and len(unl) == 2


def test_transforms_seeded_per_draw_and_aligned(tmp_path):
    make_cityscapes(tmp_path, cities=("a",), h=40, w=64)
    # write a label that encodes each pixel's column, and an image whose red channel is the same
    img_path = next((tmp_path / "leftImg8bit").rglob("*.png"))
    lab_path = next((tmp_path / "gtFine").rglob("*.png"))
    cols = np.tile(np.array([7, 8, 11, 12, 13, 17, 19, 20], np.uint8).repeat(8), (40, 1))
    Image.fromarray(cols, mode="L").save(lab_path)
    red = L.LABELID_TO_TRAINID[cols] * 10
    Image.fromarray(np.stack([red, red, red], -1).astype(np.uint8)).save(img_path)
    t = build_transforms({"random_scale": [0.5, 1.5], "crop": [24, 16], "hflip": 0.5})
    ds = D.cityscapes(tmp_path, "val", transform=t, seed=3)
    a, b, c = ds[(0, 1)], ds[(0, 1)], ds[(0, 2)]
    assert a["image"].equal(b["image"]) and a["label"].equal(b["label"])
    assert tuple(a["image"].shape) == (3, 16, 24)
    draws = [ds[(0, s)] for s in range(8)]
    assert any(not d["image"].equal(a["image"]) for d in draws)
    for d in draws + [c]:
        # bicubic blurs the image at class borders; away from them, label and image must agree
        lab, img = d["label"].numpy(), d["image"][0].numpy().astype(int)
        interior = (lab[:, 1:-1] == lab[:, :-2]) & (lab[:, 1:-1] == lab[:, 2:]) & (lab[:, 1:-1] != 255)
        assert np.abs(img[:, 1:-1][interior] - lab[:, 1:-1][interior] * 10).max() <= 12


@pytest.mark.parametrize("kind,layout", [("gta5", "images"), ("synthia", "RGB"), ("cityscapes", "leftImg8bit")])
def test_missing_root_or_split_names_the_path(tmp_path, kind, layout):
    with pytest.raises(DatasetError, match=str(tmp_path / "none")):
        D.build_dataset(kind, root=tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=layout):
        D.build_dataset(kind, root=tmp_path / "empty")


def test_empty_folders_and_unknown_kind(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    with pytest.raises(DatasetError, match="no PNG images"):
        D.gta5(tmp_path)
    (tmp_path / "leftImg8bit" / "val").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no \\*_leftImg8bit.png"):
        D.cityscapes(tmp_path, "val")
    with pytest.raises(DatasetError, match="split 'train'"):
        D.cityscapes(tmp_path, "train")
    with pytest.raises(ValueError, match="unknown dataset kind 'kitti'"):
        D.build_dataset("kitti", root=tmp_path)


def test_truncated_and_non_image_files_are_named(tmp_path):
    make_gta5(tmp_path, n=2)
    data = (tmp_path / "images" / "00001.png").read_bytes()
    (tmp_path / "images" / "00001.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "labels" / "00002.png").write_text("not a png")
    ds = D.gta5(tmp_path)
    with pytest.raises(DatasetError, match=r"images/00001\.png: cannot read"):
        ds[0]
    with pytest.raises(DatasetError, match=r"labels/00002\.png: cannot read"):
        ds[1]


def test_wrong_label_mode_and_size(tmp_path):
    ids = make_cityscapes(tmp_path, cities=("a", "b"))
    labs = sorted((tmp_path / "gtFine").rglob("*.png"))
    Image.fromarray(L.colorize(ids)).save(labs[0])  # a colour label where ids are expected
    Image.fromarray(ids[:, :5], mode="L").save(labs[1])  # wrong size
    ds = D.cityscapes(tmp_path, "val")
    with pytest.raises(DatasetError, match=r"a_000000_000019_gtFine_labelIds\.png: label image has mode 'RGB'"):
        ds[0]
    with pytest.raises(DatasetError, match=r"label is 5×6 but its image .* is 8×6"):
        ds[1]


def test_gta5_size_mismatch_resizes_with_warning(tmp_path):
    make_gta5(tmp_path, n=1)
    _palette_png(tmp_path / "labels" / "00001.png", np.full((3, 4), 26, np.uint8))
    with pytest.warns(UserWarning, match=r"00001\.png: label is 4×3 .* resized"):
        item = D.gta5(tmp_path)[0]
    assert tuple(item["label"].shape) == (6, 8) and set(item["label"].flatten().tolist()) == {13}
    with pytest.raises(DatasetError, match="label is 4×3"):
        D.gta5(tmp_path, size_mismatch="error")[0]


def test_image_folder_skips_non_images_by_name(tmp_path):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    Image.fromarray(_rgb(name="b")).save(tmp_path / "b.jpg")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "fake.png").write_text("x")
    with pytest.warns(UserWarning, match=r"skipped 2 non-image file\(s\): .*fake\.png.*notes\.txt"):
        ds = D.image_folder(tmp_path)
    assert [p[0].name for p in ds.pairs] == ["a.png", "b.jpg"]
    assert "label" not in ds[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no images"):
        D.image_folder(empty)


def test_no_warning_for_clean_labels(tmp_path):
    make_gta5(tmp_path, n=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        D.gta5(tmp_path)[0]
