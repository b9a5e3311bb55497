"""ClassMix domain mixing and the strong augmentation of DACS / DAFormer, on the device.

Shapes: N batch, H×W spatial. Images (N, 3, H, W) RGB in the uint8 value range [0, 255] — uint8
tensors, or float tensors holding those values — *before* ``udaseg.engine.inputs.normalize_images``.
Labels (N, H, W) int64 with 255 = ignore. Every random draw comes from a passed
``torch.Generator`` (a CPU generator gives the same draws whatever device the images are on; its
``get_state()`` is what a checkpoint needs for an exact resume).

Why before normalisation: the references mix and jitter the *normalised* tensors by undoing the
normalisation first (DAFormer ``mmseg/models/utils/dacs_transforms.py``: ``denorm_`` → [0, 1] →
kornia ``ColorJitter`` → ``renorm_``; DACS ``utils/transformsgpu.py`` ``colorJitter``: ``(data +
IMG_MEAN) / 255``). Working on the [0, 255] images is the same computation without the round
trip, and it is correct for every ``input_norm`` (the per-image normalisation must see the mixed
image, not be mixed itself).

ClassMix (DACS ``trainUDA.py``; DAFormer ``dacs_transforms.py`` ``get_class_masks`` /
``generate_class_mask`` / ``one_mix``), per sample n:

    C_n    = unique(source_label_n)                       (255 included, see below)
    S_n    ⊂ C_n, |S_n| = (|C_n| + |C_n| mod 2) / 2 = ⌈|C_n| / 2⌉, uniformly without replacement
    M_n    = [source_label_n ∈ S_n]                       (H, W), 1 = pasted from the source
    image  = M·source_image + (1 − M)·target_image
    label  = M·source_label + (1 − M)·pseudo_label
    weight = M·1 + (1 − M)·pseudo_weight                  (DAFormer ``gt_pixel_weight`` = ones)

The ignore label: DACS ``trainUDA.py`` leaves ``#classes=classes[classes!=ignore_label]``
commented out and DAFormer ``get_class_masks`` has no filter, so 255 counts as a class that can be
chosen (its pixels are pasted with label 255, i.e. ignored in the loss); ``include_ignore=False``
drops it (the original ClassMix rule: unless it is the only value). DAFormer takes
``torch.unique(labels)`` of the *whole batch* inside its per-image loop (classes that image n may
lack); DACS takes ``labels[image_i]`` — this module follows DACS, per image.

Strong augmentation (DAFormer ``strong_transform`` after ``one_mix``; defaults from DAFormer
``configs/_base_/uda/dacs.py``: ``color_jitter_strength=0.2``, ``color_jitter_probability=0.2``,
``blur=True``): one uniform draw u decides colour jitter for the batch, applied when u > 0.2, i.e.
with probability ``jitter_prob = 0.8``; another decides blur, applied when u > 0.5
(``blur_prob = 0.5``). Each image then draws its own jitter factors and order, and blur sigma:

- colour jitter = kornia ``ColorJitter(brightness=s, contrast=s, saturation=s, hue=s)`` of
  kornia ≤ 0.6 (today's ``ColorJiggle``), on x = image / 255 ∈ [0, 1], the four steps in a random
  order: brightness x ← clip(x + (b − 1)), contrast x ← clip(c·x), saturation S ← clip(f·S) in
  HSV, hue H ← (H + 2π·h) mod 2π, with b, c, f ~ U[max(0, 1 − s), 1 + s] and h ~ U[−s, s];
- Gaussian blur with σ ~ U[0.15, 1.15] and kernel size k = ⌊⌈0.1·H⌉ − 0.5 + ⌈0.1·H⌉ mod 2⌋ (the
  largest odd number ≤ ⌈0.1·H⌉; likewise along W), reflect padding (kornia ``GaussianBlur2d``).

The output keeps the input's dtype (uint8 input: rounded and clipped once at the end) and range.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from udaseg.data.labels import IGNORE_INDEX

# DAFormer configs/_base_/uda/dacs.py (color_jitter_strength, color_jitter_probability, blur)
JITTER_STRENGTH = 0.2
JITTER_PROB = 1.0 - 0.2  # jitter applied when random.uniform(0, 1) > color_jitter_probability
BLUR_PROB = 0.5  # dacs_transforms.py gaussian_blur: applied when blur > 0.5
BLUR_SIGMA = (0.15, 1.15)  # dacs_transforms.py gaussian_blur: np.random.uniform(0.15, 1.15)


class MixResult(NamedTuple):
    images: torch.Tensor  # (N, 3, H, W), the dtype of the inputs
    labels: torch.Tensor  # (N, H, W) int64
    weights: torch.Tensor  # (N, H, W) float32: 1 on pasted source pixels, pseudo weight elsewhere
    masks: torch.Tensor  # (N, H, W) bool: True = pixel from the source image
    classes: list[torch.Tensor]  # the chosen source classes of each sample


def _uniform(generator: torch.Generator | None, low: float = 0.0, high: float = 1.0) -> float:
    dev = generator.device if generator is not None else "cpu"
    return low + (high - low) * float(torch.rand((), generator=generator, device=dev, dtype=torch.float64))


def choose_classes(label: torch.Tensor, generator: torch.Generator | None = None, *,
                   include_ignore: bool = True, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """⌈n / 2⌉ of the n distinct values of ``label`` (H, W), uniformly without replacement.

    DACS ``trainUDA.py``: ``np.random.choice(nclasses, int((nclasses + nclasses % 2) / 2),
    replace=False)`` — here ``torch.randperm(n, generator)[:k]``. Returns a 1-D tensor on
    ``label``'s device, in the drawn order.
    """
    classes = torch.unique(label)
    if not include_ignore and classes.numel() > 1:
        classes = classes[classes != ignore_index]
    n = classes.numel()
    k = (n + n % 2) // 2
    dev = generator.device if generator is not None else "cpu"
    pick = torch.randperm(n, generator=generator, device=dev)[:k]
    return classes[pick.to(classes.device)]


def class_mask(label: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """(…, H, W) bool: True where ``label`` is one of ``classes`` (DACS ``generate_class_mask``)."""
    return torch.isin(label, classes.to(label.device))


def class_mix(source_images: torch.Tensor, source_labels: torch.Tensor, target_images: torch.Tensor,
              pseudo_labels: torch.Tensor, pseudo_weights: torch.Tensor | float | None = None,
              generator: torch.Generator | None = None, *, include_ignore: bool = True,
              ignore_index: int = IGNORE_INDEX) -> MixResult:
    """ClassMix of source into target, one mask per sample (formula in the module docstring).

    Args:
        source_images, target_images: (N, 3, H, W), same dtype and device.
        source_labels: (N, H, W) int64 (255 = ignore).
        pseudo_labels: (N, H, W) int64, the teacher's labels of the target images.
        pseudo_weights: (N, H, W) float map, a scalar, or None (= 1).
        generator: the source of the class choice.
    """
    if source_images.shape != target_images.shape or source_images.dim() != 4:
        raise ValueError(f"source and target images must both be (N, 3, H, W), got "
                         f"{tuple(source_images.shape)} and {tuple(target_images.shape)}")
    n, _, h, w = source_images.shape
    for name, t in (("source_labels", source_labels), ("pseudo_labels", pseudo_labels)):
        if tuple(t.shape) != (n, h, w):
            raise ValueError(f"{name} must be (N, H, W) = {(n, h, w)}, got {tuple(t.shape)}")
    dev = source_images.device
    if pseudo_weights is None:
        pseudo_weights = 1.0
    if not torch.is_tensor(pseudo_weights):
        pseudo_weights = torch.full((n, h, w), float(pseudo_weights), device=dev)
    pseudo_weights = pseudo_weights.to(device=dev, dtype=torch.float32).expand(n, h, w)

    chosen = [choose_classes(source_labels[i], generator, include_ignore=include_ignore,
                             ignore_index=ignore_index) for i in range(n)]
    masks = torch.stack([class_mask(source_labels[i], chosen[i]) for i in range(n)])
    images = torch.where(masks[:, None], source_images, target_images.to(source_images.dtype))
    labels = torch.where(masks, source_labels.long(), pseudo_labels.to(dev).long())
    weights = torch.where(masks, torch.ones((), device=dev), pseudo_weights)
    return MixResult(images, labels, weights, masks, chosen)


# -- strong augmentation -----------------------------------------------------------------------

def _rgb_to_hsv(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(…, 3, H, W) RGB in [0, 1] → HSV with H in [0, 2π), S, V in [0, 1] (kornia's convention)."""
    r, g, b = x.unbind(-3)
    v, argmax = x.max(-3)
    delta = v - x.min(-3).values
    s = delta / (v + eps)
    d = torch.where(delta == 0, torch.ones_like(delta), delta)
    hr = torch.remainder((g - b) / d, 6.0)
    hg = (b - r) / d + 2.0
    hb = (r - g) / d + 4.0
    h = torch.where(argmax == 0, hr, torch.where(argmax == 1, hg, hb))
    h = torch.where(delta == 0, torch.zeros_like(h), h)
    return torch.stack((h * (math.pi / 3.0), s, v), -3)


def _hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x.unbind(-3)
    h6 = torch.remainder(h / (2 * math.pi), 1.0) * 6.0
    hi = torch.floor(h6).clamp(0, 5)
    f = h6 - hi
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    hi = hi.long()
    # for sector hi: (r, g, b) = (v,q,p,p,t,v)[hi], (t,v,v,q,p,p)[hi], (p,p,t,v,v,q)[hi]
    table = torch.stack([torch.stack(c, 0) for c in ((v, q, p, p, t, v), (t, v, v, q, p, p), (p, p, t, v, v, q))], 0)
    idx = hi[None, None].expand(3, 1, *hi.shape)
    return table.gather(1, idx)[:, 0].movedim(0, -3)


def color_jitter(image: torch.Tensor, strength: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """kornia ≤ 0.6 ``ColorJitter(s, s, s, s)`` of one (3, H, W) image in [0, 1] (formula above)."""
    s = float(strength)
    lo = max(0.0, 1.0 - s)
    b, c, f = (_uniform(generator, lo, 1.0 + s) for _ in range(3))
    hue = _uniform(generator, -s, s)
    dev = generator.device if generator is not None else "cpu"
    order = torch.randperm(4, generator=generator, device=dev).tolist()
    x = image
    for step in order:
        if step == 0:
            x = (x + (b - 1.0)).clamp(0, 1)
        elif step == 1:
            x = (x * c).clamp(0, 1)
        elif step == 2:
            hsv = _rgb_to_hsv(x)
            hsv = torch.stack((hsv[0], (hsv[1] * f).clamp(0, 1), hsv[2]), 0)
            x = _hsv_to_rgb(hsv)
        else:
            hsv = _rgb_to_hsv(x)
            hsv = torch.stack((torch.remainder(hsv[0] + 2 * math.pi * hue, 2 * math.pi), hsv[1], hsv[2]), 0)
            x = _hsv_to_rgb(hsv)
    return x


def blur_kernel_size(length: int) -> int:
    """⌊⌈0.1·L⌉ − 0.5 + ⌈0.1·L⌉ mod 2⌋ — DAFormer/DACS ``gaussian_blur`` (an odd number ≥ 1)."""
    c = math.ceil(0.1 * length)
    return max(1, int(math.floor(c - 0.5 + c % 2)))


def _gaussian_1d(k: int, sigma: float, device, dtype) -> torch.Tensor:
    x = torch.arange(k, device=device, dtype=dtype) - k // 2
    g = torch.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (C, H, W) with the reference kernel size, reflect padding."""
    _, h, w = image.shape
    ky, kx = blur_kernel_size(h), blur_kernel_size(w)
    x = image[None]
    c = x.shape[1]
    if ky > 1:
        gy = _gaussian_1d(ky, sigma, x.device, x.dtype).view(1, 1, ky, 1).expand(c, 1, ky, 1)
        x = F.conv2d(F.pad(x, (0, 0, ky // 2, ky // 2), mode="reflect"), gy, groups=c)
    if kx > 1:
        gx = _gaussian_1d(kx, sigma, x.device, x.dtype).view(1, 1, 1, kx).expand(c, 1, 1, kx)
        x = F.conv2d(F.pad(x, (kx // 2, kx // 2, 0, 0), mode="reflect"), gx, groups=c)
    return x[0]


def strong_transform(images: torch.Tensor, generator: torch.Generator | None = None, *,
                     jitter_prob: float = JITTER_PROB, jitter_strength: float = JITTER_STRENGTH,
                     blur_prob: float = BLUR_PROB, blur_sigma: tuple[float, float] = BLUR_SIGMA) -> torch.Tensor:
    """DAFormer's ``strong_transform`` (colour jitter, then blur) of (N, 3, H, W) [0, 255] images.

    One draw each decides jitter (probability ``jitter_prob``) and blur (``blur_prob``) for the
    whole batch, as DAFormer draws ``color_jitter`` / ``blur`` once per iteration; factors, order
    and σ are drawn per image. Both probabilities 0 → the input itself, unchanged. Keeps shape,
    dtype (uint8: rounded once) and the [0, 255] range.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"strong_transform expects (N, 3, H, W) images, got {tuple(images.shape)}")
    do_jitter = _uniform(generator) < jitter_prob
    do_blur = _uniform(generator) < blur_prob
    if not (do_jitter or do_blur):
        return images
    x = images.float() / 255.0
    out = []
    for i in range(x.shape[0]):
        xi = x[i]
        if do_jitter:
            xi = color_jitter(xi, jitter_strength, generator)
        if do_blur:
            xi = gaussian_blur(xi, _uniform(generator, *blur_sigma))
        out.append(xi)
    y = torch.stack(out) * 255.0
    if images.dtype == torch.uint8:
        return y.round().clamp(0, 255).to(torch.uint8)
    return y.clamp(0, 255).to(images.dtype)
