"""DAFormer's ImageNet feature distance (``udaseg.engine.feature_distance``): the label ratio rule,
the masked distance by hand, the frozen encoder (unchanged while the student moves, rebuilt from
the weight file or kept in the checkpoint), exact resume, and the config errors."""
import copy

import pytest
import torch

from fixtures import assert_same_tensors, tiny_benchmark, tiny_config
from udaseg.config import ConfigError, load_config
from udaseg.engine import components
from udaseg.engine import feature_distance as FD
from udaseg.engine.checkpoint import load_checkpoint
from udaseg.engine.run_logger import read_metrics
from udaseg.engine.trainer import Trainer
from udaseg.methods.base import Pass
from udaseg.models import SegmentorOutput, build_segmentor

IGN = 255


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return tiny_benchmark(tmp_path_factory.mktemp("bench"))


def fd_config(bench, *over):
    # the fixture's labels are 1-pixel class stripes: no cell has a 0.75 majority, so the runs
    # measure every cell (thing_classes null) unless a test says otherwise
    return tiny_config(bench, ["train.val_every=0", "feature_distance.enabled=true",
                               "feature_distance.thing_classes=null", "feature_distance.weight=0.5", *over])


# -- the label ratio rule ----------------------------------------------------------------------

def test_downscale_label_ratio_by_hand():
    # one image 4×12 → three 4×4 cells (stride 4), 19 classes
    lbl = torch.full((1, 4, 12), 13)
    lbl[0, 0, 0:4] = 2          # cell 0: 12 of 16 car = 0.75          → car (≥ r, inclusive)
    lbl[0, 0:2, 4:8] = 2        # cell 1: 8 car, 8 building: max 0.5    → ignored
    lbl[0, :, 8:12] = IGN       # cell 2: 13 ignore, 3 person: ignore wins the vote → ignored
    lbl[0, 3, 9:12] = 11
    out = FD.downscale_label_ratio(lbl, (1, 3), 0.75, 19)
    assert out.dtype == torch.int64 and out.tolist() == [[[13, IGN, IGN]]]
    # r = 0.5: cell 1 is a tie, 0.5 each: the first class (building) wins, as torch.max's first maximum
    assert FD.downscale_label_ratio(lbl, (1, 3), 0.5, 19).tolist() == [[[13, 2, IGN]]]
    assert FD.downscale_label_ratio(lbl, (1, 3), 0.8, 19).tolist() == [[[IGN, IGN, IGN]]]
    # a cell mostly of person (13 of 16) counts; an unknown id counts as ignored
    lbl2 = torch.full((1, 4, 4), 11)
    lbl2[0, 0, :3] = 40
    assert FD.downscale_label_ratio(lbl2, (1, 1), 0.75, 19).item() == 11
    assert FD.downscale_label_ratio(lbl2, (1, 1), 0.85, 19).item() == IGN


def test_downscale_label_ratio_matches_a_pixel_count():
    g = torch.Generator().manual_seed(0)
    lbl = torch.randint(0, 4, (2, 32, 64), generator=g)
    lbl[lbl == 3] = IGN
    lbl[:, :16, :32] = 1  # a pure cell
    out = FD.downscale_label_ratio(lbl, (2, 4), 0.4, 3)
    for n in range(2):
        for i in range(2):
            for j in range(4):
                cell = lbl[n, 16 * i:16 * i + 16, 16 * j:16 * j + 16].flatten().tolist()
                counts = {c: cell.count(c) for c in (0, 1, 2, IGN)}
                best = max(counts, key=lambda c: (counts[c], -[0, 1, 2, IGN].index(c)))
                want = best if counts[best] / 256 >= 0.4 else IGN
                assert out[n, i, j].item() == want, (n, i, j, counts)
    assert out[:, 0, 0].tolist() == [1, 1]


def test_a_non_integer_stride_pools_adaptive_cells():
    # 5 rows → 2 cells: adaptive bins rows 0–2 and 2–4 (row 2 in both); Caffe DeepLab's 65-from-512
    lbl = torch.zeros((1, 5, 1), dtype=torch.int64)
    lbl[0, 3:, 0] = 1
    out = FD.downscale_label_ratio(lbl, (2, 1), 0.6, 2)
    assert out.tolist() == [[[0], [1]]]  # rows 0,1,2 → 3/3 class 0; rows 2,3,4 → 2/3 class 1 ≥ 0.6


def test_thing_mask():
    lbl = torch.tensor([[[13] * 4 + [8] * 4 + [IGN] * 4] * 4])  # car | vegetation | ignore cells
    assert FD.thing_mask(lbl, (1, 3), FD.THING_CLASSES_19, 0.75, 19).tolist() == [[[True, False, False]]]
    assert FD.thing_mask(lbl, (1, 3), [8], 0.75, 19).tolist() == [[[False, True, False]]]
    assert FD.thing_mask(lbl, (1, 3), None, 0.75, 19).all()  # null: every cell, ignored ones too


# -- the distance ------------------------------------------------------------------------------

def test_masked_feature_distance_by_hand():
    # 2 channels, 1×3 cells: differences (3, 4) → 5, (0, 0) → 0, (1, 0) → 1
    student = torch.tensor([[[[3.0, 1.0, 2.0]], [[4.0, 1.0, 0.0]]]], requires_grad=True)
    frozen = torch.tensor([[[[0.0, 1.0, 1.0]], [[0.0, 1.0, 0.0]]]])
    mask = torch.tensor([[[True, False, True]]])
    d = FD.masked_feature_distance(student, frozen, mask)
    assert d.item() == pytest.approx(3.0)  # (5 + 1) / 2
    assert FD.masked_feature_distance(student, frozen, None).item() == pytest.approx(2.0)  # (5 + 0 + 1) / 3
    d.backward()  # ∂/∂s of ½(‖s0 − f0‖ + ‖s2 − f2‖): unit vectors / 2 on the masked cells, 0 elsewhere
    assert torch.allclose(student.grad, torch.tensor([[[[0.3, 0.0, 0.5]], [[0.4, 0.0, 0.0]]]]))


def test_an_empty_mask_gives_zero_and_no_gradient():
    student = torch.randn(2, 3, 2, 2, requires_grad=True)
    d = FD.masked_feature_distance(student, torch.zeros(2, 3, 2, 2), torch.zeros(2, 2, 2, dtype=torch.bool))
    assert d.item() == 0.0  # the reference's mean of nothing is NaN, which the trainer would stop on
    d.backward()
    assert torch.equal(student.grad, torch.zeros_like(student))


def test_source_term_on_known_features_and_labels():
    """The component on a real R18: λ · mean over thing cells of the feature distance, the
    student's features being its encoder's plus a known offset."""
    torch.manual_seed(0)
    model = build_segmentor("deeplabv2_resnet18_tv", 19, multi_level=False, bn_mode="frozen").eval()
    cfg = {"weight": 0.005, "thing_classes": list(FD.THING_CLASSES_19), "scale_min_ratio": 0.75}
    fd = FD.FeatureDistance(cfg, model, copy.deepcopy(model.backbone), "initial", num_classes=19, input_norm="caffe")
    images = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    from udaseg.engine.inputs import normalize_images
    frozen = model(normalize_images(images, "caffe")).features.detach()  # (1, 512, 4, 4): cells of 8×8
    offset = torch.zeros_like(frozen)
    offset[0, 0] = torch.arange(16.0).view(4, 4)  # cell (i, j) is i·4 + j away from the frozen features
    labels = torch.full((1, 32, 32), 8)  # vegetation
    labels[0, 0:8, 8:16] = 13  # cell (0, 1): car → distance 1
    labels[0, 24:32, 24:32] = 11  # cell (3, 3): person → 15
    labels[0, 8:16, 0:8] = 11
    labels[0, 8:11, 0:8] = 8  # cell (1, 0): 40 of 64 person = 0.625 < 0.75 → not a thing
    src = Pass(SegmentorOutput(None, None, frozen + offset), labels, (32, 32))
    (weight, value), = fd.source_terms(src, {"image": images}).values()
    assert weight == 0.005 and value.item() == pytest.approx((1 + 15) / 2, rel=1e-5)
    assert fd.metrics() == {"fd_cells": 2 / 16}


# -- in the trainer ----------------------------------------------------------------------------

def test_the_frozen_encoder_stays_while_the_student_moves(bench, tmp_path):
    t = Trainer(fd_config(bench, "train.iters=2"), tmp_path, progress=False)
    fd, = t.components
    assert fd.origin == "initial" and t.resolved["feature_distance_encoder"] == "initial"
    before = copy.deepcopy(t.model.backbone.state_dict())
    assert all(torch.equal(before[k], v) for k, v in fd.encoder.state_dict().items())
    frozen_params = {id(p) for p in fd.encoder.parameters()}
    assert not any(p.requires_grad for p in fd.encoder.parameters()) and not fd.encoder.training
    assert not frozen_params & {id(p) for g in t.opt_g.param_groups for p in g["params"]}
    t.train()
    assert all(torch.equal(before[k], v) for k, v in fd.encoder.state_dict().items())
    assert any(not torch.equal(before[k], v) for k, v in t.model.backbone.state_dict().items() if v.is_floating_point())
    train = [r for r in read_metrics(tmp_path) if r["kind"] == "train"]
    # every cell counts (thing_classes null); iteration 0 too: train-mode BN vs the copy's eval-mode BN
    assert len(train) == 2 and all(r["feat_dist"] > 0 and r["fd_cells"] == 1.0 for r in train)


def test_its_term_trains_and_at_weight_zero_changes_nothing(bench, tmp_path):
    """λ = 0: the weights of a run without the component, bit for bit (the frozen copy draws
    nothing from the run's RNG); λ > 0: other weights, in the encoder only."""
    off = Trainer(tiny_config(bench, ["train.val_every=0", "train.iters=3"]), tmp_path / "off", progress=False)
    off.train()
    zero = Trainer(fd_config(bench, "train.iters=3", "feature_distance.weight=0"), tmp_path / "zero", progress=False)
    zero.train()
    on = Trainer(fd_config(bench, "train.iters=3", "feature_distance.weight=10"), tmp_path / "on", progress=False)
    on.train()
    a, b, c = (x.model.state_dict() for x in (off, zero, on))
    assert all(torch.equal(a[k], b[k]) for k in a)
    changed = [k for k in a if a[k].is_floating_point() and not torch.equal(a[k], c[k])]
    assert any(k.startswith("backbone.") for k in changed)


def test_fd_gradient_reaches_the_encoder_only():
    torch.manual_seed(0)
    model = build_segmentor("deeplabv2_resnet18", 19, multi_level=False, bn_mode="trainable")
    cfg = {"weight": 1.0, "thing_classes": None, "scale_min_ratio": 0.75}
    fd = FD.FeatureDistance(cfg, model, copy.deepcopy(model.backbone), "initial", num_classes=19,
                            input_norm="per_image")
    with torch.no_grad():
        model.backbone.layer4[0].conv1.weight.mul_(1.5)  # the student moved
    images = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    from udaseg.engine.inputs import normalize_images
    out = model(normalize_images(images, "per_image"))
    (_, value), = fd.source_terms(Pass(out, torch.zeros(1, 32, 32, dtype=torch.int64), (32, 32)),
                                  {"image": images}).values()
    value.backward()
    assert value.item() > 0
    assert all(p.grad is None for p in model.classifier.parameters())
    assert model.backbone.layer4[0].conv1.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in fd.encoder.parameters())


def test_resume_is_exact_and_the_initial_encoder_is_in_the_checkpoint(bench, tmp_path):
    cfg = fd_config(bench, "train.iters=4", "train.checkpoint_every=2", "self_training.enabled=true",
                    "data.source.transforms={resize: [64, 32], hflip: 0.5}")
    full = Trainer(cfg, tmp_path / "full", progress=False).train()
    Trainer(cfg, tmp_path / "cut", progress=False).train(stop_at=3)  # killed after 3, last.pt at 2
    resumed = Trainer(cfg, tmp_path / "cut", resume=True, progress=False)
    assert resumed.start_iter == 2 and [c.key for c in resumed.components] == ["self_training", "feature_distance"]
    init = Trainer(cfg, tmp_path / "init", progress=False).model.backbone.state_dict()
    assert all(torch.equal(init[k], v) for k, v in resumed.components[1].encoder.state_dict().items())
    resumed.train()
    a, b = load_checkpoint(full["last"]), load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert_same_tensors(a, b, ("segmentor", "teacher"))
    st = b["feature_distance"]
    assert st["origin"] == "initial" and all(torch.equal(init[k], v) for k, v in st["encoder"].items())


def test_with_pretrained_weights_the_encoder_is_rebuilt_from_the_file(bench, tmp_path):
    """model.pretrained: the frozen encoder is the file's (also under init_from), the checkpoint
    keeps only its digest, resume is exact, and a changed file refuses the resume."""
    torch.manual_seed(3)
    weights = tmp_path / "r18.pth"
    src = build_segmentor("deeplabv2_resnet18", 19, multi_level=True, bn_mode="trainable")
    torch.save({"segmentor": src.state_dict(), "arch": "deeplabv2_resnet18"}, weights)
    cfg = fd_config(bench, "train.iters=4", "train.checkpoint_every=2", f"model.pretrained={weights}")
    t = Trainer(cfg, tmp_path / "full", progress=False)
    fd, = t.components
    assert fd.origin == "pretrained"
    assert all(torch.equal(src.backbone.state_dict()[k], v) for k, v in fd.encoder.state_dict().items())
    full = t.train()
    state = load_checkpoint(full["last"])["feature_distance"]
    assert set(state) == {"origin", "digest"} and state["origin"] == "pretrained"
    Trainer(cfg, tmp_path / "cut", progress=False).train(stop_at=3)
    Trainer(cfg, tmp_path / "cut", resume=True, progress=False).train()
    a, b = load_checkpoint(full["last"]), load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert all(torch.equal(a["segmentor"][k], b["segmentor"][k]) for k in a["segmentor"])
    # init_from another checkpoint: the student starts there, the reference stays the file's
    staged = Trainer(copy.deepcopy(cfg) | {"train": {**cfg["train"], "init_from": str(full["last"])}},
                     tmp_path / "staged", progress=False)
    assert all(torch.equal(src.backbone.state_dict()[k], v) for k, v in staged.components[0].encoder.state_dict().items())
    assert not all(torch.equal(src.state_dict()[k], v) for k, v in staged.model.state_dict().items())
    # another file at the same path: the reference cannot be rebuilt, the resume is refused
    Trainer(cfg, tmp_path / "moved", progress=False).train(stop_at=3)
    with torch.no_grad():
        next(src.backbone.parameters()).add_(1.0)
    torch.save({"segmentor": src.state_dict(), "arch": "deeplabv2_resnet18"}, weights)
    with pytest.raises(ValueError, match="weights of model.pretrained differ from those this run started with"):
        Trainer(cfg, tmp_path / "moved", resume=True, progress=False)


def test_it_runs_on_a_transformer_stage(bench, tmp_path):
    cfg = fd_config(bench, "train.iters=1", "model.arch=segformer_mitb0", "model.multi_level=false",
                    "model.feature_stage=3")
    t = Trainer(cfg, tmp_path, progress=False)
    fd, = t.components
    x = torch.randn(1, 3, 32, 64)
    assert torch.equal(FD.encoder_features(t.model, fd.encoder, x), t.model.eval()(x).features)
    assert t.model(x).features.shape == (1, 160, 2, 4)  # stage 3: stride 16
    t.train()
    train = [r for r in read_metrics(tmp_path) if r["kind"] == "train"]
    assert len(train) == 1 and train[0]["feat_dist"] > 0


# -- config ------------------------------------------------------------------------------------

def test_defaults_are_daformers():
    cfg = load_config(None)["feature_distance"]
    assert cfg == {"enabled": False, "weight": 0.005, "thing_classes": [6, 7, 11, 12, 13, 14, 15, 16, 17, 18],
                   "scale_min_ratio": 0.75}
    assert (FD.DEFAULT_WEIGHT, FD.DEFAULT_MIN_RATIO, FD.THING_CLASSES_19) == (0.005, 0.75, tuple(cfg["thing_classes"]))
    # the same classes in the 16-class SYNTHIA set
    from udaseg.data.labels import CLASSES_16, CLASSES_19
    assert [CLASSES_16[i] for i in FD.THING_CLASSES_16] == [CLASSES_19[i] for i in FD.THING_CLASSES_19
                                                             if CLASSES_19[i] in CLASSES_16]
    assert "feature_distance" in components.COMPONENTS


@pytest.mark.parametrize("override,message", [
    ("feature_distance.weight=-1", "'feature_distance.weight' must be at least 0"),
    ("feature_distance.scale_min_ratio=1.5", r"'feature_distance.scale_min_ratio' must be in \[0, 1\]"),
    ("feature_distance.thing_classes=3", "'feature_distance.thing_classes' must be a list"),
])
def test_bad_values_are_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


@pytest.mark.parametrize("overrides,message", [
    (["feature_distance.thing_classes=[6,7,16]", "model.num_classes=16"],
     r"'feature_distance.thing_classes' has \[16\], outside the model's 16 classes \(0..15\); the things of the "
     r"16-class set are \[6, 7, 10, 11, 12, 13, 14, 15\]"),
    (["feature_distance.thing_classes=[6,6]"], "lists a class twice"),
    (["feature_distance.thing_classes=[]"], "must be a non-empty list of class ids"),
    (["feature_distance.thing_classes=[6,true]"], "must be a non-empty list of class ids"),
    (["method.name=target_only"], "feature_distance works on labelled source images; method target_only has none"),
])
def test_bad_runs_are_refused_before_anything_trains(bench, tmp_path, overrides, message):
    from udaseg.engine.stages import run_training

    cfg = tiny_config(bench, ["train.iters=2", "train.pretrain_iters=2", "feature_distance.enabled=true", *overrides])
    with pytest.raises(ValueError, match=message):
        run_training(cfg, tmp_path, progress=False)
    assert not (tmp_path / "source_only").exists() and not (tmp_path / "checkpoints").exists()
