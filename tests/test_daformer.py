"""The transformer path trained from a config with DAFormer's recipe: the model keys, the
optimiser groups (lr_mult and per-group weight decay through the schedule), the pseudo-label
crop, the shipped DAFormer configs, and a MiT-B0 run with self-training and feature distance that
resumes exactly."""
from pathlib import Path

import pytest
import torch

from fixtures import assert_same_tensors, tiny_benchmark, tiny_config
from udaseg.config import ConfigError, load_config
from udaseg.engine import components
from udaseg.engine.checkpoint import load_checkpoint
from udaseg.engine.optim import build_optimizer, resolve_no_decay_norm, segmenter_param_groups
from udaseg.engine.run_logger import read_metrics
from udaseg.engine.trainer import Trainer
from udaseg.models import build_segmentor

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
MIT_B0 = ["model.arch=daformer_mitb0", "model.multi_level=false"]  # tiny_config's BN already trains
DAFORMER_OPT = ["train.optimizer=adamw", "train.lr=6e-5", "train.weight_decay=0.01", "train.poly_power=1.0",
                "train.warmup_iters=4", "train.warmup_ratio=1e-6"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return tiny_benchmark(tmp_path_factory.mktemp("bench"))


# -- config keys -------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides,message", [
    (["model.arch=daformer_mitb5"], "'model.multi_level' is true, but daformer_mitb5 has no auxiliary head: set "
                                    "model.multi_level=false"),
    (["model.arch=segformer_mitb0", "model.multi_level=false"], "'model.bn_mode' is 'frozen', but segformer_mitb0 "
                                                               "takes trainable or sync"),
    ([*MIT_B0, "model.bn_mode=frozen_affine"], "'model.bn_mode' is 'frozen_affine'"),
    ([*MIT_B0, "model.bn_mode=trainable", "model.pretrained=mit_b0.pth"], "'model.input_norm' is 'caffe', but the "
                                                                         "MiT weights of model.pretrained expect imagenet"),
    ([*MIT_B0, "model.bn_mode=trainable", "model.feature_stage=5"], r"'model.feature_stage' must be in \[1, 4\], got 5"),
    ([*MIT_B0, "model.bn_mode=trainable", "model.feature_stage=true"], "'model.feature_stage' must be an integer"),
    (["model.feature_stage=4"], "'model.feature_stage' applies to the transformer archs only; deeplabv2_resnet101"),
    (["train.no_decay_norm=true"], "'train.no_decay_norm' is True, but deeplabv2_resnet101 has no norm exemption"),
    (["train.no_decay_norm=all"], "'train.no_decay_norm' is 'all'"),
    (["train.no_decay_norm=some"], "'train.no_decay_norm' must be true, false, all, or auto, got 'some'"),
])
def test_arch_dependent_model_keys_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_new_keys_default_to_the_old_behaviour():
    cfg = load_config(None)
    assert cfg["model"]["feature_stage"] is None and cfg["train"]["no_decay_norm"] == "auto"
    assert (cfg["train"]["poly_power"], cfg["train"]["warmup_iters"]) == (0.9, 0)
    assert (cfg["self_training"]["ignore_top"], cfg["self_training"]["ignore_bottom"]) == (0, 0)
    assert cfg["feature_distance"]["enabled"] is False
    load_config(None, ["train.no_decay_norm=false"])  # what DeepLab-V2 does anyway: allowed
    assert resolve_no_decay_norm("auto", "deeplabv2_resnet101") is False
    assert resolve_no_decay_norm("auto", "daformer_mitb5") is True
    assert resolve_no_decay_norm("all", "segformer_mitb0") == "all"


def test_deeplab_groups_are_the_models_own():
    torch.manual_seed(0)
    model = build_segmentor("deeplabv2_resnet18", 19)
    tc = load_config(None)["train"]
    got, want = segmenter_param_groups(model, "deeplabv2_resnet18", tc), model.param_groups(tc["lr"], tc["head_lr_mult"])
    assert [{k: v for k, v in g.items() if k != "params"} for g in got] == \
           [{k: v for k, v in g.items() if k != "params"} for g in want]
    assert all([id(p) for p in a["params"]] == [id(p) for p in b["params"]] for a, b in zip(got, want))
    assert all("weight_decay" not in g for g in got)


def test_feature_stage_chooses_the_features(bench, tmp_path):
    t = Trainer(tiny_config(bench, [*MIT_B0, "model.feature_stage=2", "train.val_every=0"]), tmp_path, progress=False)
    assert t.model.feature_stage == 2 and t.model.feature_channels == 64  # MiT-B0 dims 32, 64, 160, 256
    assert t.model(torch.zeros(1, 3, 32, 64)).features.shape == (1, 64, 4, 8)  # stride 8


# -- the optimiser and schedule ----------------------------------------------------------------

@pytest.mark.parametrize("no_decay,groups", [
    ("auto", {"backbone": 0.01, "backbone_norm": 0.0, "head": 0.01}),  # DAFormer's paramwise_cfg
    ("true", {"backbone": 0.01, "backbone_norm": 0.0, "head": 0.01}),
    ("all", {"backbone": 0.01, "backbone_norm": 0.0, "head": 0.01, "head_norm": 0.0}),
    ("false", {"backbone": 0.01, "head": 0.01}),
])
def test_transformer_groups_keep_their_weight_decay_and_lr_mult(bench, tmp_path, no_decay, groups):
    """AdamW from the config: each group's own weight decay survives the optimiser build and a
    checkpoint round trip, and the warm-up + poly schedule sets lr × lr_mult in every group."""
    cfg = tiny_config(bench, [*MIT_B0, *DAFORMER_OPT, f"train.no_decay_norm={no_decay}", "train.iters=8",
                              "train.val_every=0", "train.checkpoint_every=2"])
    t = Trainer(cfg, tmp_path, progress=False)
    assert isinstance(t.opt_g, torch.optim.AdamW)
    assert {g["name"]: g["weight_decay"] for g in t.opt_g.param_groups} == groups
    mult = {g["name"]: g["lr_mult"] for g in t.opt_g.param_groups}
    assert mult == {name: (10.0 if name.startswith("head") else 1.0) for name in groups}
    norm_names = {n for n, p in t.model.named_parameters() if any(p is q for g in t.opt_g.param_groups
                                                                   if g["name"] == "backbone_norm" for q in g["params"])}
    assert not norm_names or all("norm" in n and n.startswith("backbone.") for n in norm_names)
    for it, factor in ((0, 1e-6), (2, 1 - (1 - 2 / 4) * (1 - 1e-6))):  # linear warm-up over 4 iterations
        lr = t.stepper.set_lr(it)
        assert lr == pytest.approx(6e-5 * (1 - it / 8) * factor, rel=1e-12)
        assert all(g["lr"] == pytest.approx(lr * mult[g["name"]], rel=1e-12) for g in t.opt_g.param_groups)
    assert t.stepper.set_lr(6) == pytest.approx(6e-5 * (1 - 6 / 8))  # after the warm-up: poly, power 1
    t.release_lock()  # explicitly: an untrained Trainer may sit in a reference cycle until the collector runs
    del t
    Trainer(cfg, tmp_path, progress=False, overwrite=True).train(stop_at=3)  # last.pt at 2
    resumed = Trainer(cfg, tmp_path, resume=True, progress=False)
    assert resumed.start_iter == 2
    assert {g["name"]: g["weight_decay"] for g in resumed.opt_g.param_groups} == groups


def test_a_group_without_decay_is_not_decayed():
    """torch keeps a group's own weight_decay over the optimiser default: one AdamW step with zero
    gradients decays the backbone weights (×(1 − lr·wd)) and leaves the norm weights alone."""
    torch.manual_seed(0)
    model = build_segmentor("daformer_mitb0", 19, multi_level=False, bn_mode="trainable")
    opt = build_optimizer("adamw", model.param_groups(0.1), lr=0.1, weight_decay=0.01)
    named = dict(model.named_parameters())
    before = {n: p.detach().clone() for n, p in named.items()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    norm_w, lin_w = "backbone.block1.0.norm1.weight", "backbone.block1.0.attn.q.weight"
    assert torch.equal(named[norm_w], before[norm_w])
    assert torch.allclose(named[lin_w], before[lin_w] * (1 - 0.1 * 0.01))
    head_w = next(n for n in named if n.startswith("decode_head.") and n.endswith("weight"))
    assert torch.allclose(named[head_w], before[head_w] * (1 - 1.0 * 0.01))  # head: lr × 10


# -- the pseudo-label crop ---------------------------------------------------------------------

def test_pseudo_label_crop_at_daformers_size():
    """DAFormer's 15 / 120 rows on a 512-high target crop: rows 0–14 and 392–511 weigh 0, the
    others the confident share (here 3 of 4 pixels columns confident everywhere → 0.75)."""
    from udaseg.engine.self_training import pseudo_labels

    logits = torch.zeros(1, 2, 512, 4)
    logits[:, 0, :, :3] = 10.0  # q = 1/(1 + e^-10) ≈ 0.99995 ≥ 0.968 in 3 of 4 columns; 0.5 in the last
    labels, weight = pseudo_labels(logits, 0.968, ignore_top=15, ignore_bottom=120)
    assert labels[0, :, :3].eq(0).all()
    expected = torch.full((1, 512, 4), 0.75)
    expected[:, :15] = 0
    expected[:, 392:] = 0
    assert torch.equal(weight, expected)


def test_the_configured_crop_reaches_the_pseudo_labels(bench, tmp_path, monkeypatch):
    from udaseg.engine import mean_teacher

    seen = []
    real = mean_teacher.pseudo_labels

    def spy(*args, **kwargs):
        labels, weight = real(*args, **kwargs)
        seen.append(weight)
        return labels, weight

    monkeypatch.setattr(mean_teacher, "pseudo_labels", spy)
    cfg = tiny_config(bench, ["train.iters=1", "train.val_every=0", "self_training.enabled=true",
                              "self_training.ignore_top=3", "self_training.ignore_bottom=5",
                              "data.source.transforms={resize: [64, 32], hflip: 0.5}"])
    Trainer(cfg, tmp_path, progress=False).train()
    w, = seen
    assert w.shape[-2:] == (32, 64) and w[:, :3].eq(0).all() and w[:, -5:].eq(0).all()
    assert torch.equal(w[:, 3:-5], torch.full_like(w[:, 3:-5], float(w[0, 3, 0])))


# -- the shipped configs -----------------------------------------------------------------------

@pytest.mark.parametrize("folder,resize,things", [
    ("gta5_cityscapes", [1280, 720], [6, 7, 11, 12, 13, 14, 15, 16, 17, 18]),
    ("synthia_cityscapes", [1280, 760], [6, 7, 10, 11, 12, 13, 14, 15]),
])
def test_daformer_configs_are_daformers_final_recipe(folder, resize, things):
    cfg = load_config(CONFIGS / folder / "daformer.yaml")
    components.check_run_config(cfg)
    m, tc, st, fd, data = cfg["model"], cfg["train"], cfg["self_training"], cfg["feature_distance"], cfg["data"]
    assert (m["arch"], m["multi_level"], m["bn_mode"], m["input_norm"], m["pretrained"]) == (
        "daformer_mitb5", False, "trainable", "imagenet", None)
    assert (tc["optimizer"], tc["lr"], tc["betas"], tc["weight_decay"], tc["head_lr_mult"], tc["no_decay_norm"]) == (
        "adamw", 6e-5, [0.9, 0.999], 0.01, 10.0, True)
    assert (tc["poly_power"], tc["warmup_iters"], tc["warmup_ratio"], tc["iters"], tc["pretrain_iters"]) == (
        1.0, 1500, 1e-6, 40000, 0)
    assert (data["global_batch_size"], data["source"]["transforms"]["crop"], data["target"]["transforms"]["crop"]) == (
        2, [512, 512], [512, 512])
    assert data["source"]["transforms"]["resize"] == resize and data["target"]["transforms"]["resize"] == [1024, 512]
    # the source crop's cat_max_ratio as the reference; the reference's target one reads target labels: not copied
    assert data["source"]["transforms"]["cat_max_ratio"] == 0.75 and "cat_max_ratio" not in data["target"]["transforms"]
    assert cfg["method"]["name"] == "source_only"
    assert (st["enabled"], st["alpha"], st["tau"], st["pseudo_weight"], st["ignore_top"], st["ignore_bottom"]) == (
        True, 0.999, 0.968, "batch", 15, 120)
    assert data["source"]["rcs"] == {"enabled": True, "temperature": 0.01, "min_pixels": 3000, "min_crop_ratio": 0.5}
    assert (fd["enabled"], fd["weight"], fd["thing_classes"], fd["scale_min_ratio"]) == (True, 0.005, things, 0.75)
    assert [c.key for c in components.enabled(cfg)] == ["self_training", "feature_distance"]
    # set the weights file and the config stays valid (the MiT weights expect imagenet input)
    load_config(CONFIGS / folder / "daformer.yaml", ["model.pretrained=/path/to/mit_b5.pth"])


# -- end to end --------------------------------------------------------------------------------

def test_a_daformer_mitb0_trains_with_self_training_and_feature_distance_and_resumes(bench, tmp_path):
    """MiT-B0 + DAFormer head, AdamW with DAFormer's groups and warm-up, ClassMix self-training
    with the pseudo-label crop, rare-class sampling and FD: 2 iterations, and the same 2 cut after
    the second (last checkpoint after the first) and resumed, bit for bit."""
    cfg = tiny_config(bench, [*MIT_B0, *DAFORMER_OPT, "train.iters=2", "train.val_every=2", "train.checkpoint_every=1",
                              "model.input_norm=imagenet", "data.source.transforms={resize: [64, 32], hflip: 0.5}",
                              "self_training.enabled=true", "self_training.ignore_top=2",
                              "self_training.ignore_bottom=4", "feature_distance.enabled=true",
                              "feature_distance.thing_classes=null", "data.source.rcs.enabled=true",
                              "data.source.rcs.min_pixels=10",
                              "data.val.transforms={resize_image: [64, 32]}"])  # MiT's stage-1 sr conv needs ≥ 8×8
    full = Trainer(cfg, tmp_path / "full", progress=False)
    assert [c.key for c in full.components] == ["self_training", "feature_distance"]
    out = full.train()
    assert out["val"] is not None and out["best"] is not None
    train = [r for r in read_metrics(tmp_path / "full") if r["kind"] == "train"]
    assert len(train) == 2
    for r in train:
        assert {"seg", "st_mix", "feat_dist", "fd_cells", "pseudo_weight", "lr"} <= set(r)
        assert r["feat_dist"] > 0  # drop path and dropout: the student differs from its frozen copy
    assert train[0]["lr"] == pytest.approx(6e-5 * 1e-6)
    Trainer(cfg, tmp_path / "cut", progress=False).train(stop_at=2)  # killed after 2 steps, last.pt at 1
    resumed = Trainer(cfg, tmp_path / "cut", resume=True, progress=False)
    assert resumed.start_iter == 1
    resumed.train()
    a, b = load_checkpoint(out["last"]), load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert_same_tensors(a, b, ("segmentor", "teacher"))
    sa, sb = a["opt_g"]["state"], b["opt_g"]["state"]
    assert sa.keys() == sb.keys() and all(torch.equal(torch.as_tensor(sa[p][k]), torch.as_tensor(sb[p][k]))
                                          for p in sa for k in sa[p])
    from udaseg.engine.builders import load_segmentor
    assert load_segmentor(a, "cpu").arch == "daformer_mitb0"  # what evaluate / predict load
    assert a["feature_distance"]["origin"] == "initial"
    for k, v in a["feature_distance"]["encoder"].items():
        assert torch.equal(v, b["feature_distance"]["encoder"][k])
