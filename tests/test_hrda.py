"""HRDA: the detail-crop box, the scale fusion and the loss weighting by hand; the detail windows
and the evaluation's sliding windows on hand-made models; the config keys and shipped configs; and
a tiny MiT-B0 HRDA run with self-training that resumes exactly and is evaluated and predicted
with the config's sliding window."""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from fixtures import assert_same_tensors, tiny_benchmark, tiny_config
from udaseg.config import ConfigError, load_config
from udaseg.engine import components
from udaseg.engine.checkpoint import load_checkpoint
from udaseg.engine.inference import sliding_logits
from udaseg.engine.self_training import pixel_weighted_cross_entropy
from udaseg.engine.trainer import Trainer
from udaseg.methods.base import prediction_terms
from udaseg.methods.source_only import SourceOnly
from udaseg.models import ExtraPrediction, HRDASegmentor, SegmentorOutput, build_segmentor
from udaseg.models.hrda import crop_box, fuse_scales, slide_boxes

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
MIT_B0 = ["model.arch=daformer_mitb0", "model.multi_level=false"]
# 64×128 training crops: the 32×64 context and the 32×32 detail crop keep MiT's stage-1 map ≥ 8×8
HRDA_TINY = [*MIT_B0, "model.input_norm=imagenet", "model.hrda.enabled=true", "model.hrda.hr_crop_size=[32,32]",
             "data.source.transforms={resize: [128, 64], hflip: 0.5}",
             "data.target.transforms={resize: [128, 64], hflip: 0.5}",
             "data.val.transforms={resize_image: [128, 64]}", "eval.window=[64,64]", "eval.stride=[32,32]"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return tiny_benchmark(tmp_path_factory.mktemp("bench"))


# -- the detail crop ---------------------------------------------------------------------------

def test_crop_box_origins_are_the_references_multiples_of_8():
    """1024² input, 512² crop, divisible 8: (512 + 1) // 8 = 64 origins per axis, 0, 8, …, 504
    (get_crop_bbox never reaches 512); the box is always 512 wide and high."""
    g = torch.Generator().manual_seed(0)
    ys, xs = set(), set()
    for _ in range(2000):
        y1, y2, x1, x2 = crop_box(1024, 1024, (512, 512), 8, generator=g)
        assert (y2 - y1, x2 - x1) == (512, 512)
        ys.add(y1)
        xs.add(x1)
    assert ys == xs == set(range(0, 505, 8))
    assert crop_box(1024, 1024, (1024, 1024), 8) == (0, 1024, 0, 1024)  # the crop is the image
    g = torch.Generator().manual_seed(1)
    assert {crop_box(512, 1024, (512, 512), 8, generator=g)[0] for _ in range(50)} == {0}  # no margin in y
    torch.manual_seed(3)
    a = crop_box(64, 128, (32, 32), 8)
    torch.manual_seed(3)
    assert crop_box(64, 128, (32, 32), 8) == a  # torch's global RNG: restored on resume


def test_slide_boxes_are_mmsegs_grid():
    # 1024×2048 test image, 1024² windows, stride 512: three windows, the last flush with the end
    assert slide_boxes(1024, 2048, (1024, 1024), (512, 512)) == [(0, 1024, 0, 1024), (0, 1024, 512, 1536),
                                                                 (0, 1024, 1024, 2048)]
    # a 1024² crop in 512² detail windows at stride 256: 3 × 3
    boxes = slide_boxes(1024, 1024, (512, 512), (256, 256))
    assert len(boxes) == 9 and boxes[-1] == (512, 1024, 512, 1024)
    assert slide_boxes(30, 40, (64, 64), (32, 32)) == [(0, 30, 0, 40)]  # a window larger than the image


# -- the fusion by hand ------------------------------------------------------------------------

def _rows(values, h):
    """(1, 1, h, len(values)): every row the same, so only the columns' interpolation matters."""
    return torch.tensor(values, dtype=torch.float32).repeat(h, 1)[None, None]


def test_fusion_by_hand():
    """Context logits [4, 8] per row (2×2), fused grid 4×4. Bilinear ×2 (align_corners=False) of
    [a, b] is [a, .75a + .25b, .25a + .75b, b]."""
    lr = _rows([4.0, 8.0], 2)
    # attention 0: the upsampled context everywhere, whatever the detail says
    fused, lr_w = fuse_scales(lr, torch.zeros_like(lr), _rows([99.0, 99.0], 4), (0, 4, 2, 4))
    assert torch.equal(fused, _rows([4.0, 5.0, 7.0, 8.0], 4)) and torch.equal(lr_w, lr)
    # attention 1, detail box = the right half (fused columns 2–3, context column 1): the attention
    # is zeroed outside the box, so a = [0, 1]; (1 − a)·lr = [4, 0] → up [4, 3, 1, 0];
    # up(a) = [0, .25, .75, 1]; detail [10, 20] inserted at columns 2–3:
    # fused = [4, 3, .75·10 + 1, 20]
    fused, lr_w = fuse_scales(lr, torch.ones_like(lr), _rows([10.0, 20.0], 4), (0, 4, 2, 4))
    assert torch.equal(lr_w, _rows([4.0, 0.0], 2))
    assert torch.equal(fused, _rows([4.0, 3.0, 8.5, 20.0], 4))
    # attention 0.5, no box (inference: the detail covers the grid): .5·detail + up(.5·lr)
    fused, _ = fuse_scales(lr, torch.full_like(lr, 0.5), _rows([10.0, 20.0, 30.0, 40.0], 4))
    assert torch.equal(fused, _rows([7.0, 12.5, 18.5, 24.0], 4))
    # a class-wise attention (K = 2) and a single-channel one broadcast the same way
    lr2 = torch.cat([lr, 2 * lr], 1)
    one, _ = fuse_scales(lr2, torch.full_like(lr, 0.5), torch.zeros(1, 2, 4, 4))
    two, _ = fuse_scales(lr2, torch.full_like(lr2, 0.5), torch.zeros(1, 2, 4, 4))
    assert torch.equal(one, two)
    with pytest.raises(ValueError, match="multiples of 2"):
        fuse_scales(lr, torch.ones_like(lr), _rows([1.0], 4), (0, 4, 3, 4))


# -- the loss weighting by hand ----------------------------------------------------------------

def test_detail_loss_weighting_by_hand():
    """L = 0.9·CE(fused) + 0.1·CE(detail, labels cut to its box). K = 2: fused logits 0 → log 2;
    the detail says class 0 with margin 10 over the box, whose labels are 0 (outside: 1) →
    log(1 + e^-10). A wrong crop would read label 1 and give ≈ 10."""
    labels = torch.ones(1, 8, 8, dtype=torch.long)
    labels[:, 0:4, 4:8] = 0
    hr = torch.zeros(1, 2, 4, 4)
    hr[:, 0] = 10.0
    out = SegmentorOutput(torch.zeros(1, 2, 8, 8), None, torch.zeros(1, 1, 1, 1),
                          (ExtraPrediction("hr", hr, (0, 4, 4, 8), 0.1),))
    terms = SourceOnly({}, 2, 1, False).segmentation_terms(out, labels)
    assert set(terms) == {"seg", "seg_hr"}
    assert terms["seg"][0] == pytest.approx(0.9) and terms["seg_hr"][0] == 0.1
    assert float(terms["seg"][1]) == pytest.approx(np.log(2), rel=1e-6)
    assert float(terms["seg_hr"][1]) == pytest.approx(np.log1p(np.exp(-10)), rel=1e-3)  # float32
    total = sum(w * v for w, v in terms.values())
    assert float(total) == pytest.approx(0.9 * np.log(2) + 0.1 * np.log1p(np.exp(-10)), rel=1e-6)
    # the pseudo-label loss: the pixel weights are cut to the box too (0.5 inside, 1 outside), and
    # the mixing weight multiplies both shares
    weight = torch.ones(1, 8, 8)
    weight[:, 0:4, 4:8] = 0.5
    st = prediction_terms("st_mix", 2.0, out, labels, pixel_weighted_cross_entropy, weight)
    assert st["st_mix"][0] == pytest.approx(1.8) and st["st_mix_hr"][0] == pytest.approx(0.2)
    assert float(st["st_mix_hr"][1]) == pytest.approx(0.5 * np.log1p(np.exp(-10)), rel=1e-3)
    assert float(st["st_mix"][1]) == pytest.approx(np.log(2) * (16 * 0.5 + 48) / 64, rel=1e-6)
    # without extra predictions: the plain term, weight untouched
    plain = prediction_terms("st_mix", 2.0, out._replace(extra=()), labels, pixel_weighted_cross_entropy, weight)
    assert list(plain) == ["st_mix"] and plain["st_mix"][0] == 2.0


def test_an_hrda_model_trains_on_fused_and_detail_logits():
    """daformer_mitb0 at a 64×64 input, 32×32 detail crop: fused logits 16×16 (stride 4), detail
    logits 8×8 of a box on multiples of 8, context features; in eval mode no extra prediction."""
    torch.manual_seed(0)
    model = build_segmentor("daformer_mitb0", 5, multi_level=False,
                            hrda={"enabled": True, "hr_crop_size": [32, 32]}).train()
    out = model(torch.randn(2, 3, 64, 64))
    (e,) = out.extra
    assert out.logits.shape == (2, 5, 16, 16) and e.logits.shape == (2, 5, 8, 8) and e.weight == 0.1
    assert e.name == "hr" and all(v % 8 == 0 for v in e.box) and (e.box[1] - e.box[0], e.box[3] - e.box[2]) == (32, 32)
    assert out.features.shape == (2, 256, 1, 1)  # stage 4 of the 32×32 context
    model.eval()
    out = model(torch.randn(1, 3, 64, 64))
    assert out.logits.shape == (1, 5, 16, 16) and out.extra == ()
    assert model(torch.randn(1, 3, 60, 70)).logits.shape == (1, 5, 60, 70)  # padded, cut back
    with pytest.raises(ValueError, match="multiples of 8"):
        model.train()(torch.randn(1, 3, 60, 64))
    # both heads are "head" parameters: lr × 10, as DAFormer's key matches decode_head.*
    groups = {g["name"]: g for g in model.param_groups(1.0)}
    att = {id(p) for p in model.decode_head.scale_attention.parameters()}
    assert att <= {id(p) for p in groups["head"]["params"]} and groups["head"]["lr_mult"] == 10.0


# -- sliding windows on hand-made models -------------------------------------------------------

class WindowMean(nn.Module):
    """Logits (stride 1) = the mean of the input window, everywhere in it."""

    def forward(self, x):
        return SegmentorOutput(x[:, :1].mean((2, 3), keepdim=True).expand(-1, 1, *x.shape[-2:]), None, x)


def test_sliding_windows_average_overlaps_and_equal_the_whole_image_when_one_covers_it():
    x = torch.arange(6.0).repeat(2, 1)[None, None].repeat(1, 3, 1, 1)  # columns 0..5
    # windows 2×4 at stride 2: columns 0–3 (mean 1.5) and 2–5 (mean 3.5); columns 2–3 see both
    got = sliding_logits(WindowMean(), x, (2, 4), (2, 2))
    assert torch.equal(got[0, 0, 0], torch.tensor([1.5, 1.5, 2.5, 2.5, 3.5, 3.5]))
    model = nn.Conv2d(3, 4, 3, padding=1)
    plain = nn.Module()
    plain.forward = lambda t: SegmentorOutput(model(t), None, t)
    y = torch.randn(1, 3, 8, 12)
    assert torch.equal(sliding_logits(plain, y, (8, 12)), plain(y).logits)
    assert torch.equal(sliding_logits(plain, y, (16, 16), (4, 4)), plain(y).logits)


class _Toy(nn.Module):
    """A stand-in single-scale segmentor: 'encoder' = 4×4 average pooling (one stage, stride 4),
    'head' = the window mean of its features, so the detail windows are easy to follow."""

    num_classes, bn_mode, feature_stage, feature_channels, output_stride = 1, "trainable", 1, 3, 4

    def __init__(self):
        super().__init__()
        self.backbone = _Pool()
        self.decode_head = _MeanHead()


class _Pool(nn.Module):
    def forward(self, x):
        return [F.avg_pool2d(x, 4)]


class _MeanHead(nn.Module):
    num_classes = 1

    def forward(self, feats):
        f = feats[0][:, :1]
        return f.mean((2, 3), keepdim=True).expand_as(f).clone()


def test_detail_windows_are_averaged_as_the_reference_does():
    """A 16×32 input whose column c holds c; 16² detail windows at stride 8: columns 0–15, 8–23,
    16–31 (means 7.5, 15.5, 23.5). With a fixed attention of 1 the fused logits are the detail
    logits: 4×8 cells, cells 0–1 from window 1, 2–3 from windows 1–2, 4–5 from 2–3, 6–7 from 3."""
    model = HRDASegmentor(_Toy(), None, hr_crop_hw=(16, 16), fixed_attention=1.0).eval()
    x = torch.arange(32.0).repeat(16, 1)[None, None].repeat(1, 3, 1, 1)
    got = model(x).logits
    want = torch.tensor([7.5, 7.5, 11.5, 11.5, 19.5, 19.5, 23.5, 23.5]).repeat(4, 1)[None, None]
    assert torch.equal(got, want)
    # without overlap: three windows at stride 16 → two of them (0–15, 16–31)
    model.hr_slide_overlapping = False
    assert torch.equal(model(x).logits[0, 0, 0], torch.tensor([7.5] * 4 + [23.5] * 4))
    # no slide: one detail prediction of the whole input (mean 15.5)
    model.hr_slide_inference = False
    assert torch.equal(model(x).logits, torch.full((1, 1, 4, 8), 15.5))
    # fixed attention 0: the upsampled context alone (the context = x at 0.5: mean 15.5 too)
    ctx = HRDASegmentor(_Toy(), None, hr_crop_hw=(16, 16), fixed_attention=0.0).eval()
    assert torch.equal(ctx(x).logits, torch.full((1, 1, 4, 8), 15.5))


class _PoolHead(nn.Module):
    num_classes = 1

    def forward(self, feats):
        return feats[0][:, :1].clone()


def test_the_detail_box_lands_where_it_was_cut():
    """Train mode, 16×32 input whose column c holds c, detail box x 8–23 (fused cells 2–5, context
    cells 1–2) and a fixed attention of 1, 'logits' = the 4×4-pooled input: fused cell j of the
    box's interior (3, 4) is the detail's 4j + 1.5; a box one cell off would give 4j − 2.5."""
    toy = _Toy()
    toy.decode_head = _PoolHead()
    model = HRDASegmentor(toy, None, hr_crop_hw=(16, 16), fixed_attention=1.0).train()
    x = torch.arange(32.0).repeat(16, 1)[None, None].repeat(1, 3, 1, 1)
    out = model.forward_train(x, box=(0, 16, 8, 24))
    (e,) = out.extra
    assert e.box == (0, 16, 8, 24) and torch.equal(e.logits[0, 0, 0], torch.tensor([9.5, 13.5, 17.5, 21.5]))
    assert torch.equal(out.logits[0, 0, :, 3:5], torch.tensor([[13.5, 17.5]] * 4))
    # outside the box and away from it, the upsampled context alone: context cell 0 holds the mean of
    # columns 0–7 (x at 0.5, pooled 4×4) = 3.5, fused cell 0 = 3.5
    assert torch.equal(out.logits[0, 0, :, 0], torch.full((4,), 3.5))


def test_one_detail_window_over_the_input_is_the_whole_input():
    torch.manual_seed(0)
    model = build_segmentor("daformer_mitb0", 3, multi_level=False,
                            hrda={"enabled": True, "hr_crop_size": [64, 64]}).eval()
    x = torch.randn(1, 3, 64, 64)
    slid = model(x).logits
    model.hr_slide_inference = False
    assert torch.allclose(slid, model(x).logits, atol=1e-6, rtol=0)


# -- config ------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides,message", [
    (["model.hrda.enabled=true"], r"'model.hrda.enabled' is true, but deeplabv2_resnet101 has no DAFormer head"),
    (["model.arch=segformer_mitb0", "model.multi_level=false", "model.bn_mode=trainable", "model.hrda.enabled=true"],
     "'model.hrda.enabled' is true, but segformer_mitb0"),
    ([*MIT_B0, "model.bn_mode=trainable", "model.hrda.enabled=true", "model.hrda.hr_crop_size=[500,512]"],
     r"'model.hrda.hr_crop_size' must be two positive multiples of 8"),
    ([*MIT_B0, "model.bn_mode=trainable", "model.hrda.enabled=true", "model.hrda.crop_coord_divisible=4"],
     r"'model.hrda.crop_coord_divisible' must be a multiple of 8"),
    ([*MIT_B0, "model.bn_mode=trainable", "model.hrda.enabled=true", "model.hrda.scales=[1.0,0.3]"],
     r"'model.hrda.scales': the context scale 0.3 must be 1/n"),
    ([*MIT_B0, "model.bn_mode=trainable", "model.hrda.enabled=true", "model.hrda.scales=[0.5,0.25]"],
     r"'model.hrda.scales' must be \[1, s\]"),
    ([*MIT_B0, "model.bn_mode=trainable", "model.hrda.enabled=true", "model.hrda.lr_loss_weight=0.95"],
     "'model.hrda.hr_loss_weight' \\+ 'model.hrda.lr_loss_weight' must be at most 1"),
    ([*MIT_B0, "model.bn_mode=trainable", "model.hrda.enabled=true",
      "data.source.transforms={resize: [1000, 500], crop: [1020, 1020]}"],
     r"'data.source.transforms' gives 1020x1020 training images, but HRDA needs sides that are multiples of 8"),
    ([*MIT_B0, "model.bn_mode=trainable", "model.hrda.enabled=true", "data.target.transforms={crop: [256, 256]}"],
     r"'data.target.transforms' gives 256x256 .* at least model.hrda.hr_crop_size 512x512"),
    (["model.hrda.hr_loss_weight=1.5"], r"'model.hrda.hr_loss_weight' must be in \[0, 1\], got 1.5"),
    (["model.hrda.hr_crop_size=[512]"], "'model.hrda.hr_crop_size' must be a list of 2 numbers"),
    (["model.hrda.hr_crop_size=[512.5,512]"], "'model.hrda.hr_crop_size' must be a list of integers"),
    (["model.hrda.fixed_attention=2"], r"'model.hrda.fixed_attention' must be in \[0, 1\], got 2.0"),
    (["eval.stride=[512,512]"], "'eval.stride' is set, but eval.window is null"),
    (["eval.window=[0,512]"], r"'eval.window\[0\]' must be at least 1, got 0"),
    (["eval.window=512"], "'eval.window' must be a list"),
])
def test_hrda_and_window_keys_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_new_keys_default_off_and_change_no_existing_model():
    cfg = load_config(CONFIGS / "gta5_cityscapes" / "daformer.yaml")
    assert cfg["model"]["hrda"]["enabled"] is False and (cfg["eval"]["window"], cfg["eval"]["stride"]) == (None, None)
    torch.manual_seed(0)
    a = build_segmentor("daformer_mitb0", 19, multi_level=False, hrda=load_config(None)["model"]["hrda"])
    torch.manual_seed(0)
    b = build_segmentor("daformer_mitb0", 19, multi_level=False)
    assert type(a) is type(b) and a.state_dict().keys() == b.state_dict().keys()
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    x = torch.randn(1, 3, 32, 32)
    out = b.eval()(x)
    assert out.extra == () and torch.equal(a.eval()(x).logits, out.logits)


@pytest.mark.parametrize("folder,resize,seed,classes", [
    ("gta5_cityscapes", [2560, 1440], 1, 19),
    ("synthia_cityscapes", [2560, 1520], 0, 16),
])
def test_hrda_configs_are_hrdas_recipe(folder, resize, seed, classes):
    for name, mic in (("hrda.yaml", False), ("mic_hrda.yaml", True)):
        cfg = load_config(CONFIGS / folder / name)
        components.check_run_config(cfg)
        m, h, st, data = cfg["model"], cfg["model"]["hrda"], cfg["self_training"], cfg["data"]
        assert (m["arch"], m["pretrained"], m["input_norm"], m["num_classes"]) == ("daformer_mitb5", None, "imagenet",
                                                                                  classes)
        assert h == {"enabled": True, "scales": [1.0, 0.5], "hr_crop_size": [512, 512], "crop_coord_divisible": 8,
                     "hr_loss_weight": 0.1, "lr_loss_weight": 0.0, "attention_classwise": True,
                     "attention_embed_dim": 256, "fixed_attention": None, "hr_slide_inference": True,
                     "hr_slide_overlapping": True}
        assert data["source"]["transforms"] == {"resize": resize, "crop": [1024, 1024], "cat_max_ratio": 0.75,
                                                "hflip": 0.5}  # HRDA's source RandomCrop; its target crop has none
        assert data["target"]["transforms"] == {"resize": [2048, 1024], "crop": [1024, 1024], "hflip": 0.5}
        assert data["val"]["transforms"] == {"resize_image": [2048, 1024]}
        assert data["source"]["rcs"] == {"enabled": True, "temperature": 0.01, "min_pixels": 3000,
                                         "min_crop_ratio": 2.0}
        assert (cfg["eval"]["window"], cfg["eval"]["stride"]) == ([1024, 1024], [512, 512])
        assert (st["enabled"], st["alpha"], st["tau"], st["ignore_top"], st["ignore_bottom"]) == (
            True, 0.999, 0.968, 30, 240)
        assert st["mic"] == ({"enabled": True, "block_size": 64, "ratio": 0.7, "weight": 1.0} if mic else
                             {"enabled": False, "block_size": 64, "ratio": 0.7, "weight": 1.0})
        assert cfg["feature_distance"]["enabled"] and cfg["train"]["lr"] == 6e-5 and cfg["train"]["iters"] == 40000
        assert cfg["seed"] == (2 if mic and folder == "gta5_cityscapes" else seed)
        load_config(CONFIGS / folder / name, ["model.pretrained=/path/to/mit_b5.pth"])


# -- end to end --------------------------------------------------------------------------------

def test_a_tiny_hrda_run_trains_resumes_and_is_evaluated_and_predicted_with_its_window(bench, tmp_path, monkeypatch):
    """MiT-B0 HRDA with ClassMix self-training, MIC and FD: 2 iterations; the same cut after the
    second (last.pt at 1) and resumed, bit for bit; the teacher labels through the multi-resolution
    inference (detail windows); evaluate and predict use eval.window and agree."""
    from udaseg.apps.predict import predict_images
    from udaseg.engine.eval_checkpoints import evaluate_checkpoints
    from udaseg.engine.run_logger import read_metrics

    cfg = tiny_config(bench, [*HRDA_TINY, "train.iters=2", "train.val_every=2", "train.checkpoint_every=1",
                              "train.optimizer=adamw", "train.lr=6e-5", "train.weight_decay=0.01",
                              "self_training.enabled=true", "self_training.ignore_top=2",
                              "self_training.mic.enabled=true", "self_training.mic.block_size=16",
                              "feature_distance.enabled=true", "feature_distance.thing_classes=null"])
    windows = []
    real = HRDASegmentor.detail_logits
    monkeypatch.setattr(HRDASegmentor, "detail_logits", lambda self, x: windows.append(x.shape) or real(self, x))
    full = Trainer(cfg, tmp_path / "full", progress=False)
    assert isinstance(full.model, HRDASegmentor)
    out = full.train()
    # per step the teacher's pseudo-labels (batch 1, the 64×128 target crop), then 2 val images
    # in 64×64 windows (3 each: eval.window/stride)
    assert windows == [(1, 3, 64, 128)] * 2 + [(1, 3, 64, 64)] * 6
    train = [r for r in read_metrics(tmp_path / "full") if r["kind"] == "train"]
    assert len(train) == 2
    for r in train:
        assert {"seg", "seg_hr", "st_mix", "st_mix_hr", "st_mic", "st_mic_hr", "feat_dist"} <= set(r)
    Trainer(cfg, tmp_path / "cut", progress=False).train(stop_at=2)
    resumed = Trainer(cfg, tmp_path / "cut", resume=True, progress=False)
    assert resumed.start_iter == 1
    resumed.train()
    a, b = load_checkpoint(out["last"]), load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert_same_tensors(a, b, ("segmentor", "teacher"))
    assert any(k.startswith("decode_head.scale_attention.") for k in a["segmentor"])
    # evaluate (the config's window) and predict (the same) give the same label maps
    evals = evaluate_checkpoints([out["last"]], out_dir=tmp_path / "eval", official_check=True)
    assert evals[0].settings["window"] == [64, 64] and evals[0].settings["stride"] == [32, 32]
    evaluated = sorted((tmp_path / "eval" / "predictions_labelIds").rglob("*_labelIds.png"))
    written, _ = predict_images(out["last"], [bench / "cs" / "leftImg8bit" / "val"], tmp_path / "pred", batch_size=1)
    predicted = {p.name.replace("_pred_", "_gtFine_"): p for p in (tmp_path / "pred").rglob("*_pred_labelIds.png")}
    assert len(evaluated) == len(written) == 2 and sorted(predicted) == [p.name for p in evaluated]
    for p in evaluated:
        assert np.array_equal(np.asarray(Image.open(p)), np.asarray(Image.open(predicted[p.name])))
    from udaseg.engine.builders import load_segmentor
    assert isinstance(load_segmentor(a, "cpu"), HRDASegmentor)


def test_feature_distance_sees_the_context_features():
    """The frozen encoder gets the context input (x at 0.5), as the student's features are."""
    import copy

    from udaseg.engine.feature_distance import encoder_features

    torch.manual_seed(0)
    model = build_segmentor("daformer_mitb0", 3, multi_level=False,
                            hrda={"enabled": True, "hr_crop_size": [32, 32]}).eval()
    x = torch.randn(1, 3, 64, 64)
    frozen = copy.deepcopy(model.backbone)
    assert torch.equal(encoder_features(model, frozen, x), model(x).features)


def test_the_memory_benchmark_counts_on_meta_what_the_cpu_saves():
    """benchmarks/hrda_memory.py counts the paper's size on the meta device; at a small size the
    same count on real CPU tensors agrees within 1 % (the meta kernels save a few small extras)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "hrda_memory.py"
    spec = importlib.util.spec_from_file_location("hrda_memory", path)
    bench_mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_mod)
    hrda = {"enabled": True, "hr_crop_size": [64, 64]}
    meta = bench_mod.measure("daformer_mitb0", 19, 128, 1, "meta", hrda)["activations"]
    cpu = bench_mod.measure("daformer_mitb0", 19, 128, 1, "cpu", hrda)["activations"]
    assert abs(meta - cpu) / cpu < 0.01
    single = bench_mod.measure("daformer_mitb0", 19, 64, 1, "meta", None)["activations"]
    assert 2 * single < meta < 2.5 * single  # two 64² passes, the attention head and the 128² loss
