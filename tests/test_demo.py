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
             n_synthia=4, progress=False, n_target_dev=2, n_source_heldout=2)
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
    assert len(images) == 6 + 2 + 4 + 3 + 2  # source, held-out source, target train, val, dev
    assert all(a[k] != c[k] for k in images)


def test_layout_names_and_lists(bench):
    root, m = bench
    assert (root / "gta5" / "train.txt").read_text().split() == [f"{i:05d}.png" for i in range(1, 7)]
    for folder in ("images", "labels"):  # 6 training scenes, then the 2 held-out ones
        assert sorted(p.name for p in (root / "gta5" / folder).iterdir()) == [f"{i:05d}.png" for i in range(1, 9)]
    for folder in ("RGB", "GT/LABELS"):
        assert sorted(p.name for p in (root / "synthia" / folder).iterdir()) == [f"{i:07d}.png" for i in range(1, 5)]
    for split, n in (("train", 4), ("val", 3), ("dev", 2)):
        images = sorted((root / "cityscapes" / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
        assert len(images) == n
        assert {p.parent.name for p in images} <= set(demo.CITIES[split])
        for p in images:
            city, seq, frame, _ = p.name.split("_")
            assert city == p.parent.name and len(seq) == 6 and frame == "000019"
            stem = root / "cityscapes" / "gtFine" / split / city / p.name.replace("_leftImg8bit.png", "")
            assert Path(f"{stem}_gtFine_labelIds.png").is_file() and Path(f"{stem}_gtFine_color.png").is_file()
    assert m["counts"] == {"gta5": 6, "gta5_heldout": 2, "synthia": 4, "cityscapes_train": 4, "cityscapes_val": 3,
                           "cityscapes_dev": 2}


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
    for domain in ("source", "target_train", "target_val", "target_dev", "source_heldout"):
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
    small = dict(SMALL, n_source=3, n_target_train=2, n_target_val=2, n_synthia=2, n_target_dev=0, n_source_heldout=0)
    demo.write_demo(tmp_path / "d", seed=0, workers=1, **small)
    demo.write_demo(tmp_path / "d", seed=1, workers=1, **dict(small, n_source=2))
    assert sorted(p.name for p in (tmp_path / "d" / "gta5" / "images").iterdir()) == ["00001.png", "00002.png"]
    assert demo.demo_is_complete(tmp_path / "d", seed=1)
    (tmp_path / "e" / "gta5").mkdir(parents=True)
    with pytest.raises(FileExistsError):
        demo.write_demo(tmp_path / "e", seed=0, workers=1, **small)
    assert (tmp_path / "e" / "gta5").is_dir()


# ------------------------------------------------------------------ dev split, held-out source (v2)

def _trainids(path):
    return set(np.unique(L.LABELID_TO_TRAINID[np.asarray(Image.open(path))]).tolist()) - {255}


def test_dev_split_is_labelled_and_in_its_own_cities(bench):
    root, m = bench
    images = sorted((root / "cityscapes" / "leftImg8bit" / "dev").glob("*/*_leftImg8bit.png"))
    # 2 images over 3 cities: one per city, in CITIES["dev"] order (contiguous blocks)
    assert [p.name for p in images] == ["darmstadt_000000_000019_leftImg8bit.png", "jena_000000_000019_leftImg8bit.png"]
    assert demo.CITIES["dev"] == ("darmstadt", "jena", "weimar")
    assert not set(demo.CITIES["dev"]) & (set(demo.CITIES["train"]) | set(demo.CITIES["val"]))
    for p in images:
        stem = root / "cityscapes" / "gtFine" / "dev" / p.parent.name / p.name.replace("_leftImg8bit.png", "")
        ids = np.asarray(Image.open(f"{stem}_gtFine_labelIds.png"))
        assert ids.shape == (96, 192) and set(np.unique(ids).tolist()) <= CITYSCAPES_IDS
        assert (ids[-1] == 1).any()  # a target scene: the bonnet
        assert Path(f"{stem}_gtFine_color.png").is_file()
    dev = D.cityscapes(root / "cityscapes", "dev")
    assert len(dev) == m["counts"]["cityscapes_dev"] == 2
    assert tuple(dev[0]["label"].shape) == (96, 192)
    # its own scenes: no dev image is a val or train image
    others = {p.read_bytes() for s in ("train", "val") for p in (root / "cityscapes" / "leftImg8bit" / s).rglob("*.png")}
    assert not {p.read_bytes() for p in images} & others


def test_heldout_source_is_named_after_the_training_scenes_and_never_in_train_txt(bench):
    root, m = bench
    assert (root / "gta5" / "train.txt").read_text() == "".join(f"{i:05d}.png\n" for i in range(1, 7))
    assert (root / "gta5" / "heldout.txt").read_text() == "00007.png\n00008.png\n"
    for name in ("00007.png", "00008.png"):
        assert Image.open(root / "gta5" / "labels" / name).mode == "P"
        assert Image.open(root / "gta5" / "images" / name).size == (160, 90)  # the source size
    train = {(root / "gta5" / "images" / f"{i:05d}.png").read_bytes() for i in range(1, 7)}
    assert not {(root / "gta5" / "images" / n).read_bytes() for n in ("00007.png", "00008.png")} & train
    assert not (root / "synthia" / "RGB" / "0000007.png").exists()  # SYNTHIA copies only training scenes
    held = D.gta5(root / "gta5", split_list="heldout.txt")
    assert len(held) == m["counts"]["gta5_heldout"] == 2 and tuple(held[0]["label"].shape) == (90, 160)
    assert m["heldout"] == "gta5/heldout.txt: 2 more source scenes, never in train.txt"


def test_heldout_source_scenes_are_source_style(bench):
    """Held-out *source* scenes measure in-domain accuracy: rendered like the training source
    (no ego bonnet, labelId 1, which only the target style draws)."""
    root, _ = bench
    for name in ("00007.png", "00008.png"):
        ids = set(np.unique(np.asarray(Image.open(root / "gta5" / "labels" / name))).tolist())
        assert ids <= GTA5_IDS, (name, sorted(ids - GTA5_IDS))


def test_dev_and_heldout_leave_every_other_file_as_it_was(bench, tmp_path):
    """Per-image RNG domains are independent: adding dev / held-out images changes no byte of
    the source, SYNTHIA, target train or val files (only the lists and summaries that name them)."""
    root, _ = bench
    demo.write_demo(tmp_path / "z", seed=3, workers=1, **dict(SMALL, n_target_dev=0, n_source_heldout=0))
    with_extra, without = _files(root), _files(tmp_path / "z")
    summaries = {"manifest.json", "DATA.md", "gta5/heldout.txt"}
    shared = sorted(set(without) - summaries)
    # marker, 2 lists, gta5 images + labels, SYNTHIA RGB + labels, 3 files per Cityscapes train / val image
    assert len(shared) == 1 + 2 + 2 * 6 + 2 * 4 + 3 * 4 + 3 * 3
    assert set(shared) <= set(with_extra)
    assert [k for k in shared if with_extra[k] != without[k]] == []
    extra = set(with_extra) - set(without)
    assert extra == {"gta5/images/00007.png", "gta5/images/00008.png", "gta5/labels/00007.png", "gta5/labels/00008.png",
                     *(f"cityscapes/{kind}/dev/{c}/{c}_000000_000019_{suffix}" for c in ("darmstadt", "jena")
                       for kind, suffix in (("leftImg8bit", "leftImg8bit.png"), ("gtFine", "gtFine_labelIds.png"),
                                            ("gtFine", "gtFine_color.png")))}
    assert without["gta5/heldout.txt"] == b""
    m0 = json.loads(without["manifest.json"])
    assert m0["counts"]["gta5_heldout"] == 0 and m0["counts"]["cityscapes_dev"] == 0
    assert m0["objects"]["target_dev"] == [0] * 19 and m0["objects"]["source_heldout"] == [0] * 19
    assert m0["class_frequencies"]["target_val"] == json.loads(with_extra["manifest.json"])["class_frequencies"]["target_val"]


def test_manifest_objects_of_the_evaluation_splits(bench):
    root, m = bench
    assert demo.EVAL_DOMAINS == ("target_val", "target_dev", "source_heldout")
    assert set(m["objects"]) == set(demo.EVAL_DOMAINS)
    labels = {"target_val": sorted((root / "cityscapes" / "gtFine" / "val").rglob("*_labelIds.png")),
              "target_dev": sorted((root / "cityscapes" / "gtFine" / "dev").rglob("*_labelIds.png")),
              "source_heldout": [root / "gta5" / "labels" / n for n in ("00007.png", "00008.png")]}
    for domain, files in labels.items():
        objects = m["objects"][domain]
        assert len(objects) == 19 and all(isinstance(n, int) and n >= 0 for n in objects)
        # a class has objects exactly where its pixels are in the split's label files
        present = set().union(*(_trainids(p) for p in files))
        assert {c for c in range(19) if objects[c] > 0} == present, domain
    # the counts are the sums of count_objects over the split's scenes (re-rendered from their seeds)
    from udaseg.benchmark import scene

    for domain, n in (("target_dev", 2), ("source_heldout", 2)):
        want = np.zeros(19, np.int64)
        for i in range(n):
            rng = np.random.default_rng([3, demo.DOMAINS[domain], i])
            style = scene.SOURCE if domain == "source_heldout" else scene.TARGET
            sc = scene.render_scene(rng, style, *((160, 90) if domain == "source_heldout" else (192, 96)))
            want += demo.count_objects(sc.label, sc.instance)
        assert m["objects"][domain] == want.tolist(), domain
    summary = (root / "DATA.md").read_text()
    assert "| target dev |" in summary and "| source held-out |" in summary
    assert "## Objects per class in the evaluation splits" in summary
    assert "| class | target val | target dev | source held-out |" in summary
    car = L.CLASSES_19.index("car")
    assert f"| car | {m['objects']['target_val'][car]} | {m['objects']['target_dev'][car]} | " \
           f"{m['objects']['source_heldout'][car]} |" in summary


def test_count_objects_by_hand():
    car, person, pole, sign, road = (L.CLASSES_19.index(c) for c in ("car", "person", "pole", "sign", "road"))
    label = np.full((8, 12), 255, np.uint8)  # void: not a class
    instance = np.zeros((8, 12), np.int32)
    label[0, 0:2], instance[0, 0:2] = car, 5  # car instance 5
    label[0, 4:6], instance[0, 4:6] = car, 7  # car instance 7 ...
    label[2, 4], instance[2, 4] = car, 7  # ... in two disjoint pieces: still one car
    label[5, 0:2] = car  # car pixels without an instance id: one region
    label[2, 8], instance[2, 8] = person, 3
    label[4:6, 8] = pole  # two disjoint poles
    label[4:6, 11] = pole
    label[6, 5] = sign  # touching only diagonally: one region under 8-connectivity
    label[7, 6] = sign
    label[7, 0] = 19  # codes >= 19 (void, static, ego) are not counted
    label[7, 2] = 253
    label[7, 4] = 254
    instance[7, 2] = 9  # not even when they carry an instance id
    want = np.zeros(19, np.int64)
    want[car], want[person], want[pole], want[sign] = 3, 1, 2, 1
    got = demo.count_objects(label, instance)
    assert got.shape == (19,) and got.tolist() == want.tolist()
    # a class that fills the background is one region; an instance splitting it makes two
    label2 = np.full((5, 5), road, np.uint8)
    assert demo.count_objects(label2, np.zeros((5, 5), np.int32))[road] == 1
    label2[:, 2], inst2 = car, np.zeros((5, 5), np.int32)
    inst2[:, 2] = 4
    got2 = demo.count_objects(label2, inst2)
    assert got2[road] == 2 and got2[car] == 1 and got2.sum() == 3
