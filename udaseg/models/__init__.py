"""Segmentors and discriminators, built by name.

    model = build_segmentor("deeplabv2_resnet101", num_classes=19)             # ADVENT-style net
    model = build_segmentor("deeplabv2_resnet101_tv", 19, multi_level=False,
                            pretrained="weights/resnet101-63fe2227.pth")       # FADA-style net
    model = build_segmentor("deeplabv2_resnet101", 19, pretrained="deeplab_imagenet")  # by name, cached
    D = build_discriminator("fine_grained", model.feature_channels, 19)

Arch names: ``deeplabv2_resnet{18,50,101}`` = Caffe/DeepLab-style backbone (ADVENT, AdaptSegNet),
``..._tv`` = torchvision-style backbone (FADA). See ``backbones.py`` for the difference.
"""
from __future__ import annotations

import os
from typing import Callable

from torch import nn

from .backbones import BackboneOutput, ResNetBackbone
from .deeplabv2 import (
    BN_MODES,
    LAYOUTS,
    ASPPClassifier,
    DeepLabV2,
    LoadReport,
    SegmentorOutput,
    detect_layout,
    load_pretrained,
    sha256sum,
)
from .discriminators import BinaryDiscriminator, FineGrainedDiscriminator
from .weights import (
    PRETRAINED_WEIGHTS,
    PretrainedWeights,
    WeightsChecksumError,
    WeightsDownloadError,
    available_pretrained,
    is_pretrained_name,
    resolve_pretrained,
)

# arch name -> (ResNet depth, backbone style)
SEGMENTORS: dict[str, tuple[int, str]] = {
    f"deeplabv2_resnet{depth}{suffix}": (depth, style)
    for depth in (101, 50, 18)
    for suffix, style in (("", "caffe"), ("_tv", "torchvision"))
}

DISCRIMINATORS: dict[str, Callable[..., nn.Module]] = {
    "fine_grained": lambda in_channels, num_classes, **kw: FineGrainedDiscriminator(in_channels, num_classes, **kw),
    "binary": lambda in_channels, num_classes=None, **kw: BinaryDiscriminator(in_channels, **kw),
}


def available_segmentors() -> list[str]:
    """Names accepted by ``build_segmentor``."""
    return list(SEGMENTORS)


def available_discriminators() -> list[str]:
    """Kinds accepted by ``build_discriminator``."""
    return list(DISCRIMINATORS)


def build_segmentor(arch: str, num_classes: int, multi_level: bool = True, bn_mode: str = "frozen",
                    pretrained: str | os.PathLike | None = None, *,
                    pretrained_sha256: str | None = None, aspp_impl: str = "taps",
                    input_norm: str | None = None) -> DeepLabV2:
    """Build a DeepLab-V2 segmentor by name, optionally initialised from a weight file.

    Args:
        arch: one of ``available_segmentors()``.
        num_classes: K (19 for GTA5→Cityscapes, 16 for SYNTHIA→Cityscapes).
        multi_level: add the layer3 auxiliary head.
        bn_mode: ``"frozen"`` | ``"frozen_affine"`` | ``"trainable"`` | ``"sync"`` (see DeepLabV2).
        pretrained: local path (Caffe DeepLab, torchvision or udaseg layout; see
            ``load_pretrained``), or a name of ``available_pretrained()`` (``"deeplab_imagenet"``,
            ``"torchvision_resnet101"``), downloaded once into ``$UDASEG_CACHE`` (default
            ``~/.cache/udaseg``; see ``weights.resolve_pretrained``). An existing path wins over a
            name. The load report is kept as ``model.init_report``.
        pretrained_sha256: expected SHA-256 of ``pretrained`` (for a name: replaces the table's
            checksum, e.g. to pin ADVENT's file, which has no published digest).
        aspp_impl: ``"taps"`` (fast, default) or ``"dilated_conv"`` (see ``ASPPClassifier``).
        input_norm: when given and ``pretrained`` is a name, it must be the ``model.input_norm``
            the named weights expect (``"caffe"`` / ``"imagenet"``); not checked for paths.

    The returned model has ``model.arch`` set to ``arch``.
    """
    if arch not in SEGMENTORS:
        raise ValueError(f"unknown segmentor arch {arch!r}; available: {', '.join(SEGMENTORS)}")
    depth, style = SEGMENTORS[arch]
    model = DeepLabV2(ResNetBackbone(depth, style), num_classes, multi_level=multi_level, bn_mode=bn_mode,
                      aspp_impl=aspp_impl)
    model.arch = arch
    model.init_report = None
    if pretrained is not None:
        if is_pretrained_name(pretrained):  # verified (or warned about) by resolve_pretrained
            path = resolve_pretrained(pretrained, arch, input_norm=input_norm, sha256=pretrained_sha256)
            model.init_report = load_pretrained(model, path, layout=PRETRAINED_WEIGHTS[str(pretrained)].layout)
        else:  # a path: checked (exists? checksum?) by load_pretrained; an unknown name fails here
            path = resolve_pretrained(pretrained, arch)
            model.init_report = load_pretrained(model, path, sha256=pretrained_sha256)
    return model


def build_discriminator(kind: str, in_channels: int, num_classes: int | None = None, **kwargs) -> nn.Module:
    """Build a discriminator by kind.

    ``"fine_grained"``: ``FineGrainedDiscriminator(in_channels, num_classes)`` (FADA; usually on
    layer4 features, in_channels = ``model.feature_channels``).
    ``"binary"``: ``BinaryDiscriminator(in_channels)`` (AdaptSegNet / ADVENT; on K-channel output
    space, ``num_classes`` unused). Extra keyword arguments (``ndf``, ``hidden``) pass through.
    """
    if kind not in DISCRIMINATORS:
        raise ValueError(f"unknown discriminator kind {kind!r}; available: {', '.join(DISCRIMINATORS)}")
    if kind == "fine_grained" and num_classes is None:
        raise ValueError("the fine_grained discriminator needs num_classes (it outputs 2K channels)")
    return DISCRIMINATORS[kind](in_channels, num_classes, **kwargs)


__all__ = [
    "ASPPClassifier",
    "BN_MODES",
    "BackboneOutput",
    "BinaryDiscriminator",
    "DISCRIMINATORS",
    "DeepLabV2",
    "FineGrainedDiscriminator",
    "LAYOUTS",
    "LoadReport",
    "PRETRAINED_WEIGHTS",
    "PretrainedWeights",
    "ResNetBackbone",
    "SEGMENTORS",
    "SegmentorOutput",
    "WeightsChecksumError",
    "WeightsDownloadError",
    "available_discriminators",
    "available_pretrained",
    "available_segmentors",
    "build_discriminator",
    "build_segmentor",
    "detect_layout",
    "is_pretrained_name",
    "load_pretrained",
    "resolve_pretrained",
    "sha256sum",
]
