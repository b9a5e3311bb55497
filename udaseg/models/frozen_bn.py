"""``FrozenBatchNorm2d``: the ``model.bn_mode=frozen`` layer, a fixed per-channel affine map.

Why: an eval-mode ``nn.BatchNorm2d`` whose affine params do not require grad still runs the
batch-norm autograd node, which saves its whole input (plus weight and statistics) for backward.
A frozen BN is ``y = x·scale + shift`` with ``scale = weight / sqrt(running_var + eps)`` and
``shift = bias − running_mean·scale``, so its backward is ``grad_x = grad_y·scale`` and needs only
the C-element ``scale``. R101 multi-level at 1280×720: 6.12 → 2.96 GiB of fp32 activations saved
per pass, about half (benchmarks/saved_activations.py). The formula is torchvision's
``torchvision.ops.FrozenBatchNorm2d`` (FADA uses a copy of it); detectron2's
``FrozenBatchNorm2d`` likewise keeps the fused ``F.batch_norm`` when no gradient is needed.

Design choices (see DeepLabV2 for where it is used):
- A *subclass* of ``nn.BatchNorm2d``, not torchvision's buffers-only module: the state dict is
  the same five keys (``weight``, ``bias``, ``running_mean``, ``running_var``,
  ``num_batches_tracked``), so every checkpoint and init file (Caffe ``Scale.*``, torchvision)
  loads unchanged; ``parameters()`` still counts the affine params (the documented 44,601,560 of
  R101 includes them); and code that looks for BN layers by ``isinstance`` keeps finding them —
  AdaBN (``udaseg.engine.adabn``) re-estimates statistics of frozen-mode models by calling
  ``.train()`` on the BN layers alone, and then this layer behaves as ``nn.BatchNorm2d``.
- ``weight`` / ``bias`` stay ``nn.Parameter`` with ``requires_grad=False`` and are *detached* in
  the eval forward, so they never get a gradient and the backward stays lean even if someone
  flips ``requires_grad`` back on (the parameters then just receive no gradient).
- Forward values come from the fused ``F.batch_norm`` eval kernel, with the backward above
  written as a small ``autograd.Function``, rather than from torchvision's ``x·scale + shift``:
  the outputs are then exactly those of eval-mode ``nn.BatchNorm2d`` in every dtype and memory
  format (channels_last in → channels_last out; under autocast a bf16/fp16 input gives a
  bf16/fp16 output, as before). ``x·scale + shift`` in bf16 would round ``shift`` per channel — a
  systematic offset, measured 5× the mean error of the fused kernel at |mean/std| = 3 — and
  torchvision's version without a cast promotes to float32 under autocast (twice the memory of
  every following activation). The backward computes ``grad·scale`` in the gradient's dtype
  (``scale`` from float32 statistics, rounded once to bf16/fp16 under autocast).
- ``eps`` is copied from the replaced layer (1e-5 in every backbone here, both styles: the
  DeepLab Caffe ResNet's BN was converted with Caffe's default 1e-5, as ADVENT/AdaptSegNet build
  it with ``nn.BatchNorm2d`` defaults).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d with fixed statistics and affine params whose backward saves no activation.

    Same constructor and state dict as ``nn.BatchNorm2d`` (``affine`` and
    ``track_running_stats`` must be True). In eval mode — the only mode ``DeepLabV2`` lets it be
    in for ``bn_mode="frozen"`` — it gives eval-mode BatchNorm2d's output, ``x·scale + shift``,
    and its backward keeps only ``scale``; in train mode (only entered by an explicit ``.train()``
    of the layer itself, as AdaBN does) it is a plain ``nn.BatchNorm2d``.

    Shapes: (N, C, H, W) → (N, C, H, W).

    Example::

        bn = FrozenBatchNorm2d.from_batchnorm(nn.BatchNorm2d(64).eval())
        y = bn(x)  # == the eval-mode BatchNorm2d's output; backward keeps only a 64-element scale
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None, dtype=None):
        if not (affine and track_running_stats):
            raise ValueError("FrozenBatchNorm2d needs affine=True and track_running_stats=True")
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.weight.requires_grad_(False)
        self.bias.requires_grad_(False)

    @classmethod
    def from_batchnorm(cls, bn: nn.BatchNorm2d) -> "FrozenBatchNorm2d":
        """A frozen layer sharing ``bn``'s tensors (no copy; device and dtype kept), eps and mode."""
        if not (bn.affine and bn.track_running_stats):
            raise ValueError(f"cannot freeze {bn}: needs affine=True and track_running_stats=True")
        frozen = cls(bn.num_features, bn.eps, bn.momentum, device="meta")  # tensors replaced below
        frozen.weight, frozen.bias = bn.weight, bn.bias
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            setattr(frozen, name, getattr(bn, name))
        frozen.weight.requires_grad_(False)
        frozen.bias.requires_grad_(False)
        return frozen.train(bn.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:  # AdaBN-style re-estimation of the statistics
            return super().forward(x)
        self._check_input_dim(x)
        stats = [t.detach() for t in (self.running_mean, self.running_var, self.weight, self.bias)]
        if x.requires_grad and torch.is_grad_enabled():
            return _FrozenBatchNormFn.apply(x, *stats, self.eps)
        return F.batch_norm(x, *stats, False, 0.0, self.eps)  # nothing to save: the plain kernel


class _FrozenBatchNormFn(torch.autograd.Function):
    """Forward: the eval-mode batch-norm kernel (run without autograd, so it saves nothing).
    Backward: ``grad·scale``; ``scale`` (C elements) is all that is kept."""

    @staticmethod
    def forward(ctx, x, mean, var, weight, bias, eps):
        acc = torch.promote_types(weight.dtype, torch.float32)  # statistics math in ≥ fp32
        ctx.save_for_backward(weight.to(acc) * torch.rsqrt(var.to(acc) + eps))
        return F.batch_norm(x, mean, var, weight, bias, False, 0.0, eps)

    @staticmethod
    def backward(ctx, grad):
        (scale,) = ctx.saved_tensors
        return grad * scale.to(grad.dtype).view(1, -1, 1, 1), None, None, None, None, None


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every plain ``nn.BatchNorm2d`` in ``module`` (in place; also ``module`` itself) by
    a ``FrozenBatchNorm2d`` sharing its tensors; returns the (possibly new) module. SyncBatchNorm
    and other subclasses are left alone."""
    if type(module) is nn.BatchNorm2d:
        return FrozenBatchNorm2d.from_batchnorm(module)
    for name, child in module.named_children():
        new = freeze_batchnorm(child)
        if new is not child:
            module.add_module(name, new)
    return module
