"""The losses of the paper and of its baselines, one small function each.

Shapes: N batch, K classes, H×W spatial. Every function computes in float32 (inputs under bf16
autocast are upcast first) and goes through log-softmax or a clamped log, so no log(0) appears.

Equation numbers refer to the paper ("Unsupervised domain adaptive image semantic segmentation
based on convolutional fine-grained discriminant and entropy minimization").
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from udaseg.data.labels import IGNORE_INDEX

# The smallest probability we take a log of: keeps p·log p and its gradient finite at p = 0.
_TINY = 1e-30

SOURCE, TARGET = "source", "target"


def segmentation_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int = IGNORE_INDEX,
    align_corners: bool = True,
) -> torch.Tensor:
    """Pixel cross-entropy (eq. 1), logits upsampled bilinearly to the label size.

    logits (N, K, h, w), labels (N, H, W) int64 with ``ignore_index`` → scalar mean over the
    labelled pixels; 0 (with a gradient path) when every pixel is ignored, instead of NaN.
    ``align_corners=True`` matches the ADVENT / AdaptSegNet / FADA upsampling.

    >>> segmentation_loss(torch.zeros(1, 19, 8, 8), torch.zeros(1, 64, 64, dtype=torch.long))
    tensor(2.9444)
    """
    if logits.shape[-2:] != labels.shape[-2:]:
        logits = F.interpolate(logits.float(), size=labels.shape[-2:], mode="bilinear", align_corners=align_corners)
    labels = labels.long()
    valid = labels != ignore_index
    if not bool(valid.any()):
        return logits.float().sum() * 0.0
    return F.cross_entropy(logits.float(), labels, ignore_index=ignore_index)


def soft_label_cross_entropy(logits: torch.Tensor, soft_labels: torch.Tensor) -> torch.Tensor:
    """−Σ_c q_c · log softmax(logits)_c, summed over channels, mean over pixels (FADA's form).

    logits (N, C, H, W), soft_labels (N, C, H, W) → scalar. With a one-hot ``soft_labels`` this
    is the ordinary cross-entropy.

    >>> soft_label_cross_entropy(torch.zeros(1, 4, 1, 1), torch.tensor([1., 0, 0, 0]).view(1, 4, 1, 1))
    tensor(1.3863)
    """
    if logits.shape != soft_labels.shape:
        raise ValueError(f"soft_label_cross_entropy: logits {tuple(logits.shape)} and soft labels "
                         f"{tuple(soft_labels.shape)} must have the same shape")
    log_q = F.log_softmax(logits.float(), dim=1)
    return -(soft_labels.float() * log_q).sum(dim=1).mean()


def class_probabilities(
    logits: torch.Tensor, temperature: float = 1.8, clip: float | None = 0.9, size=None
) -> torch.Tensor:
    """The segmenter's detached class probabilities a, as FADA makes them for domain encoding.

    softmax(logits / T) in float32, entries above ``clip`` set to ``clip`` (not renormalised, as
    in FADA), detached. ``size`` (H, W) brings a to a discriminator output of another resolution:

    - larger (or equal) on some side — the *logits* are resized bilinearly (align_corners=True)
      first, as FADA upsamples its logits to the input size (DeepLab-V2: logits and layer4 share
      stride 8, so only ``loss_resolution: input`` resizes, and always up);
    - smaller on both sides (a transformer's stride-4 logits against a coarser MiT stage, e.g.
      stage 4 at stride 32) — the *probabilities* softmax(logits / T) are area-averaged over each
      D cell (``adaptive_avg_pool2d``: the cell's class shares, as a pooled one-hot label would
      give), and only then clipped. Bilinear resizing would read one logit pixel per cell (8×
      subsampling with aliasing) instead of the cell's content.

    logits (N, K, h, w) → (N, K, H, W).
    """
    logits = logits.detach().float()
    size = None if size is None else tuple(size)
    if size is not None and size != tuple(logits.shape[-2:]) and all(
            s <= h for s, h in zip(size, logits.shape[-2:])):
        probs = F.adaptive_avg_pool2d(F.softmax(logits / temperature, dim=1), size)
    else:
        if size is not None and size != tuple(logits.shape[-2:]):
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=True)
        probs = F.softmax(logits / temperature, dim=1)
    if clip is not None:
        probs = probs.clamp(max=clip)
    return probs


def domain_encoding(probs: torch.Tensor, domain: str) -> torch.Tensor:
    """Soft 2K-channel domain label: [a; 0] for ``"source"``, [0; a] for ``"target"``.

    probs (N, K, H, W) → (N, 2K, H, W); channel k is "source, class k", K + k "target, class k".
    """
    zeros = torch.zeros_like(probs)
    if domain == SOURCE:
        return torch.cat([probs, zeros], dim=1)
    if domain == TARGET:
        return torch.cat([zeros, probs], dim=1)
    raise ValueError(f"domain must be 'source' or 'target', got {domain!r}")


def fine_grained_discriminator_loss(
    d_logits_source: torch.Tensor,
    d_logits_target: torch.Tensor,
    probs_source: torch.Tensor,
    probs_target: torch.Tensor,
    weight: float = 0.5,
) -> torch.Tensor:
    """L_D (eq. 2): D learns source pixels as [a_s; 0] and target pixels as [0; a_t].

    d_logits_* (N, 2K, H, W) from D on *detached* features, probs_* (N, K, H, W) from
    :func:`class_probabilities`. ``weight`` is FADA's 0.5 per domain.
    """
    return weight * (
        soft_label_cross_entropy(d_logits_source, domain_encoding(probs_source, SOURCE))
        + soft_label_cross_entropy(d_logits_target, domain_encoding(probs_target, TARGET))
    )


def fine_grained_adversarial_loss(d_logits_target: torch.Tensor, probs_target: torch.Tensor) -> torch.Tensor:
    """L_adv (eq. 3): the segmenter makes D read target class-k pixels as *source* class k.

    d_logits_target (N, 2K, H, W) from D on target features (gradient flows to the features),
    probs_target (N, K, H, W) detached → scalar; the target pixels get the label [a_t; 0].
    """
    return soft_label_cross_entropy(d_logits_target, domain_encoding(probs_target, SOURCE))


def entropy_map(probs: torch.Tensor) -> torch.Tensor:
    """Normalised entropy (eq. 4): E = −1/log K · Σ_k p_k log p_k, in [0, 1].

    probs (N, K, H, W) → (N, H, W). Uniform probabilities give 1, a one-hot gives 0.
    """
    probs = probs.float()
    k = probs.shape[1]
    return -(probs * torch.log(probs.clamp_min(_TINY))).sum(dim=1) / math.log(k)


def entropy_loss(probs: torch.Tensor) -> torch.Tensor:
    """L_ent (eq. 5), as ADVENT computes it: the mean of :func:`entropy_map` over pixels."""
    return entropy_map(probs).mean()


def self_information_map(probs: torch.Tensor) -> torch.Tensor:
    """AdvEnt's weighted self-information −p·log p / log K, per class: (N, K, H, W) → (N, K, H, W).

    Summed over channels it is :func:`entropy_map`; AdvEnt feeds it to a binary discriminator.
    """
    probs = probs.float()
    return -(probs * torch.log(probs.clamp_min(_TINY))) / math.log(probs.shape[1])


def binary_adversarial_loss(d_logits: torch.Tensor, domain: str) -> torch.Tensor:
    """BCE-with-logits against a constant domain label (source 0, target 1), mean over outputs.

    AdaptSegNet / ADVENT: D learns source 0 / target 1; the segmenter's adversarial term labels
    target outputs as source (0).
    """
    if domain not in (SOURCE, TARGET):
        raise ValueError(f"domain must be 'source' or 'target', got {domain!r}")
    d_logits = d_logits.float()
    target = torch.full_like(d_logits, 0.0 if domain == SOURCE else 1.0)
    return F.binary_cross_entropy_with_logits(d_logits, target)
