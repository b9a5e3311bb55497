"""Dilated ResNet backbones of DeepLab-V2 (output stride 8), in the two flavours of the references.

``style="caffe"`` — the DeepLab Caffe ResNet used by ADVENT and AdaptSegNet
(``advent/model/deeplabv2.py``):

- Bottleneck: the stride sits in the *first 1×1* conv (Caffe's ResNet did that);
- stem: 7×7/2 conv + BN + ReLU, then max-pool 3/2/pad 1 with ``ceil_mode=True``;
- layer3: stride 1, dilation 2 in *every* block; layer4: stride 1, dilation 4 in every block;
- 1024×512 (W×H) input → 129×65 layer4 map (ceil-mode pool: 512 → 256 → 129 → 65).

``style="torchvision"`` — torchvision's ResNet with ``replace_stride_with_dilation=[False, True,
True]``, as used by FADA (``core/models/feature_extractor.py``):

- Bottleneck: the stride sits in the 3×3 conv;
- non-ceil max-pool;
- the first block of a dilated stage keeps the previous dilation (layer3 block 0: 1, then 2;
  layer4 block 0: 2, then 4);
- 1024×512 → 128×64.

Module and parameter names are torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer1.0.downsample.0`` …) in *both* styles — the Caffe-converted DeepLab checkpoints use the
same names under a ``Scale.`` prefix — so either kind of state dict loads by name (see
``udaseg.models.deeplabv2.load_pretrained``). The names being equal is exactly why the loader
must check which *layout* a file has: a torchvision checkpoint loads without a shape error into a
Caffe-style net and silently computes something else.

ResNet-18 (BasicBlock) is not part of the references; it is here as a cheap benchmark net.
For BasicBlock both styles put the stride in the first 3×3 conv (there is no 1×1 conv to take it);
"Caffe style" then only means the ceil-mode max-pool and the every-block dilation rule.
Both 3×3 convs of a BasicBlock use the block's dilation (torchvision's BasicBlock refuses
dilation > 1 altogether).

Init: convs Kaiming-normal (fan_out, as torchvision), BN weight 1 / bias 0. The references draw
backbone convs from N(0, 0.01) and then overwrite them with ImageNet weights; Kaiming is the
choice that also trains from scratch (the embedded benchmark).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

STYLES = ("caffe", "torchvision")

# Blocks per stage (He et al. 2016, Table 1).
DEPTHS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}


class BackboneOutput(NamedTuple):
    """Features of the two deepest stages, both at output stride 8."""

    layer3: torch.Tensor  # (N, 1024 | 256, H/8, W/8) — feeds the auxiliary ASPP
    layer4: torch.Tensor  # (N, 2048 | 512, H/8, W/8) — feeds the main ASPP and the feature D


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    # padding = dilation keeps the spatial size of a stride-1 3×3 conv (DeepLab rule).
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


def _conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convs; the stride is in the first one (both styles), both use ``dilation``."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None, style: str = "caffe"):
        super().__init__()
        self.conv1 = _conv3x3(in_ch, planes, stride, dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, 1, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1×1 → 3×3 (dilated) → 1×1, ×4 expansion.

    Caffe style strides in ``conv1`` (1×1); torchvision style strides in ``conv2`` (3×3).
    """

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None, style: str = "caffe"):
        super().__init__()
        s1, s3 = (stride, 1) if style == "caffe" else (1, stride)
        self.conv1 = _conv1x1(in_ch, planes, s1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, s3, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNetBackbone(nn.Module):
    """Dilated ResNet-{18, 50, 101} returning layer3 and layer4 features at output stride 8.

    Args:
        depth: 18, 50 or 101.
        style: ``"caffe"`` (ADVENT / AdaptSegNet) or ``"torchvision"`` (FADA); see module doc.
        output_stride: 8 (DeepLab-V2, the default) or 32 — the plain classification ResNet
            (layer3 and layer4 stride 2, no dilation), which ``udaseg pretrain`` trains. The
            parameters are the same in both, so weights move between them by name.

    Attributes: ``style``, ``depth``, ``layer3_channels`` (1024 | 256), ``layer4_channels``
    (2048 | 512), ``output_stride`` (8 or 32).

    Example::

        feats = ResNetBackbone(101, "caffe")(torch.randn(1, 3, 65, 65))
        feats.layer4.shape  # (1, 2048, 9, 9)
    """

    OUTPUT_STRIDES = (8, 32)

    def __init__(self, depth: int = 101, style: str = "caffe", output_stride: int = 8):
        super().__init__()
        if output_stride not in self.OUTPUT_STRIDES:
            raise ValueError(f"unsupported output_stride {output_stride!r}; available: {list(self.OUTPUT_STRIDES)}")
        self.output_stride = output_stride
        if depth not in DEPTHS:
            raise ValueError(f"unsupported ResNet depth {depth!r}; available: {sorted(DEPTHS)}")
        if style not in STYLES:
            raise ValueError(f"unknown backbone style {style!r}; available: {list(STYLES)}")
        kind, blocks = DEPTHS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.depth, self.style = depth, style
        self._in_ch = 64

        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        # ceil_mode is the Caffe pooling rule; it is what makes 512 → 65 instead of 64.
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=(style == "caffe"))

        # (planes, stride of the first block, dilation of the first block, dilation of the rest)
        if output_stride == 32:  # the classification net: every stage after the first halves
            stages = ((64, 1, 1, 1), (128, 2, 1, 1), (256, 2, 1, 1), (512, 2, 1, 1))
        elif style == "caffe":
            stages = ((64, 1, 1, 1), (128, 2, 1, 1), (256, 1, 2, 2), (512, 1, 4, 4))
        else:  # torchvision replace_stride_with_dilation=[False, True, True]
            stages = ((64, 1, 1, 1), (128, 2, 1, 1), (256, 1, 1, 2), (512, 1, 2, 4))
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            self._make_layer(block, n, *stage) for n, stage in zip(blocks, stages)
        )
        self.layer3_channels = 256 * block.expansion
        self.layer4_channels = 512 * block.expansion
        self._init_weights()

    def _make_layer(self, block: type[nn.Module], n_blocks: int, planes: int, stride: int,
                    first_dilation: int, dilation: int) -> nn.Sequential:
        out_ch = planes * block.expansion
        downsample = None
        if stride != 1 or self._in_ch != out_ch:
            downsample = nn.Sequential(_conv1x1(self._in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))
        layers = [block(self._in_ch, planes, stride, first_dilation, downsample, style=self.style)]
        self._in_ch = out_ch
        layers += [block(out_ch, planes, 1, dilation, style=self.style) for _ in range(1, n_blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> BackboneOutput:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        c3 = self.layer3(x)
        c4 = self.layer4(c3)
        return BackboneOutput(c3, c4)


def resnet_backbone(depth: int = 101, style: str = "caffe", output_stride: int = 8) -> ResNetBackbone:
    """Build a ResNet backbone (``depth`` ∈ {18, 50, 101}, ``style`` ∈ STYLES, ``output_stride`` 8 or 32)."""
    return ResNetBackbone(depth, style, output_stride)
