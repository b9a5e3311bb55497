"""Confusion matrix, IoU and protocols on hand-made predictions."""
import math

import numpy as np
import pytest
import torch

from udaseg.engine.evaluation import ConfusionMatrix, format_table, protocols, result_from_matrix


def test_confusion_matrix_iou_by_hand():
    # gt:   0 0 1 1 2 255      pred: 0 1 1 1 0 2
    gt = torch.tensor([0, 0, 1, 1, 2, 255])
    pred = torch.tensor([0, 1, 1, 1, 0, 2])
    cm = ConfusionMatrix(4)
    cm.update(pred, gt)
    assert cm.mat.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    iou = cm.iou()
    # class 0: TP 1, FP 1 (gt 2), FN 1 (pred 1) → 1/3; class 1: 2/(2+1) ; class 2: 0/1; class 3: NaN
    assert iou[:3].tolist() == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert math.isnan(iou[3])
    assert cm.miou() == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)  # NaN class left out
    assert cm.pixel_accuracy() == pytest.approx(3 / 5)
    assert cm.predicted_fractions().tolist() == pytest.approx([2 / 5, 3 / 5, 0, 0])


def test_confusion_matrix_accumulates_and_checks_input():
    cm = ConfusionMatrix(2)
    cm.update(torch.tensor([[0, 1]]), torch.tensor([[0, 1]]))
    cm.update(torch.tensor([[1, 1]]), torch.tensor([[0, 1]]))
    assert cm.mat.tolist() == [[1, 1], [0, 2]]
    with pytest.raises(ValueError, match=r"prediction \(1, 2\) and label \(1, 3\) differ"):
        cm.update(torch.zeros(1, 2), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="label holds class 5, outside 0..1"):
        cm.update(torch.tensor([0]), torch.tensor([5]))


def test_protocols_and_subset_means():
    p19 = protocols(19)
    assert set(p19) == {"mIoU19", "mIoU16", "mIoU13"} and len(p19["mIoU16"]) == 16 and len(p19["mIoU13"]) == 13
    p16 = protocols(16)
    assert p16["mIoU13"] == [0, 1, 2, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    cm = ConfusionMatrix(16)
    t = torch.arange(16)
    cm.update(t, t)  # perfect on every class ...
    cm.update(torch.full((1,), 0), torch.full((1,), 3))  # ... except one wall pixel predicted road
    r = result_from_matrix(cm, 1)
    # wall IoU 1/2, road 1/2; the 13-class mean drops wall but keeps road
    assert r.miou["mIoU16"] == pytest.approx((14 + 0.5 + 0.5) / 16)
    assert r.miou["mIoU13"] == pytest.approx((12 + 0.5) / 13)


def test_table_layout_and_gain():
    a, b = ConfusionMatrix(19), ConfusionMatrix(19)
    t = torch.arange(19)
    a.update(t, t)
    b.update(torch.zeros(19, dtype=torch.long), t)
    text = format_table({"source_only": result_from_matrix(b, 1), "fgd_ent": result_from_matrix(a, 1)}, baseline="source_only")
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["road", "sidew", "build"] and lines[0].split()[-1] == "mIoU"
    assert lines[1].split()[-1] == f"{100 * (1 / 19) / 19:.1f}"
    assert lines[2].split()[-1] == "100.0" and lines[3].startswith("gain")


# ----------------------------------------------------------------------------------------------
# evaluation end to end, the official Cityscapes script, checkpoints, CSV / JSON, bad input
# ----------------------------------------------------------------------------------------------
import csv  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from shared_runs import tiny_runs  # noqa: E402
from udaseg.data import labels as L  # noqa: E402
from udaseg.data.datasets import cityscapes  # noqa: E402
from udaseg.data.io import DatasetError  # noqa: E402
from udaseg.data.transforms import build_transforms  # noqa: E402
from udaseg.engine.eval_checkpoints import BEST_NOTE, evaluate_checkpoints, format_evaluations  # noqa: E402
from udaseg.engine.evaluation import evaluate  # noqa: E402
from udaseg.engine.official_check import LabelIdWriter, compare_with_official, labelid_name  # noqa: E402


class _StubSegmentor(torch.nn.Module):
    """Reads the class hidden in the red channel (see :func:`_random_cityscapes_val`) at output
    stride 2, so predictions are mostly right with errors from noise and upsampling. Class 17
    (motorcycle) is never predicted and never labelled: its IoU is undefined (NaN)."""

    def forward(self, x):
        red = (x[:, :1] * 0.229 + 0.485) * 255  # undo the imagenet normalisation
        centres = torch.tensor([7.0 * lid for lid in L.TRAINID_TO_LABELID]).view(1, 19, 1, 1)
        logits = -((red - centres) / 6) ** 2
        logits[:, 17] = -1e4
        return SimpleNamespace(logits=F.avg_pool2d(logits, 2))


def _random_cityscapes_val(root: Path) -> Path:
    """Two cities with different image sizes; labels drawn from eval classes (not motorcycle,
    not train), void ids (0, 1, 3) and parking (9, ignored in evaluation). The red channel is
    7 × labelId plus noise, which the stub segmentor reads back."""
    rng = np.random.default_rng(7)
    ids = [0, 1, 3, 9] + [lid for lid in L.TRAINID_TO_LABELID if lid not in (31, 32)]
    for city, (h, w), n in (("aachen", (36, 60), 2), ("bonn", (40, 52), 1)):
        (root / "leftImg8bit" / "val" / city).mkdir(parents=True)
        (root / "gtFine" / "val" / city).mkdir(parents=True)
        for i in range(n):
            stem = f"{city}_{i:06d}_000019"
            lab = np.repeat(np.repeat(rng.choice(ids, size=(h // 12, w // 12)), 12, 0), 12, 1).astype(np.uint8)
            lab = np.pad(lab, ((0, h - lab.shape[0]), (0, w - lab.shape[1])), mode="edge")
            lab[rng.random((h, w)) < 0.1] = rng.choice(ids)  # speckles
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            img[..., 0] = np.clip(7.0 * lab + rng.normal(0, 4, (h, w)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / "leftImg8bit" / "val" / city / f"{stem}_leftImg8bit.png")
            Image.fromarray(lab, mode="L").save(root / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png")
    return root


def test_ours_equal_the_official_cityscapes_script(tmp_path):
    root = _random_cityscapes_val(tmp_path / "cs")
    ds = cityscapes(root, "val", transform=build_transforms({"resize_image": [40, 24]}))  # labels stay full size
    writer = LabelIdWriter(ds, tmp_path / "pred")
    result = evaluate(_StubSegmentor(), DataLoader(ds, batch_size=1), 19, "imagenet", "cpu", on_batch=writer)
    assert [p.name for p in writer.predictions][0] == "aachen_000000_000019_gtFine_labelIds.png"
    assert Image.open(writer.predictions[2]).size == (52, 40) and Image.open(writer.predictions[2]).mode == "L"
    check = compare_with_official(result, writer.predictions, writer.ground_truths)
    assert check.agrees, check.summary()
    for name in L.CLASSES_19:  # to 1e-6, NaN exactly where theirs is NaN
        ours, theirs = check.ours[name], check.official[name]
        assert (math.isnan(ours) and math.isnan(theirs)) or abs(ours - theirs) <= 1e-6, name
    assert abs(check.miou_ours - check.miou_official) <= 1e-6
    # the case is not trivial: many classes partly right, one undefined, one labelled but never predicted
    assert sum(0 < v < 1 for v in result.iou) >= 10
    assert math.isnan(result.iou[17]) and math.isnan(check.official["motorcycle"])
    assert result.num_images == 3


def test_labelid_names():
    assert labelid_name("frankfurt_000000_000294_leftImg8bit") == "frankfurt_000000_000294_gtFine_labelIds.png"
    assert labelid_name("holiday") == "holiday_labelIds.png"


def test_format_table_with_all_protocols():
    cm = ConfusionMatrix(16)
    t = torch.arange(16)
    cm.update(t, t)
    text = format_table({"a": result_from_matrix(cm, 1)}, all_protocols=True)
    head = text.splitlines()[0].split()
    assert head[-2:] == ["mIoU16", "mIoU13"] and head[0] == "road" and len(head) == 18
    assert text.splitlines()[1].split()[-2:] == ["100.0", "100.0"]


@pytest.fixture(scope="module")
def two_stage_run(tmp_path_factory):
    """A source-only stage then fgd_ent, 2 iterations each, validated every iteration."""
    runs = tiny_runs(tmp_path_factory)
    return runs["fgd_ent"], runs["bench"]


def test_evaluate_run_dirs_into_one_table_with_marks_files_and_official_check(two_stage_run, tmp_path):
    run, _ = two_stage_run
    lines = []
    evals = evaluate_checkpoints([run / "source_only", run], out_dir=tmp_path / "out", official_check=True,
                                 log=lines.append)
    for e in evals:
        assert e.official is not None and e.official.agrees, e.official.summary()
    marks = {(e.ref.run_dir.name, e.ref.path.name): e.ref.marks for e in evals}
    for stage in ("source_only", "fgd_ent"):
        last = next(e for e in evals if e.ref.run_dir.name == stage and "last" in e.ref.marks)
        best = [e for e in evals if e.ref.run_dir.name == stage and e.ref.path.name == "best.pt"]
        # best.pt evaluated separately only when it is another iteration than last.pt
        assert ("best" in last.ref.marks) == (not best), marks
    text = format_evaluations(evals)
    assert BEST_NOTE in text and "mIoU19 mIoU16 mIoU13" in " ".join(text.split())
    assert "fgd_ent/source_only/last.pt" in text  # rows name their run when several runs share a table
    rows = list(csv.DictReader(open(tmp_path / "out" / "eval_val.csv")))
    assert len(rows) == len(evals) and rows[0]["marks"].startswith("last") and "bicycle" in rows[0]
    doc = json.loads((tmp_path / "out" / "eval_val.json").read_text(), parse_constant=pytest.fail)  # no NaN
    assert doc["checkpoints"][0]["official_check"]["agrees"] is True
    assert set(doc["checkpoints"][0]["iou"]) == set(L.CLASSES_19)
    assert {p.name for p in (tmp_path / "out" / "predictions_labelIds").iterdir()} >= {"fgd_ent_source_only_last", "fgd_ent_last"}


def test_official_check_writes_only_into_its_own_labelid_folders(two_stage_run, tmp_path):
    run, _ = two_stage_run
    last = run / "checkpoints" / "last.pt"
    folder = tmp_path / "predictions_labelIds" / "fgd_ent_last"
    folder.mkdir(parents=True)
    (folder / "mine.png").write_bytes(b"not evaluate's")
    with pytest.raises(FileExistsError, match=r"fgd_ent_last holds files udaseg evaluate did not write"):
        evaluate_checkpoints([last], out_dir=tmp_path, official_check=True)
    assert (folder / "mine.png").read_bytes() == b"not evaluate's" and not list(tmp_path.glob("eval_*"))
    fresh = tmp_path / "fresh"
    evaluate_checkpoints([last], out_dir=fresh, official_check=True)
    evaluate_checkpoints([last], out_dir=fresh, official_check=True)  # its own folder: written again
    evaluate_checkpoints([last], out_dir=tmp_path, official_check=True, overwrite=True)
    assert (folder / "mine.png").is_file() and len(list(folder.glob("*_labelIds.png"))) >= 1


def test_evaluate_options_write_into_the_run_dir(two_stage_run):
    run, _ = two_stage_run
    # network input 32×16: at scale 1, two 32×8 windows; at scale 0.5 the input fits one window
    evals = evaluate_checkpoints([run / "checkpoints" / "last.pt"], scales=[0.5, 1.0], window=(32, 8), stride=(32, 8))
    assert not evals[0].settings["flip"] and evals[0].settings["scales"] == [0.5, 1.0]
    assert evals[0].settings["window"] == [32, 8]
    assert (run / "eval_val_ms0.5-1_slide32x8.json").is_file()


def test_evaluate_bad_input_names_the_file(two_stage_run, tmp_path):
    run, bench = two_stage_run
    last = run / "checkpoints" / "last.pt"
    with pytest.raises(ValueError, match=r"last\.pt: checkpoint has 19 classes but the config asks for model.num_classes=16"):
        evaluate_checkpoints([last], overrides=["model.num_classes=16"], out_dir=tmp_path)
    with pytest.raises(ValueError, match=r"last\.pt: dataset Cityscapes val .* has 16 classes but model.num_classes is 19"):
        evaluate_checkpoints([last], overrides=["data.val.num_classes=16"], out_dir=tmp_path)
    empty = tmp_path / "empty"
    (empty / "leftImg8bit" / "val" / "x").mkdir(parents=True)
    (empty / "gtFine" / "val").mkdir(parents=True)
    with pytest.raises(DatasetError, match=rf"no \*_leftImg8bit.png files under {empty}/leftImg8bit/val"):
        evaluate_checkpoints([last], data_root=empty, out_dir=tmp_path)
    # labels resized with the image: the official check needs predictions at the label file's size
    with pytest.raises(ValueError, match=r"c_000000_000019_gtFine_labelIds.png: label file is 64×32 but the prediction is 32×16"):
        evaluate_checkpoints([last], overrides=["data.val.transforms={resize: [32, 16]}"], official_check=True,
                             out_dir=tmp_path)
    with pytest.raises(ValueError, match="scores 19 classes"):
        evaluate_checkpoints([last], overrides=["eval.num_classes=16"], official_check=True, out_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere.pt not found"):
        evaluate_checkpoints([tmp_path / "nowhere.pt"])


def test_evaluate_cli_takes_overrides_after_options(two_stage_run, tmp_path, capsys):
    from udaseg.apps.cli_eval import build_parser

    run, _ = two_stage_run
    args = build_parser().parse_args(["evaluate", str(run / "checkpoints" / "last.pt"), "--flip", "--out",
                                      str(tmp_path), "eval.num_classes=16", "train.device=cpu"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "mIoU16 mIoU13" in " ".join(out.split()) and "flip on" in out
    assert (tmp_path / "eval_val_flip.csv").is_file()


# --------------------------------------------------------------------------- 19-class model in 16 classes

class _LogitsOf(torch.nn.Module):
    """Returns fixed (N, 19, H, W) logits whatever the input."""

    def __init__(self, pred19):
        super().__init__()
        self.pred19 = torch.as_tensor(pred19)

    def forward(self, x):
        logits = F.one_hot(self.pred19, 19).permute(2, 0, 1)[None].float() * 10
        return SimpleNamespace(logits=logits.expand(x.shape[0], -1, -1, -1))


def test_a_19_class_prediction_outside_the_16_classes_is_a_miss_not_a_crash():
    """`evaluate RUN eval.num_classes=16` crashed ("shape '[16, 16]' is invalid") once the model
    predicted terrain, truck or train: the class map sent them to 255, into the 16×16 bincount.
    Now such a prediction is a wrong one: a false negative of the pixel's true class, a false
    positive of no class."""
    from udaseg.engine.evaluation import eval_class_map, evaluate_mapped

    k, lut = eval_class_map({"model": {"num_classes": 19}, "eval": {"num_classes": 16}})
    assert k == 16 and list(lut[[9, 14, 16]]) == [16, 16, 16]  # terrain, truck, train → the "other" bin
    veg, road = L.CLASSES_16.index("vegetation"), L.CLASSES_16.index("road")
    assert (lut[L.CLASSES_19.index("vegetation")], lut[0]) == (veg, road)
    terrain, truck = L.CLASSES_19.index("terrain"), L.CLASSES_19.index("truck")
    assert (terrain, truck) == (9, 14)
    # six pixels: labels in the 16 classes (the last one ignored), the model's argmax over its 19
    label = torch.tensor([[veg, veg, road, road, road, 255]])
    pred19 = torch.tensor([[terrain, 8, 0, 0, truck, 8]])
    batch = {"image": torch.zeros(1, 3, 1, 6, dtype=torch.uint8), "label": label[None], "name": ["x.png"]}
    seen = []
    r = evaluate_mapped(_LogitsOf(pred19), [batch], k, "imagenet", "cpu", class_map=lut,
                        on_batch=lambda p, b: seen.append(p.clone()))
    assert r.num_classes == 16 and r.iou.shape == (16,)
    # vegetation: TP 1, FN 1 (predicted terrain), FP 0; road: TP 2, FN 1 (truck), FP 0
    assert r.iou[veg] == pytest.approx(1 / 2) and r.iou[road] == pytest.approx(2 / 3)
    assert np.isnan(np.delete(r.iou, [veg, road])).all()
    assert r.miou["mIoU16"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert r.miou["mIoU13"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert r.pixel_accuracy == pytest.approx(3 / 5)
    assert r.predicted_fractions.sum() == pytest.approx(3 / 5)  # 2 of the 5 counted pixels: "other"
    assert r.label_fractions.sum() == pytest.approx(1.0)
    assert seen[0].tolist() == [[[16, veg, road, road, 16, veg]]]
    # on_probs sees the softmax in the model's 19 classes, before the map, and the batch's labels
    probs_seen = []
    evaluate_mapped(_LogitsOf(pred19), [batch], k, "imagenet", "cpu", class_map=lut,
                    on_probs=lambda p, y: probs_seen.append((p.clone(), y.clone())))
    (p, y), = probs_seen
    assert p.shape == (1, 19, 1, 6) and torch.allclose(p.sum(1), torch.ones(1, 1, 6))
    assert p.argmax(1).tolist() == pred19[None].tolist() and torch.equal(y, label[None])
    # one-hot logits × 10: the top probability is e^10 / (e^10 + 18), by hand
    assert p.max(1).values[0, 0, 0].item() == pytest.approx(math.exp(10) / (math.exp(10) + 18), rel=1e-5)
    # without a class map: the plain evaluation
    plain = evaluate_mapped(_LogitsOf(pred19), [{**batch, "label": pred19[None]}], 19, "imagenet", "cpu")
    assert plain.num_classes == 19 and plain.pixel_accuracy == 1.0


def test_evaluate_a_19_class_checkpoint_in_16_classes_when_it_predicts_terrain(tmp_path):
    """The same through evaluate_state (what `udaseg evaluate ... eval.num_classes=16` runs): a
    model predicting terrain everywhere misses every labelled pixel."""
    from fixtures import tiny_benchmark, tiny_config
    from udaseg.engine.eval_checkpoints import evaluate_state

    cfg = tiny_config(tiny_benchmark(tmp_path / "bench"), ["eval.num_classes=16", "train.device=cpu"])
    model = _LogitsOf(torch.full((32, 64), L.CLASSES_19.index("terrain")))
    result, settings, _ = evaluate_state({}, cfg, "terrain.pt", model=model)
    assert result.num_classes == settings["num_classes"] == 16
    labelled = result.label_fractions > 0
    assert labelled.sum() >= 5 and (result.iou[labelled] == 0).all() and np.isnan(result.iou[~labelled]).all()
    assert result.pixel_accuracy == 0 and result.predicted_fractions.sum() == 0
    assert result.miou["mIoU16"] == 0


# ------------------------------------------------------------------------- evaluate --split dev

def _state(*overrides):
    from udaseg.config import load_config

    return {"config": load_config(None, ["data.val.root=/v/cs", "data.dev.root=/d/cs", "data.dev.split=mydev",
                                         "data.dev.transforms={resize_image: [16, 8]}", *overrides]),
            "num_classes": 19}


def test_evaluation_config_split_dev_evaluates_the_dev_section():
    import copy

    from udaseg.engine.eval_checkpoints import evaluation_config

    state = _state()
    before = copy.deepcopy(state)
    plain = evaluation_config(state, "x.pt")
    assert (plain["data"]["val"]["root"], plain["data"]["val"]["split"]) == ("/v/cs", "val")
    dev = evaluation_config(state, "x.pt", split="dev")
    # the whole data.dev section (its own root, split name and transforms), not data.val with split=dev
    assert dev["data"]["val"] == {"kind": "cityscapes", "root": "/d/cs", "split": "mydev", "split_list": None,
                                  "num_classes": None, "transforms": {"resize_image": [16, 8]}}
    # --data goes to data.dev.root then
    rooted = evaluation_config(state, "x.pt", split="dev", data_root="/r/cs")
    assert rooted["data"]["val"]["root"] == "/r/cs" and rooted["data"]["val"]["split"] == "mydev"
    assert rooted["data"]["dev"]["root"] == "/r/cs"
    # any other split stays a data.val split, with --data its root
    other = evaluation_config(state, "x.pt", split="test", data_root="/r/cs")
    assert (other["data"]["val"]["root"], other["data"]["val"]["split"]) == ("/r/cs", "test")
    assert other["data"]["val"]["transforms"] == {} and other["data"]["dev"]["root"] == "/d/cs"
    assert state == before  # the checkpoint's config is not changed


def test_evaluation_config_split_dev_of_a_checkpoint_from_before_data_dev():
    from udaseg.engine.eval_checkpoints import evaluation_config

    state = _state()
    del state["config"]["data"]["dev"]  # written before the key existed: the defaults fill it
    cfg = evaluation_config(state, "old.pt", split="dev", data_root="/r/cs")
    assert cfg["data"]["val"]["root"] == "/r/cs" and cfg["data"]["val"]["split"] == "dev"
    assert evaluation_config(state, "old.pt", split="dev")["data"]["val"]["root"] == "data/cityscapes"


def test_evaluate_split_dev_reads_the_dev_images(two_stage_run, tmp_path):
    from fixtures import make_cityscapes

    run, _ = two_stage_run
    root = tmp_path / "cs"
    make_cityscapes(root, "dev", cities=("e",), h=32, w=64)  # 1 dev image (val has 2)
    evals = evaluate_checkpoints([run / "checkpoints" / "last.pt"], split="dev", data_root=root, out_dir=tmp_path / "out")
    assert evals[0].data == {"kind": "cityscapes", "root": str(root), "split": "dev"}
    assert evals[0].result.num_images == 1
    assert (tmp_path / "out" / "eval_dev.csv").is_file() and not (tmp_path / "out" / "eval_val.csv").exists()


def test_build_val_loader_sections(tmp_path):
    from fixtures import make_cityscapes, tiny_benchmark, tiny_config
    from udaseg.engine.builders import build_val_loader

    bench = tiny_benchmark(tmp_path / "b", h=16, w=32)
    make_cityscapes(bench / "dev", "dev", cities=("e",), h=16, w=32)
    cfg = tiny_config(bench, [f"data.dev.root={bench}/dev"])
    assert len(build_val_loader(cfg).dataset) == 2  # data.val: cities c, d
    assert len(build_val_loader(cfg, section="dev").dataset) == 1  # data.dev: city e
    with pytest.raises(ValueError, match=r"evaluation split section 'test': expected val or dev"):
        build_val_loader(cfg, section="test")


def test_trainer_validates_on_dev_and_says_so(tmp_path):
    from fixtures import make_cityscapes, tiny_benchmark, tiny_config
    from udaseg.engine.trainer import Trainer

    bench = tiny_benchmark(tmp_path / "b")
    make_cityscapes(bench / "dev", "dev", cities=("e",), h=32, w=64)
    cfg = tiny_config(bench, ["train.iters=1", "train.val_every=1", "train.checkpoint_every=0",
                              "train.validate_on=dev", f"data.dev.root={bench}/dev",
                              "data.dev.transforms={resize_image: [32, 16]}"])
    t = Trainer(cfg, tmp_path / "run", progress=False)
    t.train()
    assert len(t._val_loader.dataset) == 1  # the dev image, not the 2 val ones
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if r["kind"] == "val"]
    assert val and all(r["split"] == "dev" for r in val)
    assert "dev @ 1:" in (tmp_path / "run" / "train.log").read_text()


def test_evaluate_replaces_only_its_own_files_and_says_so(two_stage_run, tmp_path):
    run, _ = two_stage_run
    last = run / "checkpoints" / "last.pt"
    out = tmp_path / "out"
    lines = []
    evaluate_checkpoints([last], out_dir=out, log=lines.append)
    assert json.loads((out / "eval_val.json").read_text())["written_by"] == "udaseg evaluate"
    evaluate_checkpoints([last], out_dir=out, log=lines.append)  # its own files: replaced, and said so
    assert "(replaced the earlier eval_val.csv, eval_val.json)" in lines[-1]
    (out / "eval_val.csv").write_text("my own notes\n")  # a user's file of that name
    with pytest.raises(FileExistsError, match=r"eval_val\.csv exists and was not written by udaseg evaluate.*--overwrite"):
        evaluate_checkpoints([last], out_dir=out)
    assert (out / "eval_val.csv").read_text() == "my own notes\n"
    evaluate_checkpoints([last], out_dir=out, overwrite=True)
    assert (out / "eval_val.csv").read_text().startswith("checkpoint,iteration,marks,method,")
