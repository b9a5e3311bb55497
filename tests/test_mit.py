"""The transformer path: MiT B0–B5, the DAFormer / SegFormer heads, strict MiT weight loading.

Parameter counts are derived by hand here (one formula per layer, independent of the modules) and
also compared with the published rounded figures of the SegFormer paper (arXiv 2105.15203):
Table 1(a) encoder / decoder params (M), Table 1(b) MiT-B2 + MLP decoder of width C (ADE20K, 150
classes), Table 2 whole-model params. The paper's figures are within 0.1 M of the exact counts
(some look truncated rather than rounded, e.g. B1 13,151,424 → "13.1"; B0's "3.4" is 0.08 M above
3,319,392), so the comparison tolerance is 0.1 M. The ImageNet "Params" column that HuggingFace's
docs show for MiT (3.7 … 82.0) is PVTv2's (MLP ratios 8, 8, 4, 4) and is not used.
B5 is built once for real (forward on 64×64); other B5 checks run on the meta device.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from udaseg.models import (
    MIT_CONFIGS,
    DAFormerHead,
    SegFormerHead,
    TransformerSegmentor,
    available_segmentors,
    available_transformer_segmentors,
    build_mit,
    build_segmentor,
    load_mit_pretrained,
)
from udaseg.models.mit import DropPath, EfficientSelfAttention


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# --------------------------------------------------------------------------- counts by hand


def block_params(c: int, sr: int, mlp_ratio: int = 4) -> int:
    h = mlp_ratio * c
    n = 2 * c  # norm1
    n += c * c + c  # attn.q
    n += 2 * c * c + 2 * c  # attn.kv
    n += c * c + c  # attn.proj
    if sr > 1:
        n += c * c * sr * sr + c  # attn.sr (k = stride = sr)
        n += 2 * c  # attn.norm
    n += 2 * c  # norm2
    n += c * h + h  # mlp.fc1
    n += 9 * h + h  # mlp.dwconv.dwconv (3×3 depthwise, bias)
    n += h * c + c  # mlp.fc2
    return n


def patch_embed_params(cin: int, c: int, k: int) -> int:
    return k * k * cin * c + c + 2 * c  # proj (bias) + LayerNorm


def encoder_params(dims, depths, srs=(8, 4, 2, 1)) -> int:
    total, cin = 0, 3
    for i, (c, d, sr) in enumerate(zip(dims, depths, srs)):
        total += patch_embed_params(cin, c, 7 if i == 0 else 3) + d * block_params(c, sr) + 2 * c  # + stage norm
        cin = c
    return total


def segformer_head_params(dims, e: int, k: int) -> int:
    return sum(c * e + e for c in dims) + (len(dims) * e * e + 2 * e) + (e * k + k)  # linear_c, fuse+BN, pred


def daformer_head_params(dims, k: int, e: int = 256, ch: int = 256) -> int:
    cat = len(dims) * e
    embed = sum(c * e + e for c in dims)
    branch1 = cat * ch + 2 * ch  # 1×1 conv (no bias) + BN
    sep = (9 * cat + 2 * cat) + (cat * ch + 2 * ch)  # depthwise 3×3 + BN, pointwise 1×1 + BN
    bottleneck = 9 * 4 * ch * ch + 2 * ch
    return embed + branch1 + 3 * sep + bottleneck + (ch * k + k)


EXACT = {"mit_b0": 3_319_392, "mit_b1": 13_151_424, "mit_b2": 24_196_288,
         "mit_b3": 44_072_128, "mit_b4": 60_842_688, "mit_b5": 81_443_008}
PAPER_ENCODER_M = {"mit_b0": 3.4, "mit_b1": 13.1, "mit_b2": 24.2, "mit_b3": 44.0, "mit_b4": 60.8, "mit_b5": 81.4}
PAPER_DECODER_M = {"mit_b0": 0.4, "mit_b1": 0.6, "mit_b2": 3.3, "mit_b3": 3.3, "mit_b4": 3.3, "mit_b5": 3.3}


def meta(fn, *args, **kwargs):
    with torch.device("meta"):
        return fn(*args, **kwargs)


@pytest.mark.parametrize("name", list(MIT_CONFIGS))
def test_mit_parameter_counts(name):
    cfg = MIT_CONFIGS[name]
    enc = meta(build_mit, name)
    assert encoder_params(cfg.embed_dims, cfg.depths) == EXACT[name] == n_params(enc)
    for i, (c, d, sr) in enumerate(zip(cfg.embed_dims, cfg.depths, cfg.sr_ratios), start=1):
        assert n_params(getattr(enc, f"block{i}")) == d * block_params(c, sr)
    assert abs(EXACT[name] / 1e6 - PAPER_ENCODER_M[name]) < 0.1 + 1e-9  # SegFormer Table 1(a)
    # the decoder column of Table 1(a): SegFormer head (C = 256 for B0/B1, 768 else), ADE20K K = 150
    head = meta(SegFormerHead, cfg.embed_dims, 150, embed_dim=256 if name in ("mit_b0", "mit_b1") else 768)
    assert n_params(head) == segformer_head_params(cfg.embed_dims, head.linear_fuse.conv.out_channels, 150)
    assert abs(n_params(head) / 1e6 - PAPER_DECODER_M[name]) < 0.1


def test_head_parameter_counts():
    b5 = MIT_CONFIGS["mit_b5"].embed_dims
    daformer = meta(DAFormerHead, b5, 19)
    assert n_params(daformer) == daformer_head_params(b5, 19) == 3_712_275
    assert n_params(daformer.embed_layers) == 263_168 and n_params(daformer.fuse_layer.bottleneck) == 2_359_808
    assert [n_params(m) for m in daformer.fuse_layer.aspp_modules] == [262_656, 273_920, 273_920, 273_920]
    assert n_params(meta(SegFormerHead, b5, 19)) == segformer_head_params(b5, 768, 19) == 3_164_947
    # whole models, ADE20K (K = 150): Table 2 "SegFormer-B4 64.1", "SegFormer-B5 84.7", "B0 3.8"
    for name, paper in (("mit_b0", 3.8), ("mit_b4", 64.1), ("mit_b5", 84.7)):
        e = 256 if name == "mit_b0" else 768
        total = EXACT[name] + segformer_head_params(MIT_CONFIGS[name].embed_dims, e, 150)
        assert abs(total / 1e6 - paper) < 0.1
    # Table 1(b): MiT-B2 with decoder width C -> params (M)
    b2 = MIT_CONFIGS["mit_b2"].embed_dims
    for c, paper in ((256, 24.7), (512, 25.8), (768, 27.5), (1024, 29.6), (2048, 43.4)):
        total = EXACT["mit_b2"] + n_params(meta(SegFormerHead, b2, 150, embed_dim=c))
        assert total == EXACT["mit_b2"] + segformer_head_params(b2, c, 150)
        assert abs(total / 1e6 - paper) < 0.1


def test_archs_build_with_reference_heads():
    assert available_transformer_segmentors() == [f"{h}_mitb{i}" for h in ("daformer", "segformer") for i in range(6)]
    assert available_segmentors()[-12:] == available_transformer_segmentors()  # all archs, DeepLab-V2 first
    assert len(set(available_segmentors())) == len(available_segmentors())
    for i in range(6):
        d = meta(build_segmentor, f"daformer_mitb{i}", 19)
        s = meta(build_segmentor, f"segformer_mitb{i}", 19)
        assert d.backbone.arch == s.backbone.arch == f"mit_b{i}" and d.arch == f"daformer_mitb{i}"
        assert n_params(d.decode_head) == daformer_head_params(d.backbone.embed_dims, 19)
        assert s.decode_head.linear_fuse.conv.out_channels == (256 if i < 2 else 768)
    with pytest.raises(ValueError) as e:
        build_segmentor("daformer_mitb6", 19)
    assert "daformer_mitb5" in str(e.value) and "deeplabv2_resnet101" in str(e.value)


# --------------------------------------------------------------------------- key names


def nvlabs_keys(name: str) -> list[str]:
    """The original NVlabs mit_bX.pth keys without head.* (TRANSFORMERS.md §5a)."""
    cfg, keys = MIT_CONFIGS[name], []
    for i, (d, sr) in enumerate(zip(cfg.depths, cfg.sr_ratios), start=1):
        keys += [f"patch_embed{i}.{m}.{p}" for m in ("proj", "norm") for p in ("weight", "bias")]
        for j in range(d):
            mods = ["norm1", "attn.q", "attn.kv", "attn.proj"] + (["attn.sr", "attn.norm"] if sr > 1 else [])
            mods += ["norm2", "mlp.fc1", "mlp.dwconv.dwconv", "mlp.fc2"]
            keys += [f"block{i}.{j}.{m}.{p}" for m in mods for p in ("weight", "bias")]
        keys += [f"norm{i}.weight", f"norm{i}.bias"]
    return keys


@pytest.mark.parametrize("name", ["mit_b0", "mit_b5"])
def test_state_dict_keys_are_the_nvlabs_keys(name):
    assert list(meta(build_mit, name).state_dict()) == nvlabs_keys(name)


def test_head_keys_follow_mmseg_names():
    keys = set(meta(build_segmentor, "daformer_mitb0", 19).state_dict())
    for k in ("decode_head.embed_layers.3.proj.weight", "decode_head.fuse_layer.aspp_modules.0.conv.weight",
              "decode_head.fuse_layer.aspp_modules.0.bn.running_var",
              "decode_head.fuse_layer.aspp_modules.3.depthwise_conv.conv.weight",
              "decode_head.fuse_layer.aspp_modules.3.pointwise_conv.bn.weight",
              "decode_head.fuse_layer.bottleneck.conv.weight", "decode_head.conv_seg.bias"):
        assert k in keys
    assert "decode_head.fuse_layer.aspp_modules.0.conv.bias" not in keys  # ConvModule: no bias with BN
    keys = set(meta(build_segmentor, "segformer_mitb0", 19).state_dict())
    assert {"decode_head.linear_c.0.proj.weight", "decode_head.linear_fuse.conv.weight",
            "decode_head.linear_fuse.bn.weight", "decode_head.linear_pred.weight"} <= keys


# --------------------------------------------------------------------------- shapes, modes


@pytest.fixture(scope="module")
def b0():
    torch.manual_seed(0)
    return build_segmentor("daformer_mitb0", 19).eval()


def test_output_shapes_and_strides(b0):
    with torch.no_grad():
        out = b0(torch.randn(2, 3, 64, 64))
        feats = b0.backbone(torch.randn(1, 3, 65, 97))
    assert out.logits.shape == (2, 19, 16, 16) and out.aux_logits is None
    assert out.features.shape == (2, 256, 2, 2) and b0.feature_channels == 256
    assert [tuple(f.shape[1:]) for f in feats] == [(32, 17, 25), (64, 9, 13), (160, 5, 7), (256, 3, 4)]
    assert b0.output_stride == 4 and b0.multi_level is False and b0.bn_mode == "trainable"
    seg = build_segmentor("segformer_mitb0", 7, feature_stage=1).eval()
    with torch.no_grad():
        out = seg(torch.randn(1, 3, 65, 97))
    assert out.logits.shape == (1, 7, 17, 25) and out.features.shape == (1, 32, 17, 25)
    assert seg.feature_channels == 32


def test_b5_builds_and_runs():
    torch.manual_seed(0)
    model = build_segmentor("daformer_mitb5", 19).eval()
    assert n_params(model.backbone) == EXACT["mit_b5"] and n_params(model.decode_head) == 3_712_275
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert out.logits.shape == (1, 19, 16, 16) and out.features.shape == (1, 512, 2, 2)
    assert torch.isfinite(out.logits).all()


def test_backward_reaches_every_parameter():
    torch.manual_seed(0)
    model = build_segmentor("segformer_mitb0", 5).train()
    out = model(torch.randn(2, 3, 64, 64))
    (out.logits.square().mean() + out.features.mean()).backward()
    assert all(p.grad is not None for p in model.parameters())  # no unused parameter (DDP-safe)


def test_eval_is_deterministic_and_drop_path_uses_torch_rng(b0):
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(b0(x).logits, b0(x).logits)
    dp = [m for m in b0.backbone.modules() if isinstance(m, DropPath)]
    # float32 linspace(0, 0.1, 8) as the reference; block 0 (rate 0) gets nn.Identity
    assert len(dp) == 7 and math.isclose(dp[-1].p, 0.1, rel_tol=1e-6)
    model = build_segmentor("segformer_mitb0", 5).train()
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.Dropout2d)):
            m.eval()  # isolate drop path
    with torch.no_grad():
        torch.manual_seed(3)
        a = model(x).logits
        torch.manual_seed(3)
        b = model(x).logits
        c = model(x).logits
    assert torch.equal(a, b) and not torch.equal(a, c)
    d = DropPath(0.5).train()
    y = d(torch.ones(4000, 3, 2))
    assert set(y.unique().tolist()) == {0.0, 2.0} and 0.45 < (y[:, 0, 0] == 0).float().mean() < 0.55
    assert torch.equal(d.eval()(torch.ones(3, 2)), torch.ones(3, 2))


def test_bn_modes_and_multi_level():
    with pytest.raises(ValueError, match="LayerNorm"):
        build_segmentor("daformer_mitb0", 19, bn_mode="frozen")
    with pytest.raises(ValueError, match="multi_level=false"):
        build_segmentor("daformer_mitb0", 19, multi_level=True)
    sync = build_segmentor("daformer_mitb0", 19, False, "sync")
    assert sync.bn_mode == "sync"
    assert any(isinstance(m, nn.SyncBatchNorm) for m in sync.decode_head.modules())
    assert not any(type(m) is nn.BatchNorm2d for m in sync.modules())
    with pytest.raises(ValueError, match="feature_stage"):
        build_segmentor("daformer_mitb0", 19, feature_stage=5)
    with pytest.raises(ValueError, match="transformer archs only"):
        build_segmentor("deeplabv2_resnet18", 19, feature_stage=4)


def test_init_matches_reference():
    torch.manual_seed(0)
    m = build_segmentor("daformer_mitb0", 19)
    enc = m.backbone
    assert enc.patch_embed1.norm.eps == 1e-5 and enc.block1[0].attn.norm.eps == 1e-5
    assert enc.block1[0].norm1.eps == enc.block4[1].norm2.eps == enc.norm4.eps == 1e-6
    assert enc.block4[0].attn.sr is None
    for mod in enc.modules():
        if isinstance(mod, nn.LayerNorm):
            assert torch.equal(mod.weight, torch.ones_like(mod.weight)) and not mod.bias.any()
        elif isinstance(mod, (nn.Linear, nn.Conv2d)):
            assert not mod.bias.any()
    w = enc.block3[0].mlp.fc1.weight  # 640×160
    assert abs(w.std().item() - 0.02) < 0.001 and w.abs().max() <= 2
    conv = enc.block1[0].attn.sr  # 32→32, k 8: fan_out 2048
    assert abs(conv.weight.std().item() - math.sqrt(2 / 2048)) < 0.003
    dw = enc.block2[0].mlp.dwconv.dwconv  # groups = channels: fan_out = 9
    assert abs(dw.weight.std().item() - math.sqrt(2 / 9)) < 0.03
    head = m.decode_head
    assert abs(head.conv_seg.weight.std().item() - 0.01) < 0.002 and not head.conv_seg.bias.any()
    bott = head.fuse_layer.bottleneck.conv  # kaiming fan_out: 256·9
    assert abs(bott.weight.std().item() - math.sqrt(2 / (256 * 9))) < 0.002


# --------------------------------------------------------------------------- param groups


def test_param_groups_follow_daformer_paramwise_cfg(b0):
    groups = b0.param_groups(6e-5)
    by = {g["name"]: g for g in groups}
    assert list(by) == ["backbone", "backbone_norm", "head"]
    assert by["backbone"]["lr"] == 6e-5 and by["head"]["lr"] == pytest.approx(6e-4) and by["head"]["lr_mult"] == 10.0
    assert by["backbone_norm"]["weight_decay"] == 0.0 and "weight_decay" not in by["backbone"]
    assert "weight_decay" not in by["head"]  # reference: decode_head.* matches 'head' first, BN decays
    ln = {id(p) for m in b0.backbone.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()}
    assert {id(p) for p in by["backbone_norm"]["params"]} == ln
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(b0.parameters()))
    allg = {g["name"]: g for g in b0.param_groups(1e-4, 5.0, no_decay_norm="all")}
    bn = {id(p) for m in b0.decode_head.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()}
    assert {id(p) for p in allg["head_norm"]["params"]} == bn and allg["head_norm"]["weight_decay"] == 0.0
    assert allg["head_norm"]["lr"] == pytest.approx(5e-4)
    assert [g["name"] for g in b0.param_groups(1e-4, no_decay_norm=False)] == ["backbone", "head"]
    opt = torch.optim.AdamW(groups, lr=6e-5, weight_decay=0.01)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0, 0.01]


# --------------------------------------------------------------------------- efficient attention


def test_efficient_attention_sr2_by_hand():
    torch.manual_seed(0)
    c, heads, sr, h, w = 4, 2, 2, 4, 6
    att = EfficientSelfAttention(c, heads, sr).double()
    for p in att.parameters():
        nn.init.normal_(p, 0.0, 0.5)
    x = torch.randn(1, h * w, c, dtype=torch.float64)
    got = att(x, h, w)[0]

    tok = x[0]  # (N, C), row index = r·W + s
    q = tok @ att.q.weight.T + att.q.bias
    grid = tok.T.reshape(c, h, w)
    red = torch.zeros(h // sr * (w // sr), c, dtype=torch.float64)  # sr×sr stride-sr conv, by hand
    for i in range(h // sr):
        for j in range(w // sr):
            patch = grid[:, i * sr:(i + 1) * sr, j * sr:(j + 1) * sr]
            red[i * (w // sr) + j] = (att.sr.weight * patch).sum(dim=(1, 2, 3)) + att.sr.bias
    mu, var = red.mean(1, keepdim=True), red.var(1, unbiased=False, keepdim=True)
    red = (red - mu) / torch.sqrt(var + 1e-5) * att.norm.weight + att.norm.bias
    kv = red @ att.kv.weight.T + att.kv.bias
    k, v = kv[:, :c], kv[:, c:]  # rows [0:C] of kv are the keys, [C:2C] the values
    d = c // heads
    outs = []
    for hd in range(heads):
        s = slice(hd * d, (hd + 1) * d)
        a = torch.softmax(q[:, s] @ k[:, s].T / math.sqrt(d), dim=-1)
        outs.append(a @ v[:, s])
    want = torch.cat(outs, 1) @ att.proj.weight.T + att.proj.bias
    assert torch.allclose(got, want, atol=1e-10)


# --------------------------------------------------------------------------- strict loading


def random_mit_file(enc: nn.Module, seed: int = 1, head: bool = True) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {k: torch.randn(v.shape, generator=g) for k, v in enc.state_dict().items()}
    if head:  # the ImageNet classifier of the original files
        sd["head.weight"] = torch.randn(1000, enc.embed_dims[-1], generator=g)
        sd["head.bias"] = torch.randn(1000, generator=g)
    return sd


def shape_only_file(name: str) -> dict[str, torch.Tensor]:
    """A full-size state dict of ``name`` whose tensors share one element (tiny on disk)."""
    one = torch.zeros(1)
    sd = {k: one.expand(v.shape) for k, v in meta(build_mit, name).state_dict().items()}
    sd["head.weight"], sd["head.bias"] = one.expand(1000, 512), one.expand(1000)
    return sd


def test_load_original_layout(tmp_path):
    enc = build_mit("mit_b0")
    sd = random_mit_file(enc)
    path = tmp_path / "mit_b0.pth"
    torch.save(sd, path)
    rep = load_mit_pretrained(enc, path)
    assert rep.skipped == ["head.bias", "head.weight"] and rep.layout == "mit" and not rep.missing
    assert len(rep.loaded) == len(enc.state_dict())
    assert all(torch.equal(v, sd[k]) for k, v in enc.state_dict().items())
    torch.save({"state_dict": sd, "meta": "x"}, tmp_path / "wrapped.pth")  # mmcv-style wrapper
    assert load_mit_pretrained(build_mit("mit_b0"), tmp_path / "wrapped.pth").skipped == ["head.bias", "head.weight"]
    smp = {k: v for k, v in sd.items() if not k.startswith("head.")}  # smp: same keys, no head
    torch.save(smp, tmp_path / "smp.pth")
    assert load_mit_pretrained(build_mit("mit_b0"), tmp_path / "smp.pth").skipped == []


def test_build_segmentor_loads_encoder(tmp_path):
    sd = random_mit_file(build_mit("mit_b0"), seed=4)
    torch.save(sd, tmp_path / "mit_b0.pth")
    model = build_segmentor("segformer_mitb0", 19, pretrained=tmp_path / "mit_b0.pth")
    assert torch.equal(model.backbone.block2[1].attn.kv.weight, sd["block2.1.attn.kv.weight"])
    assert model.init_report.loaded[0] == "backbone.patch_embed1.proj.weight"
    with pytest.raises(ValueError, match="SHA-256 mismatch"):
        build_segmentor("segformer_mitb0", 19, pretrained=tmp_path / "mit_b0.pth", pretrained_sha256="0" * 64)
    with pytest.raises(ValueError, match="daformer_mitb0"):  # a DeepLab name does not fit
        build_segmentor("daformer_mitb0", 19, pretrained="deeplab_imagenet")


def _error(tmp_path, model, sd, name="bad.pth") -> str:
    path = tmp_path / name
    torch.save(sd, path)
    with pytest.raises(ValueError) as e:
        load_mit_pretrained(model, path)
    assert str(path) in str(e.value)
    return str(e.value)


def test_load_errors(tmp_path):
    enc = build_mit("mit_b0")
    sd = random_mit_file(enc)
    missing = {k: v for k, v in sd.items() if k != "block1.0.attn.q.weight"}
    msg = _error(tmp_path, enc, missing)
    assert "'block1.0.attn.q.weight' (in the model, missing from the file)" in msg and "1 missing" in msg
    assert "looks like" not in msg
    msg = _error(tmp_path, enc, {**sd, "block1.0.attn.qkv.weight": torch.zeros(96, 32)})
    assert "'block1.0.attn.qkv.weight' (in the file, not in the model)" in msg and "1 unexpected" in msg
    msg = _error(tmp_path, build_mit("mit_b1"), sd)  # same depths, other widths
    assert "looks like mit_b0" in msg and "the model is mit_b1" in msg
    assert "'patch_embed1.proj.weight' (file (32, 3, 7, 7) vs model (64, 3, 7, 7))" in msg
    unchanged = {k: v.clone() for k, v in enc.state_dict().items()}
    assert all(torch.equal(v, unchanged[k]) for k, v in enc.state_dict().items())  # nothing half-loaded


def test_b2_file_into_b5_model(tmp_path):
    msg = _error(tmp_path, meta(build_mit, "mit_b5"), shape_only_file("mit_b2"), "mit_b2.pth")
    assert "looks like mit_b2 (depths (3, 4, 6, 3), dims (64, 128, 320, 512))" in msg
    assert "but the model is mit_b5 (depths (3, 6, 40, 3)" in msg
    assert "first mismatching key 'block2.4.norm1.weight'" in msg  # B2 has 4 stage-2 blocks


def test_not_a_state_dict_or_other_layout(tmp_path):
    enc = build_mit("mit_b0")
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(ValueError, match="expected a state dict"):
        load_mit_pretrained(enc, path)
    (tmp_path / "text.pth").write_text("not weights")
    with pytest.raises(ValueError, match="not a readable torch weights file"):
        load_mit_pretrained(enc, tmp_path / "text.pth")
    seg = {f"backbone.{k}": v for k, v in random_mit_file(enc, head=False).items()}
    assert "whole segmentor checkpoint" in _error(tmp_path, enc, seg)
    assert "match no MiT layout" in _error(tmp_path, enc, {"conv1.weight": torch.zeros(1)})
    with pytest.raises(FileNotFoundError):
        load_mit_pretrained(enc, tmp_path / "absent.pth")
    with pytest.raises(TypeError):
        load_mit_pretrained(nn.Linear(1, 1), path)


def test_heads_check_their_inputs():
    head = DAFormerHead((32, 64, 160, 256), 19)
    with pytest.raises(ValueError, match="DAFormerHead expects 4 maps"):
        head([torch.zeros(1, 32, 8, 8)])
    assert isinstance(build_segmentor("segformer_mitb1", 3), TransformerSegmentor)
    x = torch.randn(1, 32, 4, 4)
    emb = head.embed_layers["0"]
    assert torch.allclose(emb(x), F.conv2d(x, emb.proj.weight[:, :, None, None], emb.proj.bias), atol=1e-6)
