"""What a method is: a small object that turns model outputs into named, weighted losses.

The trainer owns everything else — forward passes, backward, optimiser steps, AMP, DDP — and
calls a method at three points of an iteration:

1. ``source_losses(src)`` — after the source forward (segmenter update);
2. ``target_losses(tgt, discs)`` — after the target forward (segmenter update), with the
   discriminators' parameters frozen, so adversarial terms reach only the segmenter;
3. ``discriminator_losses(src, tgt, discs)`` — on *detached* outputs (discriminator update).

``src`` / ``tgt`` are :class:`Pass` records: the segmenter's output, the labels (None for the
unlabelled target) and the input image size.

Each returns ``{name: (weight, value)}``; the trainer minimises Σ weight·value and logs the raw
values, so the weights stay visible in the logs. ``metrics`` (e.g. discriminator accuracy) are
logged, never optimised.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import torch
from torch import nn

from udaseg import losses as L
from udaseg.models import SegmentorOutput

Terms = dict[str, tuple[float, torch.Tensor]]


class Pass(NamedTuple):
    """One domain's forward pass in an iteration."""

    out: SegmentorOutput
    labels: torch.Tensor | None  # (N, H, W) int64, 255 = ignore; None when unlabelled
    image_size: tuple[int, int]  # (H, W) of the input images

    def detached(self) -> "Pass":
        o = self.out
        out = SegmentorOutput(o.logits.detach(), None if o.aux_logits is None else o.aux_logits.detach(),
                              o.features.detach())
        return Pass(out, self.labels, self.image_size)


class Method:
    name = "base"
    DEFAULTS: dict[str, Any] = {"lambda_seg_aux": 0.1}  # ADVENT/AdaptSegNet LAMBDA_SEG_AUX
    uses_source = True  # the segmenter trains on labelled source images
    uses_target_images = False  # target images pass through the segmenter
    target_needs_grad = True  # False: target forward only refreshes train-mode BN statistics
    uses_target_labels = False  # an oracle: never a domain-adaptation result

    def __init__(self, cfg: dict, num_classes: int, feature_channels: int, multi_level: bool):
        self.cfg = {**self.DEFAULTS, **{k: v for k, v in cfg.items() if k != "name"}}
        self.num_classes = num_classes
        self.feature_channels = feature_channels
        self.multi_level = multi_level

    # -- discriminators ---------------------------------------------------------------------
    def build_discriminators(self) -> dict[str, nn.Module]:
        return {}

    # -- losses -----------------------------------------------------------------------------
    def source_losses(self, src: Pass) -> Terms:
        return self.segmentation_terms(src.out, src.labels)

    def target_losses(self, tgt: Pass, discs: dict[str, nn.Module]) -> Terms:
        return {}

    def discriminator_losses(self, src: Pass, tgt: Pass, discs: dict[str, nn.Module]) -> tuple[Terms, dict[str, float]]:
        """Terms for the discriminators' update, and metrics (e.g. accuracy) to log."""
        return {}, {}

    # -- what the last backward of a step reaches (for DDP) -----------------------------------
    def target_outputs(self) -> set[str]:
        """The segmenter outputs (``logits``, ``aux_logits``, ``features``) through which
        ``target_losses`` send gradient (tests/test_methods.py checks each method's claim)."""
        return set()

    def segmentation_outputs(self) -> set[str]:
        """The outputs ``segmentation_terms`` differentiate."""
        aux = self.multi_level and self.cfg["lambda_seg_aux"] > 0
        return {"logits", "aux_logits"} if aux else {"logits"}

    def ddp_find_unused_parameters(self) -> bool:
        """Whether some head gets no gradient in the step's last segmenter backward — the one DDP
        all-reduces in (the target backward if there is one, else the source backward)."""
        last = self.target_outputs() if self.uses_target_images and self.target_needs_grad else self.segmentation_outputs()
        heads = {"logits", "aux_logits"} if self.multi_level else {"logits"}
        return not heads <= last

    # -- shared pieces ----------------------------------------------------------------------
    def segmentation_terms(self, out: SegmentorOutput, labels: torch.Tensor, prefix: str = "seg") -> Terms:
        """L_seg (eq. 1) on the main head, plus λ_seg_aux × L_seg on the aux head if present
        (and the segmentor's extra predictions with their shares: :func:`prediction_terms`)."""
        terms: Terms = prediction_terms(prefix, 1.0, out, labels, lambda z, y, _: L.segmentation_loss(z, y))
        if out.aux_logits is not None and self.cfg["lambda_seg_aux"] > 0:
            terms[prefix + "_aux"] = (self.cfg["lambda_seg_aux"], L.segmentation_loss(out.aux_logits, labels))
        return terms


def prediction_terms(name: str, weight: float, out: SegmentorOutput, labels: torch.Tensor,
                     loss: Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor], pixel_weight=None) -> Terms:
    """A segmentation loss term of ``out``, split over the segmentor's extra predictions.

    ``loss(logits, labels, pixel_weight)`` → scalar. Without ``out.extra`` (every segmentor but
    HRDA's in training) this is ``{name: (weight, loss(out.logits, labels, pixel_weight))}``. With
    extra predictions e (weights w_e), the main logits keep ``weight·(1 − Σ w_e)`` and each e adds
    ``{name_e.name: (weight·w_e, loss(e.logits, labels and pixel_weight cut to e.box))}`` — HRDA's
    ``L = (1 − λ_d)·L(fused) + λ_d·L(detail crop)`` (``lhoyer/HRDA:mmseg/models/decode_heads/
    hrda_head.py`` ``losses``), for the source loss and the pseudo-label losses alike. The model
    says what to add; methods and components only call this, so no loop file names HRDA."""
    extra = getattr(out, "extra", ())
    if not extra:
        return {name: (weight, loss(out.logits, labels, pixel_weight))}
    share = 1.0 - sum(e.weight for e in extra)
    terms: Terms = {name: (weight * share, loss(out.logits, labels, pixel_weight))}
    for e in extra:
        terms[f"{name}_{e.name}"] = (weight * e.weight, loss(e.logits, e.crop(labels), e.crop(pixel_weight)))
    return terms


def upsample_like(logits: torch.Tensor, size) -> torch.Tensor:
    """Bilinear upsampling with align_corners=True, as ADVENT/AdaptSegNet's ``interp_target``."""
    return torch.nn.functional.interpolate(logits.float(), size=size, mode="bilinear", align_corners=True)


def binary_accuracy(d_logits_s: torch.Tensor, d_logits_t: torch.Tensor) -> float:
    """Fraction of D's outputs on the right side of 0 (source < 0, target > 0)."""
    right = (d_logits_s < 0).sum() + (d_logits_t > 0).sum()
    return float(right) / (d_logits_s.numel() + d_logits_t.numel())
