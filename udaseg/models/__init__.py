"""Segmentors and discriminators, built by name.

    model = build_segmentor("deeplabv2_resnet101", num_classes=19)             # ADVENT-style net
    model = build_segmentor("deeplabv2_resnet101_tv", 19, multi_level=False,
                            pretrained="weights/resnet101-63fe2227.pth")       # FADA-style net
    model = build_segmentor("deeplabv2_resnet101", 19, pretrained="deeplab_imagenet")  # by name, cached
    D = build_discriminator("fine_grained", model.feature_channels, 19)

Arch names: ``deeplabv2_resnet{18,50,101}`` = Caffe/DeepLab-style backbone (ADVENT, AdaptSegNet),
``..._tv`` = torchvision-style backbone (FADA). See ``backbones.py`` for the difference.
Transformer archs (``available_transformer_segmentors()``): ``daformer_mitb{0..5}`` = MiT encoder +
DAFormer head, ``segformer_mitb{0..5}`` = MiT encoder + SegFormer all-MLP head (``mit.py``,
``heads.py``, ``transformer_segmentor.py``); output stride 4, no auxiliary head, ``pretrained`` =
a local original-layout ``mit_bX.pth`` or the name ``"mit_bX"`` (downloaded once into the cache):

    model = build_segmentor("daformer_mitb5", 19, multi_level=False, bn_mode="trainable",
                            pretrained="pretrained/mit_b5.pth")

HRDA (``hrda.py``): the same arch wrapped for multi-resolution training and inference, with a
scale-attention head (``daformer_mitbX`` only):

    model = build_segmentor("daformer_mitb5", 19, multi_level=False, hrda={"enabled": True})
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
    ExtraPrediction,
    LoadReport,
    SegmentorOutput,
    detect_layout,
    load_pretrained,
    sha256sum,
)
from .discriminators import BinaryDiscriminator, FineGrainedDiscriminator
from .heads import SEGFORMER_EMBED_DIMS, DAFormerHead, SegFormerHead
from .hrda import HRDASegmentor, build_hrda
from .mit import MIT_CONFIGS, MixVisionTransformer, build_mit, load_mit_pretrained
from .transformer_segmentor import TRANSFORMER_BN_MODES, TransformerSegmentor
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

# arch name -> (MiT variant, head kind)
TRANSFORMER_SEGMENTORS: dict[str, tuple[str, str]] = {
    f"{head}_mitb{i}": (f"mit_b{i}", head) for head in ("daformer", "segformer") for i in range(6)
}

DISCRIMINATORS: dict[str, Callable[..., nn.Module]] = {
    "fine_grained": lambda in_channels, num_classes, **kw: FineGrainedDiscriminator(in_channels, num_classes, **kw),
    "binary": lambda in_channels, num_classes=None, **kw: BinaryDiscriminator(in_channels, **kw),
}


def available_segmentors() -> list[str]:
    """Every arch name accepted by ``build_segmentor``: the DeepLab-V2 ones, then the transformer
    ones (``available_transformer_segmentors()``)."""
    return [*SEGMENTORS, *TRANSFORMER_SEGMENTORS]


def available_transformer_segmentors() -> list[str]:
    """MiT + DAFormer / SegFormer head names accepted by ``build_segmentor``."""
    return list(TRANSFORMER_SEGMENTORS)


def available_discriminators() -> list[str]:
    """Kinds accepted by ``build_discriminator``."""
    return list(DISCRIMINATORS)


def build_segmentor(arch: str, num_classes: int, multi_level: bool | None = None, bn_mode: str | None = None,
                    pretrained: str | os.PathLike | None = None, *,
                    pretrained_sha256: str | None = None, aspp_impl: str = "taps",
                    input_norm: str | None = None,
                    feature_stage: int | None = None,
                    hrda: dict | None = None) -> DeepLabV2 | TransformerSegmentor | HRDASegmentor:
    """Build a segmentor by name, optionally initialised from a weight file.

    Args:
        arch: one of ``available_segmentors()``: DeepLab-V2, or one of
            ``available_transformer_segmentors()`` (MiT + DAFormer / SegFormer head).
        num_classes: K (19 for GTA5→Cityscapes, 16 for SYNTHIA→Cityscapes).
        multi_level: add the layer3 auxiliary head (DeepLab-V2; default True). The transformer
            archs have none: None or False only.
        bn_mode: ``"frozen"`` | ``"frozen_affine"`` | ``"trainable"`` | ``"sync"`` (see DeepLabV2;
            default ``"frozen"``). Transformer archs: ``"trainable"`` (default) or ``"sync"`` for
            the decode head's BN (see ``TransformerSegmentor``).
        pretrained: local path (Caffe DeepLab, torchvision or udaseg layout; see
            ``load_pretrained``), or a name of ``available_pretrained()`` (``"deeplab_imagenet"``,
            ``"torchvision_resnet101"``), downloaded once into ``$UDASEG_CACHE`` (default
            ``~/.cache/udaseg``; see ``weights.resolve_pretrained``). An existing path wins over a
            name; transformer archs: ``"mit_b0"`` … ``"mit_b5"`` for their variant. The load report
            is kept as ``model.init_report``.
        pretrained_sha256: expected SHA-256 of ``pretrained`` (for a name: replaces the table's
            checksum, e.g. to pin ADVENT's file, which has no published digest).
        aspp_impl: ``"taps"`` (fast, default) or ``"dilated_conv"`` (see ``ASPPClassifier``).
        input_norm: when given and ``pretrained`` is a name, it must be the ``model.input_norm``
            the named weights expect (``"caffe"`` / ``"imagenet"``); not checked for paths.
        feature_stage: transformer archs only: the MiT stage (1–4, default 4) returned as
            ``features``.
        hrda: a ``model.hrda`` config section (``udaseg.config.DEFAULTS``); when it is given with
            ``enabled: true``, the segmentor is wrapped in ``HRDASegmentor`` (``build_hrda``; keys
            left out take HRDA's defaults). ``daformer_mitbX`` archs only.

    Transformer archs: ``pretrained`` (a local path, or a name the weights table lists for the
    arch) is loaded into the encoder by ``load_mit_pretrained`` (original NVlabs / smp layout,
    strict, ``head.*`` skipped); ``aspp_impl`` does not apply and is ignored.

    The returned model has ``model.arch`` set to ``arch``.
    """
    if hrda is not None and hrda.get("enabled"):
        if arch not in TRANSFORMER_SEGMENTORS or TRANSFORMER_SEGMENTORS[arch][1] != "daformer":
            raise ValueError(f"HRDA (model.hrda.enabled) needs a daformer_mitbX arch, got {arch!r}: lhoyer/HRDA "
                             f"defines its scale attention for DAFormerHead and DLV2Head only (hrda_head.py)")
        base = _build_transformer(arch, num_classes, multi_level, bn_mode, pretrained, pretrained_sha256,
                                  input_norm, feature_stage)
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in hrda.items() if k != "enabled"}
        model = build_hrda(base, num_classes=num_classes, **kw)
        model.arch, model.init_report = arch, base.init_report
        return model
    if arch in TRANSFORMER_SEGMENTORS:
        return _build_transformer(arch, num_classes, multi_level, bn_mode, pretrained, pretrained_sha256,
                                  input_norm, feature_stage)
    if arch not in SEGMENTORS:
        raise ValueError(f"unknown segmentor arch {arch!r}; available: "
                         f"{', '.join([*SEGMENTORS, *TRANSFORMER_SEGMENTORS])}")
    if feature_stage is not None:
        raise ValueError(f"feature_stage applies to the transformer archs only, not {arch!r} "
                         "(DeepLab-V2 features are layer4)")
    multi_level = True if multi_level is None else multi_level
    bn_mode = "frozen" if bn_mode is None else bn_mode
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


def _build_transformer(arch, num_classes, multi_level, bn_mode, pretrained, pretrained_sha256, input_norm,
                       feature_stage) -> TransformerSegmentor:
    if multi_level:
        raise ValueError(f"{arch} has no auxiliary head: set model.multi_level=false")
    variant, head_kind = TRANSFORMER_SEGMENTORS[arch]
    encoder = build_mit(variant)
    if head_kind == "daformer":
        head = DAFormerHead(encoder.embed_dims, num_classes)
    else:
        head = SegFormerHead(encoder.embed_dims, num_classes, embed_dim=SEGFORMER_EMBED_DIMS[variant])
    model = TransformerSegmentor(encoder, head, num_classes, bn_mode="trainable" if bn_mode is None else bn_mode,
                                 feature_stage=4 if feature_stage is None else feature_stage)
    model.arch = arch
    model.init_report = None
    if pretrained is not None:
        if is_pretrained_name(pretrained):  # only names the weights table lists for this arch (else ValueError)
            path = resolve_pretrained(pretrained, arch, input_norm=input_norm, sha256=pretrained_sha256)
            model.init_report = load_mit_pretrained(model, path)
        else:  # a path: checked (exists? checksum?) by load_mit_pretrained
            path = resolve_pretrained(pretrained, arch)
            model.init_report = load_mit_pretrained(model, path, sha256=pretrained_sha256)
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
    "DAFormerHead",
    "DISCRIMINATORS",
    "DeepLabV2",
    "ExtraPrediction",
    "FineGrainedDiscriminator",
    "HRDASegmentor",
    "LAYOUTS",
    "LoadReport",
    "MIT_CONFIGS",
    "MixVisionTransformer",
    "PRETRAINED_WEIGHTS",
    "PretrainedWeights",
    "ResNetBackbone",
    "SEGFORMER_EMBED_DIMS",
    "SEGMENTORS",
    "SegFormerHead",
    "SegmentorOutput",
    "TRANSFORMER_BN_MODES",
    "TRANSFORMER_SEGMENTORS",
    "TransformerSegmentor",
    "WeightsChecksumError",
    "WeightsDownloadError",
    "available_discriminators",
    "available_pretrained",
    "available_segmentors",
    "available_transformer_segmentors",
    "build_discriminator",
    "build_hrda",
    "build_mit",
    "build_segmentor",
    "detect_layout",
    "is_pretrained_name",
    "load_mit_pretrained",
    "load_pretrained",
    "resolve_pretrained",
    "sha256sum",
]
