"""``udaseg predict``: the four outputs per image, their sizes, modes and values; folders of
mixed sizes; non-images skipped and named; the colour / entropy helpers."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from shared_runs import tiny_runs
from udaseg import viz
from udaseg.data import labels as L
from udaseg.predict import ImageItem, collect_images, predict_images, predict_with_model


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
    return root


def test_predict_writes_four_outputs_per_image(checkpoint, tmp_path):
    images = _folder(tmp_path / "in")
    with pytest.warns(UserWarning, match=r"skipped 2 non-image file\(s\): .*broken.png, .*notes.txt"):
        written, skipped = predict_images(checkpoint, [images], tmp_path / "out", batch_size=2)
    assert sorted(p.name for p in skipped) == ["broken.png", "notes.txt"]
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
    # a Cityscapes input keeps its sub-folder and gets the Cityscapes labelId name
    sub = out / "sub"
    assert Image.open(sub / "berlin_000001_000019_gtFine_labelIds.png").size == (70, 50)
    assert (sub / "berlin_000001_000019_color.png").is_file() and (sub / "berlin_000001_000019_entropy.png").is_file()


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
    predict_with_model(_Fixed(), 19, "imagenet", items, tmp_path / "out")
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
    from udaseg.cli_eval import build_parser

    images = _folder(tmp_path / "in")
    args = build_parser().parse_args(["predict", str(checkpoint), str(images / "a.png"), str(images / "notes.txt"),
                                      "--out", str(tmp_path / "out"), "--flip", "--batch-size", "1"])
    assert args.func(args) == 0
    captured = capsys.readouterr()
    assert "wrote 1 prediction(s)" in captured.out and "skipped 1 non-image file(s)" in captured.out
    assert "udaseg: warning: skipped 1 non-image file(s):" in captured.err and "notes.txt" in captured.err
    assert (tmp_path / "out" / "a_labelIds.png").is_file()


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
    predicted = {p.name: p for p in (tmp_path / "pred").rglob("*_labelIds.png")}
    assert len(evaluated) == len(written) == 2 and sorted(predicted) == [p.name for p in evaluated]
    for p in evaluated:
        a, b = np.asarray(Image.open(p)), np.asarray(Image.open(predicted[p.name]))
        assert a.shape == b.shape == (32, 64)
        assert np.array_equal(a, b), f"{p.name}: {(a != b).mean():.2%} of the pixels differ"
