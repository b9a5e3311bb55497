"""``udaseg data check ROOT``: every bad file of a GTA5 / SYNTHIA / Cityscapes tree listed in one
run (truncated images, missing labels, size mismatches, colour or out-of-range labels), exit
status 0 / 1 / 2, and the layout detected from the folders."""
import cv2
import numpy as np
import pytest
from PIL import Image

from fixtures import _palette_png, _rgb, _synthia_png, make_cityscapes, make_gta5
from udaseg.apps.cli import main
from udaseg.data.check import check_dataset, detect_kind, verify_decodes
from udaseg.data.io import DatasetError, read_rgb


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)] if keep < 1 else data[:-keep])


def _run(capsys, *argv):
    rc = main(["data", "check", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out.splitlines(), err


def test_clean_gta5_and_cityscapes_exit_0(tmp_path, capsys):
    make_gta5(tmp_path / "gta5", n=3)
    make_cityscapes(tmp_path / "cs", "train")
    make_cityscapes(tmp_path / "cs", "val")
    assert _run(capsys, tmp_path / "gta5") == (0, ["6 files checked, 0 problems"], "")
    assert _run(capsys, tmp_path / "cs")[:2] == (0, ["8 files checked, 0 problems"])
    assert _run(capsys, tmp_path / "cs", "--split", "val", "--kind", "cityscapes")[:2] == (0, ["4 files checked, 0 problems"])
    assert detect_kind(tmp_path / "gta5") == "gta5" and detect_kind(tmp_path / "cs") == "cityscapes"


def test_all_gta5_problems_in_one_run_exit_1(tmp_path, capsys):
    root = tmp_path / "gta5"
    make_gta5(root, n=6, drop_label=2, h=32, w=64)
    _truncate(root / "images" / "00001.png")  # a valid PNG cut in half
    _palette_png(root / "labels" / "00003.png", np.full((30, 64), 7, np.uint8))  # 64×30 for a 64×32 image
    (root / "images" / "00004.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage, not an image")
    _palette_png(root / "labels" / "00005.png", np.full((32, 64), 200, np.uint8))  # ids GTA5 does not define
    rc, out, _ = _run(capsys, root, "--workers", "2")
    assert rc == 1
    assert out[-1] == "11 files checked, 5 problems"  # 6 images + 5 labels
    problems = dict(line.split(": ", 1) for line in out[:-1])
    images, labels = root / "images", root / "labels"
    assert sorted(problems) == sorted(str(p) for p in (images / "00001.png", images / "00002.png", labels / "00003.png",
                                                       images / "00004.png", labels / "00005.png"))
    assert "does not decode" in problems[str(images / "00001.png")] and "truncated" in problems[str(images / "00001.png")].lower()
    assert problems[str(images / "00002.png")] == f"label missing ({labels / '00002.png'} not found)"
    assert problems[str(labels / "00003.png")].startswith(f"label is 64×30 but its image {images / '00003.png'} is 64×32")
    assert "does not decode" in problems[str(images / "00004.png")]
    assert problems[str(labels / "00005.png")].startswith("2048 pixel(s) hold ids above 33")


def test_cityscapes_colour_labelids_and_missing_label_folder(tmp_path, capsys):
    root = tmp_path / "cs"
    make_cityscapes(root, "val", h=16, w=32)
    label = root / "gtFine" / "val" / "lindau" / "lindau_000000_000019_gtFine_labelIds.png"
    Image.fromarray(_rgb(16, 32, "colour")).save(label)  # a colour PNG where labelIds belong
    (root / "leftImg8bit" / "test" / "bonn").mkdir(parents=True)  # a split without gtFine/test
    Image.fromarray(_rgb(16, 32, "t")).save(root / "leftImg8bit" / "test" / "bonn" / "bonn_000000_000019_leftImg8bit.png")
    rc, out, err = _run(capsys, root)
    assert rc == 1 and out[-1] == "5 files checked, 1 problems"
    assert out[0].startswith(f"{label}: label image has mode 'RGB'; expected a single-channel id map")
    assert "gtFine/test not found" in err and "checked without labels" in err  # a note, not a problem
    rc, out, _ = _run(capsys, root, "--split", "test")  # asked for: its missing labels are a problem
    assert rc == 1 and out == [f"{root / 'gtFine' / 'test'}: folder not found: no labels for the 1 image(s) "
                               "of split 'test'", "1 files checked, 1 problems"]


def test_synthia_truncated_label(tmp_path, capsys):
    root = tmp_path / "synthia"
    (root / "RGB").mkdir(parents=True)
    (root / "GT" / "LABELS").mkdir(parents=True)
    for i in range(2):
        Image.fromarray(_rgb(32, 64, f"s{i}")).save(root / "RGB" / f"{i:07d}.png")
        _synthia_png(root / "GT" / "LABELS" / f"{i:07d}.png", np.tile(np.arange(16, dtype=np.uint16), (32, 4)))
    assert _run(capsys, root)[:2] == (0, ["4 files checked, 0 problems"])
    _truncate(root / "GT" / "LABELS" / "0000001.png")
    rc, out, _ = _run(capsys, root)
    assert rc == 1 and out[0].startswith(f"{root / 'GT' / 'LABELS' / '0000001.png'}: does not decode")


def test_bad_root_exits_2_with_a_clear_message(tmp_path, capsys):
    rc, out, err = _run(capsys, tmp_path / "missing")
    assert rc == 2 and out == [] and f"udaseg: error: dataset root {tmp_path / 'missing'} not found" in err
    (tmp_path / "empty").mkdir()
    rc, _, err = _run(capsys, tmp_path / "empty")
    assert rc == 2 and "no known dataset layout" in err and "give --kind" in err
    rc, _, err = _run(capsys, tmp_path / "empty", "--kind", "gta5")
    assert rc == 2 and "GTA5: folder" in err and "images" in err
    with pytest.raises(DatasetError, match="not found"):
        check_dataset(tmp_path / "missing", kind="cityscapes")


def test_truncations_the_loaders_miss_are_caught(tmp_path):
    """A PNG cut after its pixel data (Pillow's load() alone accepts it) and a truncated JPEG
    (OpenCV, the training reader, decodes it silently, grey below the cut)."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(tmp_path / "tail.png")
    _truncate(tmp_path / "tail.png", keep=12)  # IEND chunk gone
    with Image.open(tmp_path / "tail.png") as im:
        im.load()  # no error here
    with pytest.raises(DatasetError, match="tail.png: does not decode"):
        verify_decodes(tmp_path / "tail.png")
    Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(tmp_path / "half.jpg")
    _truncate(tmp_path / "half.jpg")
    assert cv2.imread(str(tmp_path / "half.jpg")) is not None and read_rgb(tmp_path / "half.jpg").shape == (60, 80, 3)
    with pytest.raises(DatasetError, match="half.jpg: does not decode .*truncated"):
        verify_decodes(tmp_path / "half.jpg")
    Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(tmp_path / "ok.png")
    assert verify_decodes(tmp_path / "ok.png") == (80, 60)
