"""Exact checks of udaseg.models against the reference numbers of DESIGN.md §2.

R101 is only built on the meta device (shapes and parameter counts, no compute); everything that
runs a forward pass uses R18/R50 on small inputs to keep the suite fast on 2 CPU cores.
"""
from __future__ import annotations

import hashlib
import math

import pytest
import torch
from torch import nn

from udaseg.models import (
    ASPPClassifier,
    BinaryDiscriminator,
    FineGrainedDiscriminator,
    LoadReport,
    ResNetBackbone,
    SegmentorOutput,
    available_discriminators,
    available_segmentors,
    build_discriminator,
    build_segmentor,
    load_pretrained,
)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def meta_segmentor(*args, **kwargs):
    with torch.device("meta"):
        return build_segmentor(*args, **kwargs)


# --------------------------------------------------------------------------- parameter counts


@pytest.mark.parametrize(
    "arch, k, multi_level, expected",
    [
        ("deeplabv2_resnet101", 19, True, 44_601_560),
        ("deeplabv2_resnet101", 19, False, 43_901_068),
        ("deeplabv2_resnet101", 16, True, 44_269_760),
        ("deeplabv2_resnet101_tv", 19, True, 44_601_560),  # same tensors, different strides
    ],
)
def test_deeplabv2_r101_parameter_count(arch, k, multi_level, expected):
    assert n_params(meta_segmentor(arch, k, multi_level=multi_level)) == expected


def test_discriminator_parameter_counts():
    assert n_params(build_discriminator("fine_grained", 2048, 19)) == 5_057_702  # FADA
    assert n_params(build_discriminator("binary", 19, 19)) == 2_781_121  # AdaptSegNet / ADVENT


# --------------------------------------------------------------------------- output shapes


@pytest.mark.parametrize("arch, hw", [("deeplabv2_resnet101", (65, 129)), ("deeplabv2_resnet101_tv", (64, 128))])
def test_r101_output_shape_1024x512(arch, hw):
    model = meta_segmentor(arch, 19)
    out = model(torch.empty(1, 3, 512, 1024, device="meta"))  # W×H = 1024×512
    assert isinstance(out, SegmentorOutput)
    assert tuple(out.logits.shape) == (1, 19, *hw)
    assert tuple(out.aux_logits.shape) == (1, 19, *hw)
    assert tuple(out.features.shape) == (1, 2048, *hw)


def _expected_hw(h: int, style: str) -> int:
    h = (h + 6 - 7) // 2 + 1  # conv1 7×7/2 pad 3
    pool = math.ceil if style == "caffe" else math.floor
    h = pool((h + 2 - 3) / 2) + 1  # maxpool 3/2 pad 1
    # layer2: Caffe strides a 1×1 conv (no padding), torchvision a 3×3 conv with padding 1
    return (h - 1) // 2 + 1 if style == "caffe" else (h + 2 - 3) // 2 + 1


@pytest.mark.parametrize("arch, style", [("deeplabv2_resnet18", "caffe"), ("deeplabv2_resnet18_tv", "torchvision")])
def test_real_forward_matches_stride_formula(arch, style):
    # The meta-device shapes above rely on shape inference; check the same rule on real tensors.
    model = build_segmentor(arch, 5, bn_mode="trainable").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 100, 70))
    assert tuple(out.logits.shape) == (1, 5, _expected_hw(100, style), _expected_hw(70, style))
    assert out.features.shape[1] == 512 and model.feature_channels == 512
    assert _expected_hw(512, style) == (65 if style == "caffe" else 64)


def test_single_level_has_no_aux():
    model = build_segmentor("deeplabv2_resnet18", 3, multi_level=False)
    assert model.aux_classifier is None
    with torch.no_grad():
        assert model(torch.randn(1, 3, 33, 33)).aux_logits is None


# --------------------------------------------------------------------------- backbone structure


def test_caffe_and_torchvision_stride_and_dilation_placement():
    caffe, tv = ResNetBackbone(50, "caffe"), ResNetBackbone(50, "torchvision")
    assert caffe.maxpool.ceil_mode and not tv.maxpool.ceil_mode
    # stride in the first 1×1 (Caffe) vs in the 3×3 (torchvision)
    assert caffe.layer2[0].conv1.stride == (2, 2) and caffe.layer2[0].conv2.stride == (1, 1)
    assert tv.layer2[0].conv1.stride == (1, 1) and tv.layer2[0].conv2.stride == (2, 2)
    # Caffe: dilation 2 / 4 in every block; torchvision: first block keeps the previous one
    assert [b.conv2.dilation[0] for b in caffe.layer3] == [2] * 6
    assert [b.conv2.dilation[0] for b in caffe.layer4] == [4] * 3
    assert [b.conv2.dilation[0] for b in tv.layer3] == [1] + [2] * 5
    assert [b.conv2.dilation[0] for b in tv.layer4] == [2, 4, 4]
    for b in (*caffe.layer3, *caffe.layer4, *tv.layer3, *tv.layer4):
        assert b.conv2.padding == b.conv2.dilation
        assert b.conv1.stride == b.conv2.stride == (1, 1)
    assert all(m.bias is None for m in caffe.modules() if isinstance(m, nn.Conv2d))
    # layer1 of a bottleneck net has a (stride-1) projection shortcut
    assert caffe.layer1[0].downsample[0].stride == (1, 1)


def test_torchvision_key_names():
    keys = set(ResNetBackbone(101, "torchvision").state_dict())
    for k in ("conv1.weight", "bn1.running_var", "bn1.num_batches_tracked", "layer1.0.downsample.0.weight",
              "layer1.0.downsample.1.running_mean", "layer3.22.bn3.weight", "layer4.2.conv3.weight"):
        assert k in keys
    assert not any(k.startswith("fc.") for k in keys)


def test_unknown_depth_or_style():
    with pytest.raises(ValueError, match="34"):
        ResNetBackbone(34)
    with pytest.raises(ValueError, match="pytorch.*caffe"):
        ResNetBackbone(50, "pytorch")


# --------------------------------------------------------------------------- ASPP


def test_aspp_is_sum_of_four_branches():
    torch.manual_seed(0)
    head = ASPPClassifier(8, 3)
    assert [c.dilation[0] for c in head.branches] == [6, 12, 18, 24]
    assert [c.padding[0] for c in head.branches] == [6, 12, 18, 24]
    assert all(c.bias is not None and torch.all(c.bias == 0) for c in head.branches)
    for c in head.branches:  # non-zero biases so that a missing branch cannot hide
        nn.init.normal_(c.bias)
    x = torch.randn(2, 8, 30, 31)
    by_hand = sum(
        nn.functional.conv2d(x, c.weight, c.bias, padding=r, dilation=r)
        for c, r in zip(head.branches, (6, 12, 18, 24))
    )
    assert torch.allclose(head(x), by_hand, atol=1e-6)
    assert head(x).shape == (2, 3, 30, 31)


@pytest.mark.parametrize("build", [
    pytest.param(lambda impl: build_segmentor("deeplabv2_resnet18", 5, True, "frozen", aspp_impl=impl), id="r18_caffe"),
    pytest.param(lambda impl: build_segmentor("deeplabv2_resnet18_tv", 5, True, "trainable", aspp_impl=impl), id="r18_tv"),
    pytest.param(lambda impl: build_discriminator("fine_grained", 8, 5), id="fine_grained_d"),
    pytest.param(lambda impl: build_discriminator("binary", 8), id="binary_d"),
])
@pytest.mark.parametrize("impl", ["taps", "dilated_conv"])
def test_gradients_accumulate_exactly_over_backward_passes(build, impl):
    """A step runs one backward per domain (and per self-training pass) into the same .grad, so
    every parameter must end with g(pass 1) + g(pass 2). The taps ASPP once summed its biases with
    stack().sum(0), whose backward left the four biases' .grad as views of one buffer: the second
    pass's bias gradient was added 4 times (the CPU path only; float64 here, so equality is exact
    up to the rounding of one sum)."""
    torch.manual_seed(0)
    with torch.device("cpu"):
        model = build(impl).double().train()
    is_seg = not isinstance(model, (FineGrainedDiscriminator, BinaryDiscriminator))
    shape = (2, 3, 24, 40) if is_seg else (2, 8, 48, 48)
    xs = [torch.randn(shape, dtype=torch.float64) for _ in range(3)]

    def loss(x, seed):  # a random linear function of every output (nonzero gradient at each bias)
        out = model(x)
        outs = [out.logits, out.aux_logits] if is_seg else [out]
        g = torch.Generator().manual_seed(seed)
        return sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in outs)

    params = [p for p in model.parameters() if p.requires_grad]
    separate = [torch.autograd.grad(loss(x, i), params, allow_unused=True) for i, x in enumerate(xs)]
    model.zero_grad(set_to_none=True)
    for i, x in enumerate(xs):
        loss(x, i).backward()
    for (name, p), *gs in zip([(n, p) for n, p in model.named_parameters() if p.requires_grad], *separate):
        want = sum(g for g in gs if g is not None)
        assert p.grad is not None and torch.allclose(p.grad, want, rtol=1e-12, atol=1e-12 * float(want.abs().max())), \
            f"{name}: accumulated gradient is off by {float((p.grad - want).abs().max()):.3g}"


def test_aspp_init_std():
    w = ASPPClassifier(2048, 19).branches[0].weight
    assert abs(w.std().item() - 0.01) < 5e-4 and abs(w.mean().item()) < 5e-4


# --------------------------------------------------------------------------- BN modes


def _bn_snapshot(model):
    bn = model.backbone.bn1
    return bn.running_mean.clone(), bn.weight.detach().clone()


def _train_step(model):
    model.train()
    out = model(torch.randn(2, 3, 40, 40) * 3 + 1)
    loss = out.logits.mean() + out.aux_logits.mean()
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= 0.1 * p.grad.sign()


def test_bn_frozen():
    torch.manual_seed(0)
    model = build_segmentor("deeplabv2_resnet18", 4, bn_mode="frozen")
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(not m.training for m in bns)
    assert all(not p.requires_grad for m in bns for p in m.parameters())
    mean0, w0 = _bn_snapshot(model)
    _train_step(model)
    assert model.training and all(not m.training for m in bns)
    mean1, w1 = _bn_snapshot(model)
    assert torch.equal(mean0, mean1) and torch.equal(w0, w1)
    assert all(m.num_batches_tracked.item() == 0 for m in bns)


def test_bn_frozen_affine():
    torch.manual_seed(0)
    model = build_segmentor("deeplabv2_resnet18", 4, bn_mode="frozen_affine")
    mean0, w0 = _bn_snapshot(model)
    _train_step(model)
    mean1, w1 = _bn_snapshot(model)
    assert not torch.equal(mean0, mean1)  # statistics still move (ADVENT / AdaptSegNet behaviour)
    assert torch.equal(w0, w1) and not model.backbone.bn1.weight.requires_grad


def test_bn_trainable():
    torch.manual_seed(0)
    model = build_segmentor("deeplabv2_resnet18", 4, bn_mode="trainable")
    mean0, w0 = _bn_snapshot(model)
    _train_step(model)
    mean1, w1 = _bn_snapshot(model)
    assert not torch.equal(mean0, mean1) and not torch.equal(w0, w1)


def test_bn_sync_builds_and_runs_without_process_group():
    model = build_segmentor("deeplabv2_resnet18", 4, bn_mode="sync")
    assert isinstance(model.backbone.bn1, nn.SyncBatchNorm)
    assert not any(type(m) is nn.BatchNorm2d for m in model.modules())
    assert model.backbone.bn1.weight.requires_grad
    _train_step(model)  # single process: behaves like plain BN


def test_bn_unknown_mode():
    with pytest.raises(ValueError) as e:
        build_segmentor("deeplabv2_resnet18", 4, bn_mode="freeze")
    msg = str(e.value)
    assert "'freeze'" in msg and all(m in msg for m in ("frozen", "frozen_affine", "trainable", "sync"))


# --------------------------------------------------------------------------- param groups


@pytest.mark.parametrize("bn_mode", ["frozen", "trainable"])
def test_param_groups_cover_each_trainable_param_once(bn_mode):
    model = build_segmentor("deeplabv2_resnet50", 19, bn_mode=bn_mode)
    groups = model.param_groups(2.5e-4)
    assert [g["name"] for g in groups] == ["backbone", "head"]
    assert [g["lr_mult"] for g in groups] == [1.0, 10.0]
    assert groups[0]["lr"] == 2.5e-4 and groups[1]["lr"] == pytest.approx(2.5e-3)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))  # each exactly once
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert set(ids) == trainable
    head = {id(p) for p in (*model.classifier.parameters(), *model.aux_classifier.parameters())}
    assert {id(p) for p in groups[1]["params"]} == head
    if bn_mode == "frozen":
        assert id(model.backbone.bn1.weight) not in set(ids)
    torch.optim.SGD(groups, lr=2.5e-4, momentum=0.9)  # accepted by an optimizer as is


# --------------------------------------------------------------------------- channels_last / bf16


def test_channels_last_and_bf16_autocast():
    torch.manual_seed(0)
    model = build_segmentor("deeplabv2_resnet18", 4).eval()
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        ref = model(x).logits
        model_cl = model.to(memory_format=torch.channels_last)
        out_cl = model_cl(x.contiguous(memory_format=torch.channels_last)).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out_bf = model_cl(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(ref, out_cl, atol=1e-4)
    # the backbone runs in bf16; the tap-by-tap ASPP sums its blocks in float32
    assert out_bf.features.dtype == torch.bfloat16
    assert out_bf.logits.dtype == torch.float32 and out_bf.logits.shape == ref.shape
    assert torch.allclose(ref, out_bf.logits.float(), atol=0.05 * ref.abs().max().item() + 1e-3)


# --------------------------------------------------------------------------- discriminators


def test_fine_grained_discriminator_layers_and_shape():
    d = FineGrainedDiscriminator(32, 5)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(32, 256), (256, 128), (128, 10)]
    assert all(c.kernel_size == (3, 3) and c.stride == (1, 1) and c.padding == (1, 1) for c in convs)
    assert all(c.bias is not None for c in convs)
    acts = [m for m in d.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(acts) == 2 and all(a.negative_slope == 0.2 for a in acts)
    assert d(torch.randn(2, 32, 9, 7)).shape == (2, 10, 9, 7)


def test_binary_discriminator_layers_and_shape():
    d = BinaryDiscriminator(19)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(19, 64), (64, 128), (128, 256), (256, 512), (512, 1)]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) and c.padding == (1, 1) for c in convs)
    assert len([m for m in d.modules() if isinstance(m, nn.LeakyReLU)]) == 4
    assert d(torch.randn(1, 19, 64, 128)).shape == (1, 1, 2, 4)


def test_discriminator_channel_check():
    with pytest.raises(ValueError, match="fine_grained discriminator expects 2048 input channels, got 19"):
        build_discriminator("fine_grained", 2048, 19)(torch.randn(1, 19, 4, 4))
    with pytest.raises(ValueError, match="binary discriminator expects 19 input channels, got 2048"):
        build_discriminator("binary", 19)(torch.randn(1, 2048, 4, 4))


def test_unknown_names():
    with pytest.raises(ValueError) as e:
        build_segmentor("deeplabv3_resnet101", 19)
    assert "deeplabv3_resnet101" in str(e.value)
    assert all(name in str(e.value) for name in available_segmentors())
    with pytest.raises(ValueError) as e:
        build_discriminator("patchgan", 19, 19)
    assert "patchgan" in str(e.value) and "fine_grained" in str(e.value) and "binary" in str(e.value)
    assert set(available_segmentors()) == {
        f"deeplabv2_resnet{d}{s}" for d in (18, 50, 101) for s in ("", "_tv")
    } | {f"{h}_mitb{i}" for h in ("daformer", "segformer") for i in range(6)}
    assert available_discriminators() == ["fine_grained", "binary"]


# --------------------------------------------------------------------------- init loaders


def _random_state(model: nn.Module, seed: int = 1) -> dict[str, torch.Tensor]:
    """A state dict with random values, so that 'landed in the right place' is testable."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in model.state_dict().items():
        out[k] = torch.randint(0, 1000, v.shape, generator=g) if not v.is_floating_point() else torch.randn(v.shape, generator=g)
    return out


def _caffe_file(backbone: ResNetBackbone, with_nbt: bool) -> dict[str, torch.Tensor]:
    # ADVENT's DeepLab_resnet_pretrained_imagenet.pth: 'Scale.' + torchvision names, plus the old
    # 4-branch classifier 'Scale.layer5.conv2d_list.{i}.{weight,bias}' (pre-0.4 file: no num_batches_tracked).
    sd = {f"Scale.{k}": v for k, v in _random_state(backbone).items() if with_nbt or "num_batches" not in k}
    for i in range(4):
        sd[f"Scale.layer5.conv2d_list.{i}.weight"] = torch.randn(21, backbone.layer4_channels, 3, 3)
        sd[f"Scale.layer5.conv2d_list.{i}.bias"] = torch.randn(21)
    return sd


def _tv_file(backbone: ResNetBackbone) -> dict[str, torch.Tensor]:
    sd = _random_state(backbone, seed=2)
    sd["fc.weight"] = torch.randn(1000, backbone.layer4_channels)
    sd["fc.bias"] = torch.randn(1000)
    return sd


@pytest.mark.parametrize("with_nbt", [False, True])
def test_load_caffe_layout(tmp_path, with_nbt):
    model = build_segmentor("deeplabv2_resnet50", 19)
    sd = _caffe_file(ResNetBackbone(50, "caffe"), with_nbt)
    path = tmp_path / "DeepLab_resnet_pretrained_imagenet.pth"
    torch.save(sd, path)
    heads_before = {k: v.clone() for k, v in model.state_dict().items() if "classifier" in k}
    report = load_pretrained(model, path)
    assert isinstance(report, LoadReport) and report.layout == "caffe"
    own = model.state_dict()
    assert torch.equal(own["backbone.conv1.weight"], sd["Scale.conv1.weight"])
    assert torch.equal(own["backbone.bn1.running_mean"], sd["Scale.bn1.running_mean"])
    assert torch.equal(own["backbone.layer1.0.downsample.0.weight"], sd["Scale.layer1.0.downsample.0.weight"])
    assert torch.equal(own["backbone.layer1.0.downsample.1.weight"], sd["Scale.layer1.0.downsample.1.weight"])
    assert torch.equal(own["backbone.layer4.2.bn3.running_var"], sd["Scale.layer4.2.bn3.running_var"])
    assert sorted(report.skipped) == sorted(k for k in sd if k.startswith("Scale.layer5."))
    assert report.unexpected == []
    assert set(report.missing) == {k for k in own if "classifier" in k}  # fresh heads, nothing else
    assert all(torch.equal(own[k], v) for k, v in heads_before.items())  # classifier skipped
    assert len(report.loaded) == len(sd) - 8


def test_load_torchvision_layout(tmp_path):
    model = build_segmentor("deeplabv2_resnet18_tv", 19, multi_level=False)
    sd = _tv_file(ResNetBackbone(18, "torchvision"))
    path = tmp_path / "resnet18.pth"
    torch.save(sd, path)
    report = load_pretrained(model, path, layout="torchvision")
    own = model.state_dict()
    assert report.layout == "torchvision" and sorted(report.skipped) == ["fc.bias", "fc.weight"]
    for k in ("conv1.weight", "layer1.0.conv1.weight", "layer3.0.downsample.0.weight", "layer2.1.bn2.bias"):
        assert torch.equal(own["backbone." + k], sd[k])
    assert report.unexpected == [] and all("classifier" in k for k in report.missing)


def test_build_segmentor_pretrained_and_sha256(tmp_path):
    sd = _tv_file(ResNetBackbone(18, "torchvision"))
    path = tmp_path / "r18.pth"
    torch.save(sd, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    model = build_segmentor("deeplabv2_resnet18_tv", 7, pretrained=path, pretrained_sha256=digest)
    assert torch.equal(model.backbone.conv1.weight, sd["conv1.weight"])
    assert model.init_report.layout == "torchvision"
    bad = "0" * 64
    with pytest.raises(ValueError) as e:
        build_segmentor("deeplabv2_resnet18_tv", 7, pretrained=path, pretrained_sha256=bad)
    assert str(path) in str(e.value) and bad in str(e.value) and digest in str(e.value)


def test_load_udaseg_checkpoint_roundtrip(tmp_path):
    src = build_segmentor("deeplabv2_resnet18", 5)
    src.load_state_dict(_random_state(src, seed=3))
    torch.save({"segmentor": src.state_dict(), "arch": "deeplabv2_resnet18", "iteration": 10}, tmp_path / "ckpt.pth")
    torch.save(src.state_dict(), tmp_path / "bare.pth")
    for name in ("ckpt.pth", "bare.pth"):
        dst = build_segmentor("deeplabv2_resnet18", 5)
        report = load_pretrained(dst, tmp_path / name)
        assert report.layout == "udaseg" and report.missing == [] and report.unexpected == []
        for k, v in src.state_dict().items():
            assert torch.equal(dst.state_dict()[k], v), k
    with pytest.raises(ValueError, match="deeplabv2_resnet18'.*deeplabv2_resnet18_tv"):
        load_pretrained(build_segmentor("deeplabv2_resnet18_tv", 5), tmp_path / "ckpt.pth")


def test_load_reports_missing_and_unexpected(tmp_path):
    sd = _caffe_file(ResNetBackbone(18, "caffe"), with_nbt=False)
    del sd["Scale.layer2.0.conv1.weight"]
    sd["Scale.layer9.0.conv1.weight"] = torch.zeros(1)
    path = tmp_path / "partial.pth"
    torch.save(sd, path)
    with pytest.raises(ValueError) as e:
        load_pretrained(build_segmentor("deeplabv2_resnet18", 4), path)
    assert "layer2.0.conv1.weight" in str(e.value) and "Scale.layer9.0.conv1.weight" in str(e.value)
    report = load_pretrained(build_segmentor("deeplabv2_resnet18", 4), path, strict=False)
    assert "backbone.layer2.0.conv1.weight" in report.missing
    assert report.unexpected == ["Scale.layer9.0.conv1.weight"]
    assert "1 unexpected" in report.summary()


def test_load_wrong_style_or_layout(tmp_path):
    tv_path, caffe_path = tmp_path / "tv.pth", tmp_path / "caffe.pth"
    torch.save(_tv_file(ResNetBackbone(18, "torchvision")), tv_path)
    torch.save(_caffe_file(ResNetBackbone(18, "caffe"), with_nbt=False), caffe_path)
    # The names (and shapes) are identical, so only the layout check can catch this.
    with pytest.raises(ValueError) as e:
        load_pretrained(build_segmentor("deeplabv2_resnet18", 4), tv_path)
    assert str(tv_path) in str(e.value) and "torchvision" in str(e.value) and "model is caffe style" in str(e.value)
    with pytest.raises(ValueError) as e:
        load_pretrained(build_segmentor("deeplabv2_resnet18_tv", 4), caffe_path)
    assert "Caffe" in str(e.value) and "model is torchvision style" in str(e.value)
    with pytest.raises(ValueError, match="expected a DeepLab Caffe-converted.*looks like a torchvision"):
        load_pretrained(build_segmentor("deeplabv2_resnet18", 4), tv_path, layout="caffe")
    # shape mismatch: R50 weights into an R18 model
    r50_path = tmp_path / "r50.pth"
    torch.save(_tv_file(ResNetBackbone(50, "torchvision")), r50_path)
    with pytest.raises(ValueError, match=r"shape mismatch.*layer1\.0\.conv1\.weight: file \(64, 64, 1, 1\) vs model \(64, 64, 3, 3\)"):
        load_pretrained(build_segmentor("deeplabv2_resnet18_tv", 4), r50_path)
    # unknown layout and non-state-dict files
    torch.save({"foo.weight": torch.zeros(1)}, tmp_path / "odd.pth")
    with pytest.raises(ValueError, match="odd.pth.*no known layout.*foo.weight"):
        load_pretrained(build_segmentor("deeplabv2_resnet18", 4), tmp_path / "odd.pth")
    torch.save({"layer5.conv2d_list.0.weight": torch.zeros(1), "layer6.conv2d_list.0.weight": torch.zeros(1),
                "conv1.weight": torch.zeros(1), "layer1.0.conv1.weight": torch.zeros(1)}, tmp_path / "advent.pth")
    with pytest.raises(ValueError, match="DeepLabMulti"):
        load_pretrained(build_segmentor("deeplabv2_resnet18", 4), tmp_path / "advent.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth: not a readable torch weights file"):
        load_pretrained(build_segmentor("deeplabv2_resnet18", 4), tmp_path / "junk.pth")


def test_load_refuses_pickled_code(tmp_path):
    # weights_only=True: a pickled module (arbitrary code on load) is refused, not executed.
    torch.save(nn.Linear(2, 2), tmp_path / "module.pth")
    with pytest.raises(ValueError, match="module.pth.*weights-only.*torch.nn.modules.linear.Linear"):
        load_pretrained(build_segmentor("deeplabv2_resnet18", 4), tmp_path / "module.pth")


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_pretrained(build_segmentor("deeplabv2_resnet18", 4), tmp_path / "nowhere.pth")
