"""Encoder + decode head segmentor for the transformer path (MiT + DAFormer / SegFormer head).

The counterpart of ``DeepLabV2`` (same ``SegmentorOutput``, ``param_groups`` contract,
``feature_channels`` / ``multi_level`` / ``bn_mode`` attributes), modelled on mmseg's
``EncoderDecoder`` as DAFormer uses it: children ``backbone`` and ``decode_head`` (the names its
checkpoints and ``paramwise_cfg`` keys refer to).

Optimiser groups follow DAFormer's final config
(``lhoyer/DAFormer:configs/daformer/gta2cs_uda_warm_fdthings_rcs_croppl_a999_daformer_mitb5_s0.py``:
``paramwise_cfg=dict(custom_keys=dict(head=dict(lr_mult=10.0), pos_block=dict(decay_mult=0.0),
norm=dict(decay_mult=0.0)))`` on AdamW lr 6e-5, wd 0.01 from ``configs/_base_/schedules/adamw.py``;
the same keys in ``NVlabs/SegFormer:local_configs/segformer/B0/segformer.b0.1024x1024.city.160k.py``).
mmcv's ``DefaultOptimizerConstructor`` matches each key as a *substring* of the parameter's full
name (``backbone.block1.0.norm1.weight``, ``decode_head.fuse_layer.bottleneck.bn.weight``), trying
the keys longest first, then alphabetically (``pos_block``, ``head``, ``norm``), and the first
match wins. With the reference's names that means:
- every ``decode_head.*`` parameter matches ``head`` → lr × 10 and *normal* weight decay (its BN
  layers are named ``bn``, and ``head`` is tried before ``norm`` anyway);
- every encoder parameter whose name contains ``norm`` — exactly the LayerNorm weights and biases
  (patch-embed ``norm``, block ``norm1``/``norm2``, ``attn.norm``, stage ``norm1..4``) → lr × 1,
  weight decay 0;
- ``pos_block`` matches nothing (MiT has no positional block; a PVT leftover);
- everything else (Linear/conv weights *and biases*) → lr × 1, normal weight decay.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from udaseg.models.deeplabv2 import SegmentorOutput
from udaseg.models.mit import MixVisionTransformer

# bn_mode -> SyncBatchNorm? Only modes where the head's BN trains: the head starts from scratch,
# and MiT itself normalises with LayerNorm (nothing to freeze).
TRANSFORMER_BN_MODES = {"trainable": False, "sync": True}

# DAFormer's custom_keys in mmcv's matching order (longest first, then alphabetical); see the
# module docstring for what each one does.
_REFERENCE_KEYS = ("pos_block", "head", "norm")
_NORM_TYPES = (nn.LayerNorm, nn.BatchNorm2d, nn.SyncBatchNorm, nn.GroupNorm)


class TransformerSegmentor(nn.Module):
    """``backbone`` (MiT) → ``decode_head`` (``DAFormerHead`` / ``SegFormerHead``).

    Args:
        backbone: a ``MixVisionTransformer``.
        decode_head: a head taking the 4 stage maps and returning (N, K, H/4, W/4) logits.
        num_classes: K (checked against the head's).
        bn_mode: ``"trainable"`` (plain BN in the head, as DAFormer's ``norm_cfg=dict(type='BN')``)
            or ``"sync"`` (``nn.SyncBatchNorm``; synchronises only under DDP). ``"frozen"`` and
            ``"frozen_affine"`` are refused: MiT has no BatchNorm and the head is trained from
            scratch, so there are no statistics worth freezing.
        feature_stage: which encoder stage (1–4) ``forward`` returns as ``features`` (what the
            fine-grained discriminator / a feature distance sees); 4 (stride 32, DAFormer's FD
            layer ``lay=-1``) by default.

    ``forward(x)`` returns ``SegmentorOutput(logits, None, features)``: logits at output stride 4
    (⌈H/4⌉ × ⌈W/4⌉, not upsampled, as DeepLabV2 returns its stride-8 logits), no auxiliary logits
    (``multi_level`` is False), features of ``feature_stage``.

    Example::

        model = build_segmentor("daformer_mitb5", 19, multi_level=False, bn_mode="trainable",
                                pretrained="pretrained/mit_b5.pth")
        out = model(images)  # out.logits: (N, 19, 128, 128) for 512×512 crops
        opt = torch.optim.AdamW(model.param_groups(6e-5), lr=6e-5, weight_decay=0.01)
    """

    multi_level = False
    output_stride = 4

    def __init__(self, backbone: MixVisionTransformer, decode_head: nn.Module, num_classes: int,
                 bn_mode: str = "trainable", feature_stage: int = 4):
        super().__init__()
        if bn_mode not in TRANSFORMER_BN_MODES:
            raise ValueError(
                f"bn_mode {bn_mode!r} is not supported by the transformer segmentors; valid: "
                f"{', '.join(TRANSFORMER_BN_MODES)} (MiT normalises with LayerNorm and the decode head's "
                "BatchNorm is trained from scratch, so there are no BN statistics to freeze: "
                "set model.bn_mode=trainable)")
        if feature_stage not in (1, 2, 3, 4):
            raise ValueError(f"feature_stage must be 1, 2, 3 or 4 (an encoder stage), got {feature_stage!r}")
        head_k = getattr(decode_head, "num_classes", num_classes)
        if head_k != num_classes:
            raise ValueError(f"decode head has {head_k} classes, segmentor num_classes is {num_classes}")
        self.num_classes, self.bn_mode, self.feature_stage = num_classes, bn_mode, feature_stage
        self.feature_channels = backbone.embed_dims[feature_stage - 1]
        self.backbone = backbone
        if TRANSFORMER_BN_MODES[bn_mode]:
            decode_head = nn.SyncBatchNorm.convert_sync_batchnorm(decode_head)
        self.decode_head = decode_head

    def forward(self, x: torch.Tensor) -> SegmentorOutput:
        feats = self.backbone(x)
        return SegmentorOutput(self.decode_head(feats), None, feats[self.feature_stage - 1])

    def param_groups(self, base_lr: float, head_lr_mult: float = 10.0,
                     no_decay_norm: bool | str = True) -> list[dict[str, Any]]:
        """Optimizer parameter groups, each trainable parameter exactly once.

        Every group carries ``name``, ``params``, ``lr`` and ``lr_mult`` (for the trainer's
        schedule: ``group["lr"] = lr_now * group["lr_mult"]``); groups without weight decay also
        carry ``weight_decay: 0.0`` (the others take the optimiser's). Empty groups are dropped.

        Args:
            base_lr: encoder learning rate.
            head_lr_mult: decode-head multiplier (DAFormer: 10).
            no_decay_norm: ``True`` — DAFormer's ``paramwise_cfg`` exactly (module docstring):
                groups ``backbone`` (×1), ``backbone_norm`` (×1, wd 0: the encoder's LayerNorm
                weights and biases) and ``head`` (×``head_lr_mult``, all head parameters, its BN
                included, with weight decay). ``"all"`` — also the head's BatchNorm weights and
                biases without decay (group ``head_norm``), a common variant that is *not*
                DAFormer's. ``False`` — no decay exemptions: ``backbone`` and ``head`` only.
        """
        if no_decay_norm not in (True, False, "all"):
            raise ValueError(f"no_decay_norm must be True, False or 'all', got {no_decay_norm!r}")
        head_norm_params = {id(p) for m in self.decode_head.modules() if isinstance(m, _NORM_TYPES)
                            for p in m.parameters(recurse=False)}
        groups: dict[str, list[nn.Parameter]] = {"backbone": [], "backbone_norm": [], "head": [], "head_norm": []}
        for name, p in self.named_parameters():  # de-duplicates shared params
            if not p.requires_grad:
                continue
            key = next((k for k in _REFERENCE_KEYS if k in name), None)  # mmcv: first matching custom key
            if key == "head":  # every decode_head.* parameter
                norm = no_decay_norm == "all" and id(p) in head_norm_params
                groups["head_norm" if norm else "head"].append(p)
            elif key in ("norm", "pos_block") and no_decay_norm:
                groups["backbone_norm"].append(p)
            else:
                groups["backbone"].append(p)
        head_mult = float(head_lr_mult)
        spec = {  # name -> (lr_mult, weight decay override)
            "backbone": (1.0, None), "backbone_norm": (1.0, 0.0),
            "head": (head_mult, None), "head_norm": (head_mult, 0.0),
        }
        out = []
        for gname, params in groups.items():
            if not params:
                continue
            mult, wd = spec[gname]
            group = {"name": gname, "params": params, "lr": base_lr * mult, "lr_mult": mult}
            if wd is not None:
                group["weight_decay"] = wd
            out.append(group)
        return out


__all__ = ["TRANSFORMER_BN_MODES", "TransformerSegmentor"]
