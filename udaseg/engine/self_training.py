"""Self-training losses and masks: confidence-weighted pseudo-labels (DACS / DAFormer), the
pixel-weighted cross-entropy they train with, and MIC's block masks.

Shapes: N batch, K classes, H×W spatial (h×w: the network's output stride).

Pseudo-labels (DAFormer ``mmseg/models/uda/dacs.py`` ``forward_train``; MIC
``seg/mmseg/models/uda/teacher_module.py`` ``get_pseudo_label_and_weight``; DACS ``trainUDA.py``
``pixel_weight == "threshold_uniform"``), from teacher logits z (N, K, H, W):

    p = softmax(z),  ŷ = argmax_k p,  q = max_k p
    w = |{pixels with q ≥ τ}| / (N·H·W)          one scalar for the whole *batch*
    weight map = w everywhere, then 0 on the first ``ignore_top`` and last ``ignore_bottom`` rows

``ge`` (q ≥ τ, not >) and the per-batch share are the references'; ``per_image=True`` computes the
share per image instead (not a reference setting). τ = 0.968 (DAFormer ``configs/_base_/uda/
dacs.py`` ``pseudo_threshold``; DACS ``trainUDA.py`` hard-codes ``max_probs.ge(0.968)``).
``ignore_top`` / ``ignore_bottom`` default to 0 (``configs/_base_/uda/dacs.py``
``pseudo_weight_ignore_top/bottom``); DAFormer's GTA→Cityscapes run sets 15 / 120 (``configs/
daformer/gta2cs_uda_warm_fdthings_rcs_croppl_a999_daformer_mitb5_s0.py``, "Pseudo-Label Crop":
the rectification artefacts at the top and the ego-car at the bottom of Cityscapes frames).

Loss (DAFormer: mmseg ``CrossEntropyLoss`` with ``seg_weight`` → ``weight_reduce_loss``, reduction
'mean', no avg_factor; DACS ``utils/loss.py`` ``CrossEntropyLoss2dPixelWiseWeighted``:
``torch.mean(loss * pixelWiseWeight)``):

    L = (1 / (N·H·W)) · Σ_pixels weight · CE(z, y)      CE = 0 on ignored pixels (255)

i.e. the mean over *all* pixels: ignored pixels count in the denominator — unlike
``udaseg.losses.segmentation_loss``, which averages over the labelled pixels only.

MIC block masks (``seg/mmseg/models/utils/masking_transforms.py`` ``BlockMaskGenerator``):

    m = [U(N, 1, round(H / b), round(W / b)) > r]  → nearest upsampling to (H, W);  1 = kept

block size b = 64 and mask ratio r = 0.7 (``seg/configs/mic/gtaHR2csHR_mic_hrda.py``
``mask_block_size=64, mask_ratio=0.7``), so about 30 % of the blocks are kept; the masked image is
``image · m``. MIC masks the *normalised* tensor (``mask_image(imgs)`` on DAFormer's normalised
input), so a masked pixel becomes the normalisation mean colour — apply :func:`apply_block_mask`
after ``udaseg.engine.inputs.normalize_images`` to match. The same config: ``mask_mode=
'separatetrgaug'`` (mask the strongly augmented *target* image only), ``mask_lambda=1``,
``mask_alpha='same'`` (the self-training teacher, α = 0.999) and ``mask_pseudo_threshold='same'``
(τ = 0.968): the masked target trains on the teacher's pseudo-labels and weight of the *unmasked*
target (``masking_consistency_module.py``).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from udaseg.data.labels import IGNORE_INDEX

DEFAULT_TAU = 0.968  # DAFormer configs/_base_/uda/dacs.py pseudo_threshold; DACS trainUDA.py ge(0.968)
DEFAULT_IGNORE_TOP = 0  # DAFormer configs/_base_/uda/dacs.py (15 in its GTA→CS "croppl" config)
DEFAULT_IGNORE_BOTTOM = 0  # DAFormer configs/_base_/uda/dacs.py (120 in its GTA→CS "croppl" config)
MIC_BLOCK_SIZE = 64  # MIC seg/configs/mic/gtaHR2csHR_mic_hrda.py mask_block_size
MIC_MASK_RATIO = 0.7  # MIC seg/configs/mic/gtaHR2csHR_mic_hrda.py mask_ratio
MIC_LAMBDA = 1.0  # MIC seg/configs/mic/gtaHR2csHR_mic_hrda.py mask_lambda


def check_tau(tau: float) -> float:
    try:
        t = float(tau)
    except (TypeError, ValueError):
        raise ValueError(f"self_training.tau must be a number in (0, 1], got {tau!r}") from None
    if not 0.0 < t <= 1.0:
        raise ValueError(f"self_training.tau must be in (0, 1], got {tau!r}")
    return t


def check_mask_ratio(ratio: float) -> float:
    try:
        r = float(ratio)
    except (TypeError, ValueError):
        raise ValueError(f"self_training.mic.ratio must be a number in [0, 1), got {ratio!r}") from None
    if not 0.0 <= r < 1.0:
        raise ValueError(f"self_training.mic.ratio must be in [0, 1), got {ratio!r}")
    return r


@torch.no_grad()
def pseudo_labels(teacher_logits: torch.Tensor, tau: float = DEFAULT_TAU, *,
                  ignore_top: int = DEFAULT_IGNORE_TOP, ignore_bottom: int = DEFAULT_IGNORE_BOTTOM,
                  per_image: bool = False, size: tuple[int, int] | None = None,
                  align_corners: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher logits (N, K, h, w) → (labels (N, H, W) int64, weight (N, H, W) float32).

    weight = the share of pixels whose top softmax probability is ≥ τ — over the whole batch
    (the references) or per image (``per_image=True``) — broadcast to every pixel, then zeroed on
    the ``ignore_top`` first and ``ignore_bottom`` last rows (DAFormer's pseudo-label crop; the
    share itself counts every row, as there). ``size`` = (H, W): the logits are first upsampled
    bilinearly to it (the references take the softmax of logits at the input size: DAFormer
    ``encode_decode``, DACS ``interp``); None keeps (h, w).
    """
    tau = check_tau(tau)
    if teacher_logits.dim() != 4:
        raise ValueError(f"teacher_logits must be (N, K, H, W), got {tuple(teacher_logits.shape)}")
    if size is not None and tuple(teacher_logits.shape[-2:]) != tuple(size):
        teacher_logits = F.interpolate(teacher_logits.float(), size=tuple(size), mode="bilinear",
                                       align_corners=align_corners)
    if ignore_top < 0 or ignore_bottom < 0:
        raise ValueError(f"ignore_top / ignore_bottom must be >= 0, got {ignore_top}, {ignore_bottom}")
    prob = torch.softmax(teacher_logits.detach().float(), dim=1)
    conf, labels = prob.max(dim=1)
    confident = conf.ge(tau)
    if per_image:
        share = confident.flatten(1).float().mean(1)  # (N,)
        weight = share.view(-1, 1, 1).expand_as(conf).clone()
    else:
        share = confident.sum().item() / confident.numel()
        weight = torch.full_like(conf, share)
    if ignore_top > 0:
        weight[:, :ignore_top, :] = 0
    if ignore_bottom > 0:
        weight[:, -ignore_bottom:, :] = 0
    return labels, weight


def pixel_weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor,
                                 weight: torch.Tensor | float | None = None, *,
                                 ignore_index: int = IGNORE_INDEX, align_corners: bool = True) -> torch.Tensor:
    """mean over all N·H·W pixels of weight · CE (ignored pixels: 0, still in the denominator).

    logits (N, K, h, w), upsampled bilinearly to the labels' (H, W) with ``align_corners=True``
    like ``udaseg.losses.segmentation_loss`` and ``methods.base.upsample_like`` (ADVENT /
    AdaptSegNet / DACS ``interp``; DAFormer's head uses False); labels (N, H, W) int64; weight
    (N, H, W), a scalar, or None (= 1) → scalar, computed in float32.
    """
    if logits.shape[-2:] != labels.shape[-2:]:
        logits = F.interpolate(logits.float(), size=labels.shape[-2:], mode="bilinear", align_corners=align_corners)
    ce = F.cross_entropy(logits.float(), labels.long(), reduction="none", ignore_index=ignore_index)
    if weight is None:
        return ce.mean()
    if torch.is_tensor(weight):
        weight = weight.to(device=ce.device, dtype=torch.float32)
    return (ce * weight).mean()


@torch.no_grad()
def block_mask(shape, patch: int = MIC_BLOCK_SIZE, ratio: float = MIC_MASK_RATIO,
               generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """MIC's random block mask for images of ``shape`` (N, C, H, W) or (N, H, W): (N, 1, H, W)
    float32, 1 = kept, 0 = masked.

    A grid of round(H / patch) × round(W / patch) blocks (Python ``round``, as MIC; at least 1),
    each kept when its uniform draw exceeds ``ratio``, upsampled with nearest interpolation —
    so when ``patch`` divides H and W every block is exactly patch × patch. Draws come from
    ``generator`` on its own device (a CPU generator: the same mask on every device).
    """
    ratio = check_mask_ratio(ratio)
    if int(patch) < 1:
        raise ValueError(f"self_training.mic.block_size must be >= 1, got {patch!r}")
    shape = tuple(shape)
    if len(shape) not in (3, 4):
        raise ValueError(f"shape must be (N, C, H, W) or (N, H, W), got {shape}")
    n, h, w = shape[0], shape[-2], shape[-1]
    gh, gw = max(1, round(h / patch)), max(1, round(w / patch))
    gen_dev = generator.device if generator is not None else "cpu"
    grid = (torch.rand((n, 1, gh, gw), generator=generator, device=gen_dev) > ratio).float()
    mask = F.interpolate(grid, size=(h, w), mode="nearest")
    return mask.to(device) if device is not None else mask


def apply_block_mask(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``images · mask`` — MIC ``BlockMaskGenerator.mask_image`` (images (N, C, H, W))."""
    return images * mask.to(device=images.device, dtype=images.dtype)


def step_generator(seed: int, iteration: int, stream: int = 0, device="cpu") -> torch.Generator:
    """A ``torch.Generator`` that is a pure function of (seed, iteration, stream).

    For the random draws of one training step (ClassMix, strong augmentation, MIC masks): a
    resumed run redraws exactly what the uninterrupted one drew, with no generator state in the
    checkpoint. ``stream`` separates independent uses within a step.
    """
    entropy = np.random.SeedSequence([int(seed), int(iteration), int(stream), 0x5E1F]).generate_state(2, np.uint64)
    g = torch.Generator(device=device)
    g.manual_seed(int(entropy[0]) & ((1 << 63) - 1))
    return g
