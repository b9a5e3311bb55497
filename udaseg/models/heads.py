"""Decode heads for the MiT encoders: DAFormer's context-aware fusion and SegFormer's all-MLP head.

Both take the encoder's 4 stage maps (strides 4/8/16/32) and return logits at stride 4 (the
stage-1 size), not upsampled. Module names follow the mmseg/mmcv modules of the references, so a
DAFormer/SegFormer ``decode_head.*`` state dict has the same keys: mmcv's ``ConvModule`` is
``ConvBNReLU`` here with children ``conv`` / ``bn`` (mmcv names a BN layer ``bn``), and
``DepthwiseSeparableConvModule`` keeps ``depthwise_conv`` / ``pointwise_conv``.

Shared defaults, from ``lhoyer/DAFormer:mmseg/models/decode_heads/decode_head.py``
(``BaseDecodeHead``) and mmcv 1.3.7 ``ConvModule``:
- ``dropout_ratio=0.1`` as ``nn.Dropout2d`` (channel dropout) before the classifier;
- a ConvModule with a norm has no conv bias (``bias='auto'``), BN + ReLU after the conv; its conv
  is initialised ``kaiming_normal_(mode='fan_out', nonlinearity='relu')``, bias 0, BN weight 1 /
  bias 0 (``ConvModule.init_weights``);
- bilinear resizing with ``align_corners=False``;
- the token embeddings are ``nn.Linear`` (the reference's ``MLP.proj``, PyTorch default init).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Module):
    """conv (no bias) → BatchNorm2d → ReLU; mmcv ``ConvModule(norm_cfg=BN, act_cfg=ReLU)``."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 1, padding: int = 0, dilation: int = 1,
                 groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=padding, dilation=dilation, groups=groups,
                              bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.activate = nn.ReLU(inplace=True)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class DepthwiseSeparableConv(nn.Module):
    """3×3 depthwise ConvBNReLU (dilation d) → 1×1 pointwise ConvBNReLU (mmcv
    ``DepthwiseSeparableConvModule``: both parts get the norm and the activation by default)."""

    def __init__(self, in_ch: int, out_ch: int, dilation: int):
        super().__init__()
        self.depthwise_conv = ConvBNReLU(in_ch, in_ch, 3, padding=dilation, dilation=dilation, groups=in_ch)
        self.pointwise_conv = ConvBNReLU(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class TokenEmbed(nn.Module):
    """Per-pixel ``Linear(in, out)`` on a map (the reference's ``MLP``; key ``proj``)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.proj = nn.Linear(in_ch, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # (N, out, H, W)


def _embed_and_resize(layers: nn.ModuleDict, feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Embed each stage, resize all to the stage-1 size (bilinear, align_corners=False), concat."""
    size = feats[0].shape[2:]
    outs = []
    for i, x in enumerate(feats):
        y = layers[str(i)](x)
        if y.shape[2:] != size:
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        outs.append(y)
    return torch.cat(outs, dim=1)


def _check_feats(feats: Sequence[torch.Tensor], in_channels: tuple[int, ...], kind: str) -> None:
    if len(feats) != len(in_channels) or any(f.shape[1] != c for f, c in zip(feats, in_channels)):
        raise ValueError(f"{kind} expects {len(in_channels)} maps with channels {in_channels}, "
                         f"got {[tuple(f.shape) for f in feats]}")


class ASPPFusion(nn.Module):
    """DAFormer's fusion ``ASPPWrapper(sep=True, dilations=(1, 6, 12, 18), pool=False)``:
    branch d=1 is a 1×1 ConvBNReLU, branches d>1 are depthwise-separable 3×3 convs with dilation
    = padding = d (``DepthwiseSeparableASPPModule``), all ``in_ch → channels``; no image-pooling
    branch; the concatenated branches go through a 3×3 ``bottleneck`` ConvBNReLU
    (``len(dilations)·channels → channels``). Source: ``lhoyer/DAFormer:mmseg/models/decode_heads/
    daformer_head.py`` (``ASPPWrapper``), ``sep_aspp_head.py``, ``aspp_head.py`` (``ASPPModule``)."""

    def __init__(self, in_ch: int, channels: int, dilations: Sequence[int] = (1, 6, 12, 18)):
        super().__init__()
        self.dilations = tuple(dilations)
        self.aspp_modules = nn.ModuleList(
            ConvBNReLU(in_ch, channels, 1) if d == 1 else DepthwiseSeparableConv(in_ch, channels, d)
            for d in self.dilations
        )
        self.bottleneck = ConvBNReLU(len(self.dilations) * channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bottleneck(torch.cat([m(x) for m in self.aspp_modules], dim=1))


class DAFormerHead(nn.Module):
    """DAFormer decoder with context-aware feature fusion ("sepaspp", the final DAFormer).

    Defaults from ``lhoyer/DAFormer:configs/_base_/models/daformer_sepaspp_mitb5.py`` on top of
    ``daformer_conv1_mitb5.py``: ``in_index=[0, 1, 2, 3]``, ``embed_dims=256`` with
    ``embed_cfg = embed_neck_cfg = dict(type='mlp', act_cfg=None, norm_cfg=None)`` (every stage,
    the last one included, is a bare ``Linear(C_i, 256)``), ``channels=256``, fusion
    ``type='aspp', sep=True, dilations=(1, 6, 12, 18), pool=False`` with BN (``requires_grad=True``,
    not SyncBN) + ReLU, ``dropout_ratio=0.1``, ``align_corners=False``; classifier ``conv_seg``
    1×1 conv with bias, initialised N(0, 0.01), bias 0 (``BaseDecodeHead`` ``init_cfg``).

    For MiT-B5 and K classes: 263,168 (embeddings) + 262,656 (1×1 branch) + 3 × 273,920
    (separable branches) + 2,359,808 (bottleneck) + 257·K parameters; 3,712,275 for K = 19.

    ``fusion="conv1"``: the fusion is a 1×1 ConvBNReLU instead (``fusion_cfg=dict(type='conv',
    kernel_size=1, act_cfg=ReLU, norm_cfg=BN)``, DAFormer's ``daformer_conv1`` fusion), what HRDA's
    scale-attention head uses (``lhoyer/HRDA:mmseg/models/decode_heads/hrda_head.py``: the ``aspp``
    fusion of the attention head's config replaced so); ``dilations`` is then unused.

    Shapes: 4 maps (N, C_i, H/s_i, W/s_i) → (N, K, H/4, W/4).
    """

    def __init__(self, in_channels: Sequence[int], num_classes: int, embed_dims: int = 256, channels: int = 256,
                 dilations: Sequence[int] = (1, 6, 12, 18), dropout_ratio: float = 0.1, fusion: str = "aspp"):
        super().__init__()
        if fusion not in ("aspp", "conv1"):
            raise ValueError(f"DAFormerHead fusion must be aspp or conv1, got {fusion!r}")
        self.in_channels, self.num_classes = tuple(in_channels), num_classes
        # keys 'embed_layers.{i}' as in the reference (a ModuleDict over str(in_index))
        self.embed_layers = nn.ModuleDict({str(i): TokenEmbed(c, embed_dims) for i, c in enumerate(self.in_channels)})
        fused = embed_dims * len(self.in_channels)
        self.fuse_layer = (ASPPFusion(fused, channels, dilations) if fusion == "aspp"
                           else ConvBNReLU(fused, channels, 1))
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)
        nn.init.normal_(self.conv_seg.weight, 0.0, 0.01)
        nn.init.zeros_(self.conv_seg.bias)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        _check_feats(feats, self.in_channels, "DAFormerHead")
        x = self.fuse_layer(_embed_and_resize(self.embed_layers, feats))
        return self.conv_seg(self.dropout(x))


# SegFormer's decoder width C: 256 for B0/B1 ("real-time models"), 768 for B2–B5 (SegFormer paper
# §4.2 "Influence of C"; NVlabs/SegFormer:local_configs/segformer/B0/*.py `embed_dim=256`,
# lhoyer/DAFormer:configs/_base_/models/segformer_b5.py `embed_dim=768`).
SEGFORMER_EMBED_DIMS = {"mit_b0": 256, "mit_b1": 256, "mit_b2": 768, "mit_b3": 768, "mit_b4": 768, "mit_b5": 768}


class SegFormerHead(nn.Module):
    """SegFormer's all-MLP decoder (``lhoyer/DAFormer:mmseg/models/decode_heads/segformer_head.py``,
    config ``configs/_base_/models/segformer_b5.py``: ``embed_dim=768, conv_kernel_size=1``, BN,
    ``dropout_ratio=0.1``).

    Per stage ``linear_c.{i}`` = Linear(C_i, E) → resize to stride 4 → concat (4E) →
    ``linear_fuse`` 1×1 ConvBNReLU (4E → E) → Dropout2d(0.1) → ``linear_pred`` 1×1 conv (E → K,
    PyTorch default init: the reference's ``init_cfg`` only overrides ``conv_seg``). The reference
    also builds ``BaseDecodeHead.conv_seg`` (``channels=128`` → K, 128·K + K parameters) and never
    uses it (hence its ``find_unused_parameters=True``); it is left out here.

    For E = 768, K classes: 789,504 + 2,360,832 + 769·K parameters (3,164,947 for K = 19).
    """

    def __init__(self, in_channels: Sequence[int], num_classes: int, embed_dim: int = 768,
                 dropout_ratio: float = 0.1):
        super().__init__()
        self.in_channels, self.num_classes = tuple(in_channels), num_classes
        self.linear_c = nn.ModuleDict({str(i): TokenEmbed(c, embed_dim) for i, c in enumerate(self.in_channels)})
        self.linear_fuse = ConvBNReLU(embed_dim * len(self.in_channels), embed_dim, 1)
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else nn.Identity()
        self.linear_pred = nn.Conv2d(embed_dim, num_classes, 1)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        _check_feats(feats, self.in_channels, "SegFormerHead")
        x = self.linear_fuse(_embed_and_resize(self.linear_c, feats))
        return self.linear_pred(self.dropout(x))


__all__ = [
    "ASPPFusion",
    "ConvBNReLU",
    "DAFormerHead",
    "DepthwiseSeparableConv",
    "SEGFORMER_EMBED_DIMS",
    "SegFormerHead",
    "TokenEmbed",
]
