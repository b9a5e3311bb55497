"""Softmax probabilities of a segmentor at a requested size, with test-time augmentation.

One function, :func:`predict_probs`, serves evaluation, ``udaseg predict`` and the report, and
one, :func:`forward_options`, reads from a checkpoint's config how its network is run (input
normalisation, autocast dtype, memory format), so evaluation and ``predict`` can never disagree
about how a prediction is made:

- the uint8 batch is normalised once, at its own size (per-image statistics are the image's);
- for each scale, the normalised input is resized (bilinear) and run either whole or as
  overlapping windows (``window``; a config's ``eval.window`` / ``eval.stride``, read by
  :func:`config_window`: HRDA's test-time slide); window logits are averaged where windows overlap;
- logits are upsampled bilinearly with ``align_corners=True`` (as ADVENT / AdaptSegNet / FADA
  upsample to the label size), turned into softmax at the output size, and the softmax is
  averaged over scales and over the horizontally flipped view.

    probs = predict_probs(model, images, "caffe", (1024, 2048), flip=True, scales=(0.75, 1.0, 1.25))
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from udaseg.engine.device_defaults import AMP_DTYPES, resolve_amp
from udaseg.engine.inputs import normalize_images

Size = tuple[int, int]  # (H, W), torch's order



@dataclass(frozen=True)
class ForwardOptions:
    """How a checkpoint's network is run at test time: ``norm`` (its input normalisation,
    ``udaseg.engine.inputs``), ``autocast_dtype`` (``train.amp``; None: float32) and
    ``channels_last`` (``train.channels_last``: the input's memory format)."""

    norm: str
    autocast_dtype: torch.dtype | None = None
    channels_last: bool = False


def forward_options(cfg: dict, device=None) -> ForwardOptions:
    """The :class:`ForwardOptions` of a resolved config: what evaluation and ``udaseg predict``
    both pass to :func:`predict_probs`, so that the two make the same prediction of an image
    (bf16 results depend on the memory format: predict without ``channels_last`` differed from
    evaluation on 0.11 % of the pixels). ``device``: resolves ``train.amp=auto``."""
    tc = cfg["train"]
    amp = tc["amp"]
    if amp == "auto":
        amp = resolve_amp(amp, torch.device(device if device is not None else "cpu"))
    if amp not in AMP_DTYPES:
        raise ValueError(f"config key 'train.amp' is {amp!r}; expected one of {', '.join(AMP_DTYPES)}")
    return ForwardOptions(norm=cfg["model"]["input_norm"], autocast_dtype=AMP_DTYPES[amp],
                          channels_last=bool(tc["channels_last"]))


def config_window(cfg: dict) -> tuple[Size | None, Size | None]:
    """(window, stride) of a resolved config's ``eval.window`` / ``eval.stride`` — (W, H) there,
    like every size in a config — in torch's (H, W) order for :func:`predict_probs`; None where
    unset (older configs: no keys)."""
    ec = cfg["eval"]
    hw = lambda s: None if s is None else (int(s[1]), int(s[0]))  # noqa: E731
    return hw(ec.get("window")), hw(ec.get("stride"))


def _upsample(logits: torch.Tensor, size: Size) -> torch.Tensor:
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=True)


def _forward(model, x: torch.Tensor, autocast_dtype) -> torch.Tensor:
    with torch.autocast(x.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        out = model(x)
    logits = out.logits if hasattr(out, "logits") else out
    return logits.float()


def _window_starts(length: int, window: int, stride: int) -> list[int]:
    """Window origins covering [0, length): regular steps, the last one flush with the end."""
    if length <= window:
        return [0]
    starts = list(range(0, length - window, stride))
    return starts + [length - window]


def sliding_logits(model, x: torch.Tensor, window: Size, stride: Size | None = None, *,
                   autocast_dtype=None) -> torch.Tensor:
    """Logits of a normalised input (N, C, H, W) at the input's own size, from overlapping
    ``window`` (h, w) crops; where windows overlap their logits are averaged (mmseg's
    ``slide_inference``). ``stride`` defaults to 2/3 of the window. An input no larger than the
    window is run whole and its logits are returned at the network's output stride, so that a
    window ≥ image gives exactly the plain prediction."""
    h, w = x.shape[-2:]
    wh, ww = window
    if h <= wh and w <= ww:
        return _forward(model, x, autocast_dtype)
    sh, sw = stride or (max(1, wh * 2 // 3), max(1, ww * 2 // 3))
    total, count = None, x.new_zeros(1, 1, h, w)
    for y in _window_starts(h, wh, sh):
        for x0 in _window_starts(w, ww, sw):
            crop = x[..., y:y + wh, x0:x0 + ww]
            logits = _upsample(_forward(model, crop, autocast_dtype), crop.shape[-2:])
            if total is None:
                total = x.new_zeros(x.shape[0], logits.shape[1], h, w)
            total[..., y:y + crop.shape[-2], x0:x0 + crop.shape[-1]] += logits
            count[..., y:y + crop.shape[-2], x0:x0 + crop.shape[-1]] += 1
    return total / count


def _resize_input(x: torch.Tensor, scale: float) -> torch.Tensor:
    if scale == 1.0:
        return x
    h, w = x.shape[-2:]
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    # antialias when shrinking, as the Pillow resize of the data pipeline does
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=scale < 1.0)


@torch.no_grad()
def predict_probs(model, images: torch.Tensor, norm: str, size: Size | None = None, *,
                  flip: bool = False, scales: Sequence[float] = (1.0,), window: Size | None = None,
                  stride: Size | None = None, autocast_dtype=None, channels_last: bool = False) -> torch.Tensor:
    """Softmax probabilities (N, K, H, W), float32, at ``size`` (default: the input's size).

    images: (N, 3, h, w) uint8 RGB on the model's device; norm: the checkpoint's input
    normalisation (``udaseg.engine.inputs``). flip: average with the horizontally flipped view.
    scales: input scale factors whose softmax is averaged. window / stride: (h, w) of sliding
    windows over the (scaled) input; None runs each input whole. The model should be in eval
    mode (this function does not change it).
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected a (N, 3, H, W) image batch, got shape {tuple(images.shape)}")
    if not scales or any(s <= 0 for s in scales):
        raise ValueError(f"scales must be positive numbers, got {list(scales)}")
    size = tuple(size) if size is not None else tuple(images.shape[-2:])
    x = normalize_images(images, norm)
    probs, n = None, 0
    for scale in scales:
        xs = _resize_input(x, float(scale))
        for flipped in ((False, True) if flip else (False,)):
            v = xs.flip(-1) if flipped else xs
            if channels_last:
                v = v.contiguous(memory_format=torch.channels_last)
            logits = sliding_logits(model, v, window, stride, autocast_dtype=autocast_dtype) if window \
                else _forward(model, v, autocast_dtype)
            p = F.softmax(_upsample(logits, size), dim=1)
            if flipped:
                p = p.flip(-1)
            probs = p if probs is None else probs.add_(p)
            n += 1
    return probs.div_(n)


def parse_pair(text: str | None, what: str) -> tuple[int, int] | None:
    """``"512,256"`` → (512, 256); None stays None. For ``W,H`` command-line options."""
    if text is None:
        return None
    try:
        a, b = (int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise ValueError(f"{what} must look like W,H (two integers), got {text!r}") from None
    if a <= 0 or b <= 0:
        raise ValueError(f"{what} must be positive, got {text!r}")
    return a, b


def parse_scales(text: str | None) -> list[float] | None:
    """``"0.75,1.0,1.25"`` → [0.75, 1.0, 1.25]; None stays None."""
    if text is None:
        return None
    try:
        scales = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--scales must be comma-separated numbers, got {text!r}") from None
    if not scales or any(s <= 0 for s in scales):
        raise ValueError(f"--scales must be positive numbers, got {text!r}")
    return scales
