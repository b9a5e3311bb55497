"""The paper's method (fgd_ent; and FADA) on a transformer segmentor: stride-4 logits, no
auxiliary head, features of ``model.feature_stage`` at stride 4·2^(stage−1). The discriminator
gets 2K channels at the feature size and its soft labels are the class probabilities area-pooled
to that size (``losses.class_probabilities``); plus the shipped fgd_ent_daformer configs."""
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fixtures import tiny_benchmark, tiny_config
from udaseg import losses as Lo
from udaseg.config import load_config
from udaseg.engine import components
from udaseg.engine.run_logger import read_metrics
from udaseg.engine.trainer import Trainer
from udaseg.methods import build_method
from udaseg.methods.base import Pass
from udaseg.models import FineGrainedDiscriminator, build_segmentor

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
MIT_B0 = ["model.arch=daformer_mitb0", "model.multi_level=false"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return tiny_benchmark(tmp_path_factory.mktemp("bench"))


def test_soft_labels_are_area_pooled_probabilities_by_hand():
    """2 classes, a 2×2 logit map into one D cell, T = 1.8, clip 0.9. Pixel p(class 0):
    l0 − l1 = 1.8·ln 19 → 0.95, 0 → 0.5, 0 → 0.5, 1.8·ln 3 → 0.75. The cell's label is their mean,
    (0.95 + 0.5 + 0.5 + 0.75) / 4 = 0.675 for class 0 and 0.325 for class 1; clipping comes after
    pooling (clip-then-pool would give (0.9 + 0.5 + 0.5 + 0.75) / 4 = 0.6625)."""
    d = torch.tensor([[1.8 * math.log(19), 0.0], [0.0, 1.8 * math.log(3)]])
    logits = torch.stack([d, torch.zeros(2, 2)]).unsqueeze(0)  # (1, 2, 2, 2)
    a = Lo.class_probabilities(logits, 1.8, 0.9, size=(1, 1))
    assert a.shape == (1, 2, 1, 1)
    assert a[0, :, 0, 0].tolist() == pytest.approx([0.675, 0.325], abs=1e-6)
    # same size: unchanged; larger: the logits are upsampled bilinearly as before
    assert torch.equal(Lo.class_probabilities(logits, 1.8, 0.9, size=(2, 2)), Lo.class_probabilities(logits, 1.8, 0.9))
    up = Lo.class_probabilities(logits, 1.8, None, size=(3, 3))
    assert up[0, 0, 1, 1].item() == pytest.approx(1 / (1 + math.exp(-(1.8 * math.log(19) + 1.8 * math.log(3)) / 4 / 1.8)))


@pytest.mark.parametrize("name", ["fgd_ent", "fada"])
def test_method_terms_on_a_mitb0_at_the_feature_size(name):
    torch.manual_seed(0)
    model = build_segmentor("daformer_mitb0", 3, multi_level=False, feature_stage=4).eval()
    out = model(torch.randn(1, 3, 64, 128))
    assert out.logits.shape == (1, 3, 16, 32) and out.features.shape == (1, 256, 2, 4)  # strides 4 and 32
    m = build_method({"name": name}, 3, model.feature_channels, multi_level=False)
    discs = m.build_discriminators()
    d = discs["d_fine"]
    assert isinstance(d, FineGrainedDiscriminator) and d.in_channels == 256 and d.net[-1].out_channels == 6
    p = Pass(out, None, (64, 128))
    d_out = m._d_logits(d, p)
    assert d_out.shape == (1, 6, 2, 4)  # 2K at the feature size
    a = m._probs(p, d_out.shape[-2:])
    want = F.avg_pool2d(torch.softmax(out.logits.detach() / 1.8, 1), 8).clamp(max=0.9)  # each 8×8 logit block
    assert torch.allclose(a, want, atol=1e-6)
    terms = m.target_losses(p, discs)
    assert set(terms) == ({"adv_fine", "ent"} if name == "fgd_ent" else {"adv_fine"})
    assert terms["adv_fine"][1].item() == pytest.approx(
        Lo.fine_grained_adversarial_loss(d_out, a).item(), rel=1e-6)


def test_one_fgd_ent_training_step_on_a_daformer_mitb0(bench, tmp_path):
    cfg = tiny_config(bench, [*MIT_B0, "model.bn_mode=trainable", "method.name=fgd_ent", "train.iters=1",
                              "train.val_every=0", "data.val.transforms={resize_image: [64, 32]}"])
    t = Trainer(cfg, tmp_path, progress=False)
    d = t.discs["d_fine"]
    assert t.model.feature_stage == 4 and d.in_channels == t.model.feature_channels == 256
    seen = []
    d.register_forward_hook(lambda mod, inp, o: seen.append((tuple(inp[0].shape), tuple(o.shape))))
    before = [q.detach().clone() for q in d.parameters()]
    t.train()
    assert seen and all(i[1:] == (256, 1, 2) and o[1:] == (2 * 19, 1, 2) for i, o in seen)  # 32×64 / 32
    assert any(not torch.equal(a, b) for a, b in zip(before, d.parameters()))  # D took its step
    rows = [r for r in read_metrics(tmp_path) if r["kind"] == "train"]
    assert len(rows) == 1 and all(math.isfinite(rows[0][k]) for k in ("seg", "adv_fine", "ent"))


@pytest.mark.parametrize("folder,k", [("gta5_cityscapes", 19), ("synthia_cityscapes", 16)])
def test_fgd_ent_daformer_configs_are_daformer_plus_the_papers_terms(folder, k):
    cfg = load_config(CONFIGS / folder / "fgd_ent_daformer.yaml")
    components.check_run_config(cfg)
    base = load_config(CONFIGS / folder / "daformer.yaml")
    paper = load_config(CONFIGS / folder / "fgd_ent.yaml")
    for section in ("train", "self_training", "feature_distance", "data"):
        assert cfg[section] == base[section], section
    assert {k2: v for k2, v in cfg["model"].items() if k2 != "feature_stage"} == \
           {k2: v for k2, v in base["model"].items() if k2 != "feature_stage"}
    assert cfg["model"]["feature_stage"] == 4
    assert cfg["method"] == {**paper["method"], "lambda_seg_aux": cfg["method"]["lambda_seg_aux"]}
    assert (cfg["method"]["name"], cfg["method"]["lambda_adv"], cfg["method"]["lambda_ent"]) == ("fgd_ent", 0.001, 0.001)
    assert [c.key for c in components.enabled(cfg)] == ["self_training", "feature_distance"]
    load_config(CONFIGS / folder / "fgd_ent_daformer.yaml", ["model.pretrained=/path/to/mit_b5.pth"])
