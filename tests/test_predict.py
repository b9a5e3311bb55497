"""``udaseg predict``: the four outputs per image, their sizes, modes and values; folders of
mixed sizes; non-images and images that do not decode skipped and named; the colour / entropy
helpers; never a file overwritten that predict did not write (ground truth above all)."""
import copy
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from shared_runs import tiny_runs
from udaseg.apps.predict import (MANIFEST_NAME, ImageItem, UnsafeOutputError, collect_images, predict_images,
                                 predict_with_model, previous_outputs)
from udaseg.data import labels as L
from udaseg.reporting import viz


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_runs(tmp_path_factory)["fgd_ent"] / "checkpoints" / "last.pt"


def _folder(root):
    rng = np.random.default_rng(0)
    (root / "sub").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(root / "a.png")
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(root / "b.jpg")
    Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(root / "sub" / "berlin_000001_000019_leftImg8bit.png")
    Image.fromarray(rng.integers(0, 256, (21, 33), dtype=np.uint8), mode="L").save(root / "grey.png")  # grey is fine
    (root / "notes.txt").write_text("not an image")
    (root / "broken.png").write_bytes(b"\x89PNG not really")
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(root / "cut.png")
    data = (root / "cut.png").read_bytes()
    (root / "cut.png").write_bytes(data[: len(data) // 2])  # a valid header, truncated pixel data
    return root


def test_predict_writes_four_outputs_per_image(checkpoint, tmp_path):
    images = _folder(tmp_path / "in")
    with pytest.warns(UserWarning) as record:
        written, skipped = predict_images(checkpoint, [images], tmp_path / "out", batch_size=2)
    # one warning per skipped file, with its reason; the job goes on past the truncated image
    messages = sorted(str(w.message) for w in record if str(w.message).startswith("skipped "))
    assert len(messages) == 3, messages
    assert messages[0].startswith(f"skipped {images / 'broken.png'}: not an image")
    assert messages[1].startswith(f"skipped {images / 'cut.png'}: cannot read as an image") and "truncated" in messages[1]
    assert messages[2] == f"skipped {images / 'notes.txt'}: not an image file (extension '.txt')"
    assert sorted(p.name for p in skipped) == ["broken.png", "cut.png", "notes.txt"]
    assert {s.path for s in skipped} == {images / n for n in ("broken.png", "cut.png", "notes.txt")}
    assert len(written) == 4
    out = tmp_path / "out"
    palette = {tuple(c) for c in L.PALETTE_19}
    for stem, size in (("a", (40, 30)), ("b", (40, 30)), ("grey", (33, 21))):
        color, overlay, entropy = (Image.open(out / f"{stem}_{k}.png") for k in ("color", "overlay", "entropy"))
        ids = Image.open(out / f"{stem}_labelIds.png")
        assert color.size == overlay.size == entropy.size == ids.size == size
        assert (color.mode, overlay.mode, entropy.mode, ids.mode) == ("RGB", "RGB", "RGB", "L")
        ids, color = np.asarray(ids), np.asarray(color)
        assert set(np.unique(ids)) <= set(L.TRAINID_TO_LABELID)  # submission format: labelIds
        assert {tuple(c) for c in color.reshape(-1, 3)} <= palette
        # the colour map and the labelId map are the same prediction
        assert np.array_equal(L.colorize(L.LABELID_TO_TRAINID[ids]), color)
        assert {tuple(c) for c in np.asarray(entropy).reshape(-1, 3)} <= {tuple(c) for c in viz.colormap_lut("magma")}
    # a Cityscapes input keeps its sub-folder and gets a Cityscapes labelId name that is not the ground truth's
    sub = out / "sub"
    assert Image.open(sub / "berlin_000001_000019_pred_labelIds.png").size == (70, 50)
    assert (sub / "berlin_000001_000019_color.png").is_file() and (sub / "berlin_000001_000019_entropy.png").is_file()
    assert not list(out.rglob("*_gtFine_*")) and not (out / "cut_color.png").exists()
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert set(manifest["files"]) == {p.relative_to(out).as_posix() for p in out.rglob("*.png")}
    assert len(manifest["files"]) == 16
    assert {s["path"] for s in manifest["skipped"]} == {str(s.path) for s in skipped}


def test_predict_refuses_missing_input_and_folders_without_images(checkpoint, tmp_path):
    from udaseg.data.io import DatasetError

    with pytest.raises(FileNotFoundError, match="input .*missing.png not found"):
        predict_images(checkpoint, [tmp_path / "missing.png"], tmp_path / "out")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.md").write_text("#")
    with pytest.warns(UserWarning, match="readme.md"), pytest.raises(DatasetError, match="no images found"):
        predict_images(checkpoint, [tmp_path / "docs"], tmp_path / "out")


class _Fixed(torch.nn.Module):
    """Left half: uniform logits (entropy 1); right half: one class far ahead (entropy ≈ 0)."""

    def forward(self, x):
        n, _, h, w = x.shape
        logits = torch.zeros(n, 19, h, w)
        logits[:, 13, :, w // 2:] = 50.0  # car
        return SimpleNamespace(logits=logits)


def test_entropy_and_colour_values_of_known_probabilities(tmp_path):
    img = np.full((8, 16, 3), 100, np.uint8)
    Image.fromarray(img).save(tmp_path / "x.png")
    items, _ = collect_images([tmp_path / "x.png"])
    assert items == [ImageItem(tmp_path / "x.png", tmp_path.joinpath("x.png").relative_to(tmp_path), (16, 8))]
    written, skipped = predict_with_model(_Fixed(), 19, "imagenet", items, tmp_path / "out")
    assert len(written) == 1 and skipped == []
    ent = np.asarray(Image.open(tmp_path / "out" / "x_entropy.png"))
    lut = viz.colormap_lut("magma")
    assert (ent[:, :8] == lut[255]).all() and (ent[:, 8:] == lut[0]).all()
    color = np.asarray(Image.open(tmp_path / "out" / "x_color.png"))
    assert (color[:, 8:] == L.PALETTE_19[13]).all()
    ids = np.asarray(Image.open(tmp_path / "out" / "x_labelIds.png"))
    assert (ids[:, 8:] == 26).all() and (ids[:, :8] == 7).all()  # car; ties go to the first class, road
    over = np.asarray(Image.open(tmp_path / "out" / "x_overlay.png")).astype(int)
    assert np.abs(over[0, 12] - (np.array([100, 100, 100]) + L.PALETTE_19[13]) / 2).max() <= 1


def test_viz_helpers():
    lut = viz.colormap_lut("viridis")
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert np.array_equal(viz.entropy_rgb(np.array([[0.0, 1.0]]), "viridis")[0], lut[[0, 255]])
    with pytest.raises(ValueError, match="unknown matplotlib colormap"):
        viz.colormap_lut("no-such-map")
    with pytest.raises(ValueError, match="differ in size"):
        viz.overlay(np.zeros((2, 2, 3), np.uint8), np.zeros((2, 3, 3), np.uint8))
    assert viz.resize_nearest(np.zeros((10, 20, 3), np.uint8), 10).shape == (5, 10, 3)
    assert viz.png_bytes(np.zeros((2, 2), np.uint8)).startswith(b"\x89PNG")


def test_predict_cli(checkpoint, tmp_path, capsys):
    from udaseg.apps.cli_eval import build_parser

    images = _folder(tmp_path / "in")
    argv = ["predict", str(checkpoint), str(images / "a.png"), str(images / "notes.txt"), str(images / "cut.png"),
            "--out", str(tmp_path / "out"), "--flip", "--batch-size", "1"]
    args = build_parser().parse_args(argv)
    assert args.func(args) == 0
    captured = capsys.readouterr()
    assert "wrote 1 prediction(s)" in captured.out and "skipped 2 file(s)" in captured.out
    lines = captured.err.splitlines()
    assert f"udaseg: warning: skipped {images / 'notes.txt'}: not an image file (extension '.txt')" in lines
    assert any(line.startswith(f"udaseg: warning: skipped {images / 'cut.png'}: cannot read as an image") for line in lines)
    assert (tmp_path / "out" / "a_labelIds.png").is_file()
    # again into the same folder: refused without --overwrite, done with it
    from udaseg.apps.cli import main

    assert main(argv) == 2
    assert f"--out {tmp_path / 'out'} exists and is not empty" in capsys.readouterr().err
    assert main(argv + ["--overwrite"]) == 0 and "wrote 1 prediction(s)" in capsys.readouterr().out


@pytest.fixture(scope="module")
def bf16_channels_last_run(tmp_path_factory):
    """A tiny checkpoint trained (and so evaluated and predicted) with bf16 autocast and
    channels_last inputs."""
    from fixtures import tiny_benchmark, tiny_config
    from udaseg.engine.trainer import Trainer

    tmp = tmp_path_factory.mktemp("bf16_channels_last")
    bench = tiny_benchmark(tmp / "bench")
    cfg = tiny_config(bench, ["method.name=source_only", "train.iters=2", "train.amp=bf16", "train.channels_last=true",
                              "train.device=cpu", "train.val_every=0", "train.checkpoint_every=0"])
    Trainer(cfg, tmp / "run", progress=False).train()
    return tmp / "run" / "checkpoints" / "last.pt", bench


def test_predict_equals_evaluation_under_bf16_and_channels_last(bf16_channels_last_run, tmp_path):
    """predict ran without the config's channels_last, evaluation with it: under bf16 their label
    maps differed (0.11 % of the pixels on Cityscapes). Both now take their forward options
    from the config in one place (udaseg.engine.inference.forward_options)."""
    from udaseg.engine.eval_checkpoints import evaluate_checkpoints
    from udaseg.engine.inference import forward_options

    ckpt, bench = bf16_channels_last_run
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    fw = forward_options(state["config"], "cpu")
    assert (fw.autocast_dtype, fw.channels_last) == (torch.bfloat16, True)
    # evaluation's predictions, as labelId PNGs at label resolution (the official check writes them)
    evaluate_checkpoints([ckpt], out_dir=tmp_path / "eval", official_check=True)
    evaluated = sorted((tmp_path / "eval" / "predictions_labelIds").rglob("*_labelIds.png"))
    # predict's, for the same images (eval.batch_size is 1: the same batches)
    val = bench / "cs" / "leftImg8bit" / "val"
    written, _ = predict_images(ckpt, [val], tmp_path / "pred", batch_size=1)
    # the same <city>_<seq>_<frame> (what the official script pairs them by): evaluation's official
    # check names them *_gtFine_labelIds.png, predict *_pred_labelIds.png
    predicted = {p.name.replace("_pred_", "_gtFine_"): p for p in (tmp_path / "pred").rglob("*_pred_labelIds.png")}
    assert len(evaluated) == len(written) == 2 and sorted(predicted) == [p.name for p in evaluated]
    for p in evaluated:
        a, b = np.asarray(Image.open(p)), np.asarray(Image.open(predicted[p.name]))
        assert a.shape == b.shape == (32, 64)
        assert np.array_equal(a, b), f"{p.name}: {(a != b).mean():.2%} of the pixels differ"


def _cityscapes_items(tmp_path):
    from fixtures import make_cityscapes

    root = tmp_path / "cs"
    make_cityscapes(root, "val", h=8, w=16)
    items, skipped = collect_images([root / "leftImg8bit" / "val"])
    assert len(items) == 2 and not skipped
    return root, items


def _snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_predict_never_overwrites_ground_truth(tmp_path):
    """`predict --out <cityscapes>/gtFine/val` wrote its *_gtFine_labelIds.png over the ground
    truth, and the next evaluate reported mIoU 98.6. Now refused, with and without --overwrite."""
    root, items = _cityscapes_items(tmp_path)
    gt = root / "gtFine" / "val"
    before = _snapshot(root)
    gt_file = gt / "frankfurt" / "frankfurt_000000_000019_gtFine_labelIds.png"
    for out in (gt, gt / "frankfurt"):
        with pytest.raises(UnsafeOutputError, match=rf"--out {out} exists and is not empty.*--overwrite"):
            predict_with_model(_Fixed(), 19, "imagenet", items, out)
        with pytest.raises(UnsafeOutputError, match=rf"holds {gt_file}, a label file udaseg predict did not write"):
            predict_with_model(_Fixed(), 19, "imagenet", items, out, overwrite=True)
    # an empty or new folder inside the ground-truth tree too
    (gt / "new").mkdir()
    with pytest.raises(UnsafeOutputError, match=rf"inside the Cityscapes ground-truth folder {root / 'gtFine'}"):
        predict_with_model(_Fixed(), 19, "imagenet", items, gt / "new" / "pred", overwrite=True)
    (gt / "new").rmdir()
    assert _snapshot(root) == before  # not a byte changed, nothing added


def test_predict_into_a_fresh_folder_then_again_with_overwrite(tmp_path):
    root, items = _cityscapes_items(tmp_path)
    out = tmp_path / "out"
    predict_with_model(_Fixed(), 19, "imagenet", items, out)
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert len(names) == 8 and "frankfurt/frankfurt_000000_000019_pred_labelIds.png" in names
    assert not any(n.endswith("_gtFine_labelIds.png") for n in names)
    assert sorted(json.loads((out / MANIFEST_NAME).read_text())["files"]) == names
    with pytest.raises(UnsafeOutputError, match="--overwrite"):
        predict_with_model(_Fixed(), 19, "imagenet", items, out)
    (out / "notes.txt").write_text("mine")  # a file of the user's: left alone
    first = _snapshot(out)
    (out / "frankfurt" / "frankfurt_000000_000019_color.png").write_bytes(b"stale")
    predict_with_model(_Fixed(), 19, "imagenet", items, out, overwrite=True)
    assert _snapshot(out) == first  # rewritten (the stale file too), nothing else touched
    assert sorted(json.loads((out / MANIFEST_NAME).read_text())["files"]) == names
    assert not list(out.glob("*.tmp"))  # the manifest's temporary file is gone


def test_overwrite_still_refuses_files_predict_did_not_write(tmp_path):
    img = tmp_path / "in" / "x.png"
    img.parent.mkdir()
    Image.fromarray(np.full((8, 16, 3), 100, np.uint8)).save(img)
    items, _ = collect_images([img])
    out = tmp_path / "out"
    out.mkdir()
    (out / "x_labelIds.png").write_bytes(b"someone else's")  # exists, no manifest
    with pytest.raises(UnsafeOutputError, match=rf"{out / 'x_labelIds.png'} exists and was not written by udaseg predict"):
        predict_with_model(_Fixed(), 19, "imagenet", items, out, overwrite=True)
    assert (out / "x_labelIds.png").read_bytes() == b"someone else's"
    # a manifest lists it once predict wrote it; a file put there later is not in it
    (out / "x_labelIds.png").unlink()
    predict_with_model(_Fixed(), 19, "imagenet", items, out, overwrite=True)
    (out / "x_labelIds.png").unlink()
    (out / "y_labelIds.png").write_bytes(b"ground truth?")
    with pytest.raises(UnsafeOutputError, match=rf"holds {out / 'y_labelIds.png'}, a label file"):
        predict_with_model(_Fixed(), 19, "imagenet", items, out, overwrite=True)
    (out / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(UnsafeOutputError, match="unreadable predict manifest"):
        predict_with_model(_Fixed(), 19, "imagenet", items, out, overwrite=True)


def test_two_inputs_for_one_output_and_output_inside_an_input_folder(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.full((8, 16, 3), 100, np.uint8)).save(src / "x.png")
    Image.fromarray(np.full((8, 16, 3), 100, np.uint8)).save(src / "x.jpg")
    items, _ = collect_images([src])
    with pytest.raises(UnsafeOutputError, match=r"x.jpg and .*x.png would both be predicted to"):
        predict_with_model(_Fixed(), 19, "imagenet", items, tmp_path / "out")
    (src / "x.jpg").unlink()
    # --out inside the input folder: a second run does not predict the first run's outputs
    for _ in range(2):
        items, skipped = collect_images([src], previous_outputs(src / "pred"))
        assert [it.path.name for it in items] == ["x.png"] and not skipped
        predict_with_model(_Fixed(), 19, "imagenet", items, src / "pred", overwrite=True)


def test_refusals_come_before_the_checkpoint_is_loaded(tmp_path, capsys):
    from udaseg.apps.cli import main

    root, _ = _cityscapes_items(tmp_path)
    argv = ["predict", str(tmp_path / "no-such.pt"), str(root / "leftImg8bit" / "val"), "--out", str(root / "gtFine" / "val")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"udaseg: error: --out {root / 'gtFine' / 'val'} exists and is not empty" in err and "--overwrite" in err
    assert main(argv + ["--overwrite"]) == 2
    assert "frankfurt_000000_000019_gtFine_labelIds.png, a label file udaseg predict did not write" in capsys.readouterr().err


def test_the_official_script_finds_predict_labelids(tmp_path):
    """The official script pairs a prediction with its ground truth by the <city>_<seq>_<frame>
    prefix (any *.png): *_pred_labelIds.png is found, and scored, as *_gtFine_labelIds.png was."""
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official

    from udaseg.engine.official_check import official_scores

    root, items = _cityscapes_items(tmp_path)
    predict_with_model(_Fixed(), 19, "imagenet", items, tmp_path / "out")
    results = tmp_path / "results"  # the labelId PNGs alone (the colour / overlay / entropy PNGs share the prefix)
    results.mkdir()
    for p in (tmp_path / "out").rglob("*_labelIds.png"):
        shutil.copy(p, results / p.name)
    args = copy.copy(official.args)
    args.predictionPath, args.predictionWalk = str(results), None
    gts = sorted((root / "gtFine" / "val").rglob("*_gtFine_labelIds.png"))
    preds = [official.getPrediction(args, str(gt)) for gt in gts]
    assert [p.rsplit("/", 1)[-1] for p in preds] == [gt.name.replace("_gtFine_", "_pred_") for gt in gts]
    scores = official_scores(preds, gts)
    assert 0 <= scores["miou"] <= 1


def test_predict_fails_when_every_input_was_skipped(checkpoint, tmp_path, capsys):
    """Images that are there but none decodes: exit 1, not a 0 with nothing written."""
    from udaseg.apps.cli import main

    images = _folder(tmp_path / "in")
    argv = ["predict", str(checkpoint), str(images / "broken.png"), str(images / "cut.png"), "--out",
            str(tmp_path / "out"), "train.device=cpu"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "udaseg: error: no image could be read: all 2 input file(s) were skipped" in err
    assert f"skipped {images / 'broken.png'}: not an image" in err


def test_predict_fails_when_no_input_is_an_image(checkpoint, tmp_path, capsys):
    """Files that are not images at all (by extension or header) are the same outcome as images
    that do not decode: exit 1 naming how many were skipped, nothing written; the API raises a
    DatasetError that says so. An input with no file at all stays a bad input (exit 2)."""
    from udaseg.apps.cli import main
    from udaseg.apps.predict import NoImageReadError

    images = _folder(tmp_path / "in")
    inputs = [str(images / "notes.txt"), str(images / "broken.png")]
    out = tmp_path / "out"
    assert main(["predict", str(checkpoint), *inputs, "--out", str(out), "train.device=cpu"]) == 1
    err = capsys.readouterr().err
    assert "udaseg: error: no image could be read: all 2 input file(s) were skipped" in err
    assert f"skipped {images / 'notes.txt'}: not an image" in err and f"skipped {images / 'broken.png'}" in err
    assert not out.exists()  # refused before anything was written
    with pytest.warns(UserWarning), pytest.raises(NoImageReadError, match=r"no image could be read \(2 file"):
        predict_images(checkpoint, inputs, out)
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(checkpoint), str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "no images found in" in capsys.readouterr().err
