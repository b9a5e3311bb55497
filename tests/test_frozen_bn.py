"""FrozenBatchNorm2d (model.bn_mode=frozen): same values and state dict as eval-mode BatchNorm2d,
a backward that keeps no BN input. Small nets and inputs only (R18, ≤ 64×128)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from udaseg.engine.adabn import adapt_batchnorm
from udaseg.engine.autograd_memory import saved_storages
from udaseg.models import build_segmentor
from udaseg.models.frozen_bn import FrozenBatchNorm2d, freeze_batchnorm


def _random_bn(c: int = 8, eps: float = 1e-5, seed: int = 0) -> nn.BatchNorm2d:
    g = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(c, eps=eps).eval().requires_grad_(False)
    with torch.no_grad():
        bn.weight.copy_(torch.randn(c, generator=g))
        bn.bias.copy_(torch.randn(c, generator=g))
        bn.running_mean.copy_(torch.randn(c, generator=g))
        bn.running_var.copy_(torch.rand(c, generator=g) + 0.5)
    return bn


def _randomise_bn_stats(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(1 + 0.2 * torch.randn(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)


def _old_frozen(model: nn.Module) -> nn.Module:
    """The same net as ``model`` with the pre-FrozenBatchNorm2d frozen BN: eval-mode
    nn.BatchNorm2d, affine without grad (built as frozen_affine, its BN layers kept in eval)."""
    old = build_segmentor(model.arch, model.num_classes, model.multi_level, bn_mode="frozen_affine")
    old.load_state_dict(model.state_dict())
    old.train()
    for m in old.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
    return old


# --------------------------------------------------------------------------- the layer


@pytest.mark.parametrize("eps", [1e-5, 1e-3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_matches_eval_batchnorm(eps, channels_last):
    bn = _random_bn(eps=eps)
    frozen = FrozenBatchNorm2d.from_batchnorm(bn)
    assert frozen.eps == eps and frozen.weight is bn.weight and frozen.running_var is bn.running_var
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 8, 7, 9).contiguous(memory_format=fmt)
    x_old, x_new = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ref, out = bn(x_old), frozen(x_new)  # x needs grad: the lean x·scale + shift path
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)
    assert out.is_contiguous(memory_format=fmt)
    grad = torch.randn_like(ref)
    ref.backward(grad)
    out.backward(grad)
    torch.testing.assert_close(x_new.grad, x_old.grad, rtol=1e-6, atol=1e-6)
    with torch.no_grad():  # inference path: the fused kernel, identical to BatchNorm2d
        assert torch.equal(frozen(x), bn(x))


def test_low_precision_input_gives_batchnorms_values():
    # The forward is BatchNorm2d's own eval kernel, so bf16/fp16 outputs are BatchNorm2d's too
    # (no per-channel rounding of the shift, no promotion to float32); gradients to bf16 rounding.
    bn = _random_bn()
    frozen = FrozenBatchNorm2d.from_batchnorm(bn)
    x = torch.randn(2, 8, 5, 5)
    for dtype in (torch.bfloat16, torch.float16):
        x_old, x_new = x.to(dtype).requires_grad_(True), x.to(dtype).requires_grad_(True)
        ref, out = bn(x_old), frozen(x_new)
        assert out.dtype == dtype and torch.equal(out, ref)
        ref.float().square().sum().backward()
        out.float().square().sum().backward()
        assert x_new.grad.dtype == dtype
        torch.testing.assert_close(x_new.grad.float(), x_old.grad.float(), rtol=2e-2, atol=2e-2)
    conv = nn.Conv2d(8, 8, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a bf16 conv output, as in the backbone
        y_new, y_old = frozen(conv(x)), bn(conv(x))
    assert y_new.dtype == torch.bfloat16 and torch.equal(y_new, y_old)


def test_layer_saves_only_its_scale():
    frozen = FrozenBatchNorm2d.from_batchnorm(_random_bn(c=8))
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        frozen(torch.randn(2, 8, 5, 5, requires_grad=True))
    assert [tuple(t.shape) for t in saved] == [(8,)]
    torch.testing.assert_close(saved[0], frozen.weight / torch.sqrt(frozen.running_var + frozen.eps))


def test_train_mode_of_the_layer_is_plain_batchnorm():
    # Only AdaBN puts the layer itself in train mode: it must then update statistics like BN.
    bn, frozen = _random_bn(), FrozenBatchNorm2d.from_batchnorm(_random_bn())
    x = torch.randn(4, 8, 6, 6)
    torch.testing.assert_close(frozen.train()(x), bn.train()(x))
    torch.testing.assert_close(frozen.running_mean, bn.running_mean)


def test_refuses_non_affine():
    with pytest.raises(ValueError, match="affine"):
        FrozenBatchNorm2d.from_batchnorm(nn.BatchNorm2d(4, affine=False))


def test_freeze_batchnorm_leaves_sync_bn_and_others():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.SyncBatchNorm(4), nn.Sequential(nn.BatchNorm2d(4)))
    net = freeze_batchnorm(net)
    assert [type(m) for m in net.modules()][1:] == [
        nn.Conv2d, FrozenBatchNorm2d, nn.SyncBatchNorm, nn.Sequential, FrozenBatchNorm2d]


# --------------------------------------------------------------------------- in the segmentor


def test_bn_modes_use_it_only_when_frozen():
    frozen = build_segmentor("deeplabv2_resnet18", 4, bn_mode="frozen")
    bns = [m for m in frozen.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 20 and all(type(m) is FrozenBatchNorm2d for m in bns)
    for mode in ("frozen_affine", "trainable"):
        model = build_segmentor("deeplabv2_resnet18", 4, bn_mode=mode)
        assert not any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())


def test_nothing_frozen_requires_grad_or_reaches_the_optimizer():
    model = build_segmentor("deeplabv2_resnet18", 4, bn_mode="frozen").train()
    frozen = [m for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]
    tensors = [t for m in frozen for t in (*m.parameters(), *m.buffers())]
    assert len(tensors) == 5 * len(frozen) and not any(t.requires_grad for t in tensors)
    in_groups = {id(p) for g in model.param_groups(1e-3) for p in g["params"]}
    assert not in_groups & {id(t) for t in tensors}
    assert all(not m.training for m in frozen) and model.training
    # parameters() still counts the BN affine params: the same count as any other BN mode
    trainable = build_segmentor("deeplabv2_resnet18", 4, bn_mode="trainable")
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in trainable.parameters())


def test_state_dict_interchangeable_with_trainable_bn():
    torch.manual_seed(0)
    frozen = build_segmentor("deeplabv2_resnet18", 4, bn_mode="frozen")
    _randomise_bn_stats(frozen)
    trainable = build_segmentor("deeplabv2_resnet18", 4, bn_mode="trainable")
    sd_f, sd_t = frozen.state_dict(), trainable.state_dict()
    assert list(sd_f) == list(sd_t)
    assert all(sd_f[k].shape == sd_t[k].shape and sd_f[k].dtype == sd_t[k].dtype for k in sd_f)
    trainable.load_state_dict(sd_f)  # strict, both ways
    x = torch.randn(1, 3, 40, 48)
    with torch.no_grad():
        torch.testing.assert_close(trainable.eval()(x).logits, frozen.eval()(x).logits, rtol=1e-5, atol=1e-5)
    again = build_segmentor("deeplabv2_resnet18", 4, bn_mode="frozen")
    again.load_state_dict(trainable.state_dict())
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in sd_f.items())


def test_train_mode_does_not_change_frozen_outputs():
    torch.manual_seed(0)
    model = build_segmentor("deeplabv2_resnet18", 4, bn_mode="frozen")
    _randomise_bn_stats(model)
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    x = torch.randn(2, 3, 40, 48)
    out_eval = model.eval()(x)
    out_train = model.train()(x)
    for a, b in zip(out_eval[:3], out_train[:3]):  # logits, aux_logits, features
        assert torch.equal(a, b)
    assert out_eval.extra == out_train.extra == ()  # no extra predictions (HRDA only)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in stats.items())
    with torch.no_grad():  # the fused inference path gives the same values
        torch.testing.assert_close(model.eval()(x).logits, out_train.logits, rtol=1e-5, atol=1e-5)


def test_gradients_equal_old_frozen_bn():
    torch.manual_seed(0)
    new = build_segmentor("deeplabv2_resnet18", 4, bn_mode="frozen")
    _randomise_bn_stats(new)
    old = _old_frozen(new.train())
    x = torch.randn(1, 3, 40, 48)
    for model in (old, new):
        out = model(x)
        (out.logits.square().mean() + out.aux_logits.mean()).backward()
    grads_old = dict(old.named_parameters())
    named = [(n, p) for n, p in new.named_parameters() if p.requires_grad]
    assert len(named) == len([p for p in old.parameters() if p.requires_grad])
    for n, p in named:
        torch.testing.assert_close(p.grad, grads_old[n].grad, rtol=1e-4, atol=1e-6, msg=n)


def test_adabn_still_adapts_frozen_models():
    model = build_segmentor("deeplabv2_resnet18", 4, bn_mode="frozen")
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    adapted = adapt_batchnorm(model, [{"image": images}], "per_image", "cpu")
    assert not torch.equal(adapted.backbone.bn1.running_mean, model.backbone.bn1.running_mean)
    assert isinstance(adapted.backbone.bn1, FrozenBatchNorm2d) and not adapted.backbone.bn1.training


# --------------------------------------------------------------------------- memory


def _saved_storages(model: nn.Module, x: torch.Tensor):
    """(bytes per distinct storage saved for backward, the same for the backbone's BN inputs)."""
    return saved_storages(model, x, [m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d)])


def test_backward_keeps_no_bn_input():
    new = build_segmentor("deeplabv2_resnet18", 4, bn_mode="frozen").train()
    old = _old_frozen(new)
    x = torch.randn(1, 3, 64, 128)
    saved_new, bn_new = _saved_storages(new, x)
    saved_old, bn_old = _saved_storages(old, x)
    assert len(bn_new) == len(bn_old) == 20  # one distinct conv output per BN layer
    bn_bytes = sum(bn_new.values())
    assert bn_bytes == sum(bn_old.values()) > 0
    # the old layer keeps every BN input, the new one none
    assert set(bn_old) <= set(saved_old)
    assert not set(bn_new) & set(saved_new)
    total_new, total_old = sum(saved_new.values()), sum(saved_old.values())
    assert total_new < total_old
    assert total_old - total_new >= bn_bytes
