"""HRDA (Hoyer et al., ECCV'22): multi-resolution training and inference around a segmentor.

A large, downscaled *context* crop and a small *detail* crop at full resolution go through the
same encoder and decode head; a second head, run on the context features, predicts a *scale
attention* a ∈ [0, 1] (sigmoid) that fuses the two predictions. References, called "the
reference" below: ``lhoyer/HRDA:mmseg/models/segmentors/hrda_encoder_decoder.py``
(``HRDAEncoderDecoder``), ``mmseg/models/decode_heads/hrda_head.py`` (``HRDAHead``) and the final
config ``configs/hrda/gtaHR2csHR_hrda.py``.

Training (``forward`` in train mode; input = the outer training crop, 1024×1024 at the paper's size):

- context: the whole input downscaled by 0.5 (``scales=[1, 0.5]``; bilinear, ``align_corners=False``
  as mmseg's ``resize``) → 512×512 → encoder → head → LR logits; the same features → attention head;
- detail: a random ``hr_crop_size`` = 512×512 crop of the full-resolution input, its origin a
  multiple of ``crop_coord_divisible`` = 8 (output stride 4 × downscale 2, so that the box falls
  on whole cells of both logit grids), one box per batch drawn from the global torch RNG
  (``get_crop_bbox``: offsets ``randint((margin + 1) // 8) · 8``, height first) → encoder → head;
- fusion (:func:`fuse_scales`): a is set to 0 outside the detail box (at the context resolution),
  ``fused = up(a) ⊙ insert(detail) + up((1 − a) ⊙ context)`` with ``up`` = bilinear ×2,
  ``insert`` = the detail logits placed at the box, zeros elsewhere — so outside the box the
  prediction is the upsampled context prediction alone;
- loss: ``(1 − λ_d − λ_l)·L(fused) + λ_d·L(detail, labels cut to the box) [+ λ_l·L((1 − a)⊙context)]``,
  λ_d = ``hr_loss_weight`` = 0.1, λ_l = ``lr_loss_weight`` = 0 (``HRDAHead.losses``; its LR term
  takes the attention-weighted LR logits, as there). The segmentor returns the fused logits as
  ``logits`` and the detail logits as an :class:`ExtraPrediction`; the loss helper every method and
  the self-training passes call (``udaseg.methods.base.prediction_terms``) splits the loss — so the
  same weighting reaches the source CE, the ClassMix loss and MIC's loss, each pass with its own
  random detail crop, as in the reference (whose ``forward_train`` draws one per call);
- ``features`` = the context features (``feature_scale=0.5``: DAFormer's feature distance on the LR
  features, with the label pooled from the full-resolution crop).

Inference (eval mode: evaluation, ``predict``, and the EMA teacher's pseudo-labels, which the
reference makes with the same ``encode_decode`` on the 1024×1024 target crop): the context is the
whole input at 0.5; the detail prediction comes from overlapping ``hr_crop_size`` windows over the
whole full-resolution input, stride half a window (``hr_slide_inference=True``,
``hr_slide_overlapping=True``: ``extract_slide_feat``; windows batched, logits averaged where they
overlap); no box, so the attention is used everywhere. The outer sliding window of the test
(``test_cfg mode='slide'``, 1024×1024 windows, stride 512) is the evaluation's ``eval.window`` /
``eval.stride`` (``udaseg.engine.inference.sliding_logits``), each window being one such forward.
Returned logits are at output stride 4 of the input. An input whose sides are not multiples of 8
is padded at the bottom/right (zeros of the normalised input, the mean colour), its fused logits
upsampled to the padded size (bilinear, ``align_corners=False``, as ``encode_decode``) and cut back
to the input: then ``logits`` are at the input's full resolution.

Where this differs from the reference: the crop box is drawn from torch's RNG (restored on resume)
instead of numpy's and lives in the forward's output, not in class attributes shared by student
and teacher; a training input must have sides that are multiples of 8 and at least the detail crop
(the reference fails later, or crops short); inputs of any size are accepted at inference.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from udaseg.models.deeplabv2 import ExtraPrediction, SegmentorOutput
from udaseg.models.transformer_segmentor import TransformerSegmentor

Box = tuple[int, int, int, int]  # (y1, y2, x1, x2), the reference's crop_bbox order

# The defaults, each from the reference (lhoyer/HRDA):
SCALES = (1.0, 0.5)  # configs/hrda/gtaHR2csHR_hrda.py scales=[1, 0.5] (detail, context)
HR_CROP_SIZE = (512, 512)  # gtaHR2csHR_hrda.py hr_crop_size=[512, 512]
CROP_COORD_DIVISIBLE = 8  # gtaHR2csHR_hrda.py crop_coord_divisible=8
HR_LOSS_WEIGHT = 0.1  # gtaHR2csHR_hrda.py decode_head hr_loss_weight=0.1
LR_LOSS_WEIGHT = 0.0  # mmseg/models/decode_heads/hrda_head.py HRDAHead lr_loss_weight=0 (not set by the config)
ATTENTION_EMBED_DIM = 256  # hrda_head.py attention_embed_dim=256
ATTENTION_CLASSWISE = True  # gtaHR2csHR_hrda.py attention_classwise=True
HR_SLIDE_INFERENCE = True  # gtaHR2csHR_hrda.py hr_slide_inference=True
HR_SLIDE_OVERLAPPING = True  # mmseg/models/segmentors/hrda_encoder_decoder.py hr_slide_overlapping=True
TEST_WINDOW = (1024, 1024)  # gtaHR2csHR_hrda.py test_cfg crop_size=[1024, 1024] (eval.window)
TEST_STRIDE = (512, 512)  # gtaHR2csHR_hrda.py test_cfg stride=[512, 512] (eval.stride)


def check_hrda_settings(scales: Sequence[float], hr_crop_hw: Sequence[int], crop_coord_divisible: int,
                        hr_loss_weight: float, lr_loss_weight: float, fixed_attention: float | None,
                        output_stride: int = 4) -> int:
    """Raise ``ValueError`` naming the ``model.hrda`` key that cannot work; return the context
    downscale factor f (2 for scales [1, 0.5])."""
    s = sorted(float(v) for v in scales)
    if len(s) != 2 or s[1] != 1.0 or not 0.0 < s[0] < 1.0:
        raise ValueError(f"config key 'model.hrda.scales' must be [1, s] with 0 < s < 1 (the detail crop at full "
                         f"resolution, the context at s; HRDA: [1, 0.5]), got {list(scales)!r}")
    factor = round(1.0 / s[0])
    if abs(factor * s[0] - 1.0) > 1e-9:
        raise ValueError(f"config key 'model.hrda.scales': the context scale {s[0]} must be 1/n for an integer n, so "
                         f"that the two logit grids align")
    unit = output_stride * factor  # one context logit cell, in input pixels
    if not isinstance(crop_coord_divisible, int) or crop_coord_divisible < 1 or crop_coord_divisible % unit:
        raise ValueError(f"config key 'model.hrda.crop_coord_divisible' must be a multiple of {unit} (output stride "
                         f"{output_stride} × context downscale {factor}, so the detail box falls on whole cells of "
                         f"both logit grids; HRDA: 8), got {crop_coord_divisible!r}")
    if len(hr_crop_hw) != 2 or any(not isinstance(v, int) or v < 1 or v % unit for v in hr_crop_hw):
        raise ValueError(f"config key 'model.hrda.hr_crop_size' must be two positive multiples of {unit} (output "
                         f"stride {output_stride} × context downscale {factor}), got {list(hr_crop_hw)!r}")
    for key, v in (("hr_loss_weight", hr_loss_weight), ("lr_loss_weight", lr_loss_weight)):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"config key 'model.hrda.{key}' must be in [0, 1], got {v!r}")
    if hr_loss_weight + lr_loss_weight > 1.0:
        raise ValueError(f"config keys 'model.hrda.hr_loss_weight' + 'model.hrda.lr_loss_weight' must be at most 1 "
                         f"(the fused prediction keeps 1 − their sum), got {hr_loss_weight} + {lr_loss_weight}")
    if fixed_attention is not None and not 0.0 <= fixed_attention <= 1.0:
        raise ValueError(f"config key 'model.hrda.fixed_attention' must be null or in [0, 1], got {fixed_attention!r}")
    return factor


def crop_box(h: int, w: int, crop_hw: Sequence[int], divisible: int = 1, generator=None) -> Box:
    """A random (y1, y2, x1, x2) box of ``crop_hw`` inside an h×w image, its origin a multiple of
    ``divisible`` (the reference's ``get_crop_bbox``: the whole image when it is the crop's size,
    else offsets ``randint(0, (margin + 1) // divisible) · divisible``, y first; at least one
    position where the reference's numpy call would fail). Draws from ``generator`` or torch's
    global RNG."""
    ch, cw = int(crop_hw[0]), int(crop_hw[1])
    if (h, w) == (ch, cw):
        return 0, h, 0, w
    n_y = max(1, (max(h - ch, 0) + 1) // divisible)
    n_x = max(1, (max(w - cw, 0) + 1) // divisible)
    y = int(torch.randint(n_y, (1,), generator=generator)) * divisible
    x = int(torch.randint(n_x, (1,), generator=generator)) * divisible
    return y, y + ch, x, x + cw


def crop(t: torch.Tensor, box: Box) -> torch.Tensor:
    """``t[..., y1:y2, x1:x2]`` (the reference's ``crop``)."""
    y1, y2, x1, x2 = box
    return t[..., y1:y2, x1:x2]


def slide_boxes(h: int, w: int, window_hw: Sequence[int], stride_hw: Sequence[int]) -> list[Box]:
    """mmseg's sliding-window grid (``slide_inference`` / HRDA ``extract_slide_feat``):
    ⌈(h − window) / stride⌉ + 1 rows of windows, the last one flush with the end, a window no
    larger than the image; row-major order."""
    ch, cw = window_hw
    sh, sw = stride_hw
    boxes = []
    for i in range(max(h - ch + sh - 1, 0) // sh + 1):
        for j in range(max(w - cw + sw - 1, 0) // sw + 1):
            y2, x2 = min(i * sh + ch, h), min(j * sw + cw, w)
            y1, x1 = max(y2 - ch, 0), max(x2 - cw, 0)
            boxes.append((y1, y2, x1, x2))
    return boxes


def _up(t: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False)


def fuse_scales(lr_logits: torch.Tensor, attention: torch.Tensor, hr_logits: torch.Tensor, box: Box | None = None,
                factor: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """HRDA's scale fusion (``HRDAHead.forward``)::

        a     = attention · 1[box]                    at the context resolution (box / factor)
        fused = up(a) ⊙ insert(hr) + up((1 − a) ⊙ lr)

    lr_logits (N, K, h, w): context prediction; attention (N, K or 1, h, w) in [0, 1];
    hr_logits: the detail prediction of ``box`` = (y1, y2, x1, x2) in cells of the fused grid
    (factor·h × factor·w; each a multiple of ``factor``), or of the whole fused grid when ``box``
    is None (then the attention is not masked). ``up``: bilinear to the fused grid,
    ``align_corners=False``; ``insert``: zeros outside the box. Returns (fused (N, K, factor·h,
    factor·w), the attention-weighted context logits (1 − a) ⊙ lr at (h, w), the reference's
    ``lr_seg`` output).

    Example: with a = 1 in the box, the fused logits there are the detail logits plus what the
    bilinear upsampling of (1 − a)·lr carries in from outside the box near its edge.
    """
    n, _, h, w = lr_logits.shape
    size = (h * factor, w * factor)
    att = attention
    if box is not None:
        if any(v % factor for v in box):
            raise ValueError(f"the detail box {box} must lie on multiples of {factor} fused cells")
        y1, y2, x1, x2 = box
        if hr_logits.shape[-2:] != (y2 - y1, x2 - x1) or y2 > size[0] or x2 > size[1]:
            raise ValueError(f"detail logits {tuple(hr_logits.shape[-2:])} do not fill box {box} of the fused "
                             f"grid {size}")
        mask = lr_logits.new_zeros((n, 1, h, w))
        mask[:, :, y1 // factor:y2 // factor, x1 // factor:x2 // factor] = 1
        att = att * mask
        hr_logits = F.pad(hr_logits, (x1, size[1] - x2, y1, size[0] - y2))
    elif tuple(hr_logits.shape[-2:]) != size:
        raise ValueError(f"detail logits {tuple(hr_logits.shape[-2:])} must cover the fused grid {size}")
    lr_weighted = (1 - att) * lr_logits
    return _up(att, size) * hr_logits + _up(lr_weighted, size), lr_weighted


class HRDAHead(nn.Module):
    """The ``decode_head`` of an HRDA segmentor: ``head``, the segmentor's own decode head shared by
    both scales, and ``scale_attention``, a second head whose sigmoid is the attention (None with
    ``fixed_attention``, the reference's ablation: a constant). Parameter names as the reference's
    ``HRDAHead`` (``decode_head.head.*``, ``decode_head.scale_attention.*``), so both match
    DAFormer's ``head`` lr-multiplier key."""

    def __init__(self, head: nn.Module, scale_attention: nn.Module | None, fixed_attention: float | None = None):
        super().__init__()
        if (scale_attention is None) == (fixed_attention is None):
            raise ValueError("HRDAHead needs exactly one of a scale-attention head and a fixed attention")
        self.head, self.scale_attention = head, scale_attention
        self.fixed_attention = fixed_attention
        self.num_classes = getattr(head, "num_classes", None)

    def attention(self, feats, like: torch.Tensor) -> torch.Tensor:
        """σ(scale_attention(feats)) — or the fixed value, shaped like ``like[:, :1]``."""
        if self.scale_attention is None:
            return torch.full_like(like[:, :1], float(self.fixed_attention))
        return torch.sigmoid(self.scale_attention(feats))


class HRDASegmentor(nn.Module):
    """HRDA around an encoder + decode head segmentor (``TransformerSegmentor``; see the module
    docstring). Children ``backbone`` (the segmentor's encoder) and ``decode_head``
    (:class:`HRDAHead`): the reference's parameter names, so its optimiser keys mean the same.

    Args:
        segmentor: the single-scale segmentor whose ``backbone`` and ``decode_head`` are used.
        scale_attention: the attention head (same input as ``decode_head``; K or 1 output
            channels), or None with ``fixed_attention``.
        scales: [1, s]: detail at full resolution, context at s (0.5).
        hr_crop_hw: (h, w) of the detail crop in training and of the detail windows at inference.
        crop_coord_divisible: the detail box's origin is a multiple of it (8).
        hr_loss_weight, lr_loss_weight: λ_d (0.1), λ_l (0).
        hr_slide_inference: inference: detail prediction from sliding windows (True) or from the
            whole full-resolution input (False).
        hr_slide_overlapping: windows at stride half a window (True) or a whole window.

    Same contract as ``TransformerSegmentor``: ``forward(x)`` → ``SegmentorOutput`` (train mode:
    fused logits at stride 4, the detail logits in ``extra``, context features; eval mode: see the
    module docstring), ``param_groups`` (DAFormer's keys: both heads at lr × 10), ``feature_stage``,
    ``feature_channels``, ``multi_level = False``.

    Example::

        model = build_segmentor("daformer_mitb5", 19, multi_level=False,
                                hrda={"enabled": True})   # defaults of gtaHR2csHR_hrda.py
        out = model.train()(images)   # 1024×1024 crops: out.logits (N, 19, 256, 256),
                                      # out.extra[0].logits (N, 19, 128, 128) of a 512×512 box
    """

    multi_level = False

    def __init__(self, segmentor: TransformerSegmentor, scale_attention: nn.Module | None, *,
                 scales: Sequence[float] = SCALES, hr_crop_hw: Sequence[int] = HR_CROP_SIZE,
                 crop_coord_divisible: int = CROP_COORD_DIVISIBLE, hr_loss_weight: float = HR_LOSS_WEIGHT,
                 lr_loss_weight: float = LR_LOSS_WEIGHT, fixed_attention: float | None = None,
                 hr_slide_inference: bool = HR_SLIDE_INFERENCE, hr_slide_overlapping: bool = HR_SLIDE_OVERLAPPING):
        super().__init__()
        self.output_stride = getattr(segmentor, "output_stride", 4)
        self.factor = check_hrda_settings(scales, hr_crop_hw, crop_coord_divisible, hr_loss_weight, lr_loss_weight,
                                          fixed_attention, self.output_stride)
        self.context_scale = min(float(s) for s in scales)
        self.hr_crop_hw = (int(hr_crop_hw[0]), int(hr_crop_hw[1]))
        self.crop_coord_divisible = crop_coord_divisible
        self.hr_loss_weight, self.lr_loss_weight = float(hr_loss_weight), float(lr_loss_weight)
        self.hr_slide_inference, self.hr_slide_overlapping = bool(hr_slide_inference), bool(hr_slide_overlapping)
        self.num_classes, self.bn_mode = segmentor.num_classes, segmentor.bn_mode
        self.feature_stage, self.feature_channels = segmentor.feature_stage, segmentor.feature_channels
        self.backbone = segmentor.backbone
        self.decode_head = HRDAHead(segmentor.decode_head, scale_attention, fixed_attention)

    # the same groups as the single-scale segmentor: every decode_head.* parameter (both heads)
    # matches DAFormer's "head" key, the encoder's norms its "norm" key
    param_groups = TransformerSegmentor.param_groups

    @property
    def size_divisor(self) -> int:
        """Input sides must be multiples of this (one context logit cell, in input pixels)."""
        return self.output_stride * self.factor

    def context_input(self, x: torch.Tensor) -> torch.Tensor:
        """The context crop: ``x`` downscaled by the context scale (mmseg ``resize`` with
        ``scale_factor``: bilinear, ``align_corners=False``, no antialiasing)."""
        return F.interpolate(x, scale_factor=self.context_scale, mode="bilinear", align_corners=False)

    def _features(self, feats) -> torch.Tensor:
        return feats[self.feature_stage - 1]

    def forward(self, x: torch.Tensor) -> SegmentorOutput:
        return self.forward_train(x) if self.training else self.inference(x)

    def forward_train(self, x: torch.Tensor, box: Box | None = None) -> SegmentorOutput:
        """Context + random detail crop (``box`` in input pixels, drawn when None); see the module
        docstring."""
        h, w = x.shape[-2:]
        d, (ch, cw) = self.size_divisor, self.hr_crop_hw
        if h % d or w % d or h < ch or w < cw:
            raise ValueError(f"HRDA trains on images whose sides are multiples of {d} and at least the detail crop "
                             f"{cw}x{ch} (model.hrda.hr_crop_size, W x H), got {w}x{h}: choose such a crop in "
                             f"data.source.transforms / data.target.transforms")
        lr_feats = self.backbone(self.context_input(x))
        if box is None:
            box = crop_box(h, w, self.hr_crop_hw, self.crop_coord_divisible)
        hr_feats = self.backbone(crop(x, box))
        head = self.decode_head
        lr = head.head(lr_feats)
        hr = head.head(hr_feats)
        att = head.attention(lr_feats, lr)
        os = self.output_stride
        fused, lr_weighted = fuse_scales(lr, att, hr, tuple(v // os for v in box), self.factor)
        extra = []
        if self.hr_loss_weight > 0:
            extra.append(ExtraPrediction("hr", hr, tuple(box), self.hr_loss_weight))
        if self.lr_loss_weight > 0:
            extra.append(ExtraPrediction("lr", lr_weighted, None, self.lr_loss_weight))
        return SegmentorOutput(fused, None, self._features(lr_feats), tuple(extra))

    def detail_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Inference's detail prediction of a full-resolution input (sides multiples of the
        output stride): sliding ``hr_crop_size`` windows (all in one batch), logits averaged where
        they overlap, at stride 4 — or the whole input at once without ``hr_slide_inference``."""
        head, os = self.decode_head.head, self.output_stride
        if not self.hr_slide_inference:
            return head(self.backbone(x))
        n, (h, w) = x.shape[0], x.shape[-2:]
        stride = tuple(c // 2 for c in self.hr_crop_hw) if self.hr_slide_overlapping else self.hr_crop_hw
        boxes = slide_boxes(h, w, self.hr_crop_hw, stride)
        logits = head(self.backbone(torch.cat([crop(x, b) for b in boxes])))
        gh, gw = h // os, w // os
        # accumulated in float32 (the reference's preds / count_mat), also under autocast
        total = logits.new_zeros((n, logits.shape[1], gh, gw), dtype=torch.float32)
        count = logits.new_zeros((1, 1, gh, gw), dtype=torch.float32)
        for i, (y1, y2, x1, x2) in enumerate(boxes):
            y1, y2, x1, x2 = y1 // os, y2 // os, x1 // os, x2 // os
            total = total + F.pad(logits[i * n:(i + 1) * n].float(), (x1, gw - x2, y1, gh - y2))
            count[..., y1:y2, x1:x2] += 1
        return total / count

    def inference(self, x: torch.Tensor) -> SegmentorOutput:
        """The whole input as context, the detail from sliding windows (module docstring)."""
        h, w = x.shape[-2:]
        d = self.size_divisor
        pad_h, pad_w = -h % d, -w % d
        xp = F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x
        lr_feats = self.backbone(self.context_input(xp))
        hr = self.detail_logits(xp)
        head = self.decode_head
        lr = head.head(lr_feats)
        fused, _ = fuse_scales(lr, head.attention(lr_feats, lr), hr, None, self.factor)
        if pad_h or pad_w:  # the padded image's prediction at full resolution, cut to the input
            fused = _up(fused, xp.shape[-2:])[..., :h, :w]
        return SegmentorOutput(fused, None, self._features(lr_feats))


def build_hrda(segmentor: TransformerSegmentor, *, num_classes: int, scales=SCALES, hr_crop_size=HR_CROP_SIZE,
               crop_coord_divisible: int = CROP_COORD_DIVISIBLE, hr_loss_weight: float = HR_LOSS_WEIGHT,
               lr_loss_weight: float = LR_LOSS_WEIGHT, attention_classwise: bool = ATTENTION_CLASSWISE,
               attention_embed_dim: int = ATTENTION_EMBED_DIM, fixed_attention: float | None = None,
               hr_slide_inference: bool = HR_SLIDE_INFERENCE,
               hr_slide_overlapping: bool = HR_SLIDE_OVERLAPPING) -> HRDASegmentor:
    """HRDA around a MiT + DAFormer head segmentor. ``hr_crop_size`` is (W, H) like every size in
    a udaseg config. The attention head is a ``DAFormerHead`` with ``embed_dims = channels =
    attention_embed_dim`` and a 1×1 ConvBNReLU fusion instead of the ASPP (``hrda_head.py``:
    ``attn_cfg``), K outputs (``attention_classwise``) or 1, its BN synchronised when the segmentor's
    is (``bn_mode=sync``). The reference defines the attention head for ``DAFormerHead`` and
    ``DLV2Head`` only; SegFormer heads and udaseg's DeepLab-V2 are refused."""
    from udaseg.models.heads import DAFormerHead

    if not isinstance(segmentor, TransformerSegmentor) or not isinstance(segmentor.decode_head, DAFormerHead):
        raise ValueError(f"HRDA (model.hrda.enabled) needs a MiT + DAFormer head segmentor (daformer_mitbX), got "
                         f"{getattr(segmentor, 'arch', type(segmentor).__name__)}: lhoyer/HRDA defines the scale "
                         f"attention for DAFormerHead and DLV2Head only (hrda_head.py), and udaseg's DeepLab-V2 "
                         f"logit grids do not align across scales")
    w, h = hr_crop_size
    check_hrda_settings(scales, (h, w), crop_coord_divisible, hr_loss_weight, lr_loss_weight, fixed_attention)
    attention = None
    if fixed_attention is None:
        if not isinstance(attention_embed_dim, int) or attention_embed_dim < 1:
            raise ValueError(f"config key 'model.hrda.attention_embed_dim' must be a positive integer, "
                             f"got {attention_embed_dim!r}")
        attention = DAFormerHead(segmentor.backbone.embed_dims, num_classes if attention_classwise else 1,
                                 embed_dims=attention_embed_dim, channels=attention_embed_dim, fusion="conv1")
        if segmentor.bn_mode == "sync":
            attention = nn.SyncBatchNorm.convert_sync_batchnorm(attention)
    return HRDASegmentor(segmentor, attention, scales=scales, hr_crop_hw=(h, w),
                         crop_coord_divisible=crop_coord_divisible, hr_loss_weight=hr_loss_weight,
                         lr_loss_weight=lr_loss_weight, fixed_attention=fixed_attention,
                         hr_slide_inference=hr_slide_inference, hr_slide_overlapping=hr_slide_overlapping)


__all__ = ["HRDAHead", "HRDASegmentor", "build_hrda", "check_hrda_settings", "crop", "crop_box", "fuse_scales",
           "slide_boxes"]
