"""Pictures of predictions: palette colours, overlays, entropy maps, PNG bytes.

Pure numpy (+ matplotlib's colormap tables, read once): no figure is made per image, so writing
thousands of predictions costs array indexing, not plotting.

    rgb = colorize(pred, 19); mix = overlay(image, rgb); ent = entropy_rgb(entropy, "magma")
"""
from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
import torch
from PIL import Image

from udaseg.data.labels import colorize  # noqa: F401  (re-exported: one place for colour helpers)
from udaseg.losses import entropy_map


@lru_cache(maxsize=8)
def colormap_lut(name: str = "magma") -> np.ndarray:
    """(256, 3) uint8 table of a matplotlib colormap (perceptually uniform ones: viridis, magma,
    inferno, plasma, cividis)."""
    from matplotlib import colormaps

    try:
        cmap = colormaps[name]
    except KeyError:
        raise ValueError(f"unknown matplotlib colormap {name!r}") from None
    return (cmap(np.linspace(0.0, 1.0, 256))[:, :3] * 255 + 0.5).astype(np.uint8)


def scalar_rgb(values: np.ndarray, cmap: str = "magma", vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
    """(H, W) floats in [vmin, vmax] → (H, W, 3) uint8 through a colormap LUT."""
    v = (np.asarray(values, dtype=np.float32) - vmin) / max(vmax - vmin, 1e-12)
    idx = np.clip(np.rint(np.nan_to_num(v) * 255), 0, 255).astype(np.uint8)
    return colormap_lut(cmap)[idx]


def entropy_rgb(entropy: np.ndarray, cmap: str = "magma") -> np.ndarray:
    """Normalised entropy (eq. 4, in [0, 1]) → colour image: dark = confident, bright = uncertain."""
    return scalar_rgb(entropy, cmap, 0.0, 1.0)


def normalized_entropy(probs: torch.Tensor) -> np.ndarray:
    """(N, K, H, W) softmax → (N, H, W) float32 numpy normalised entropy (eq. 4)."""
    return entropy_map(probs).cpu().numpy().astype(np.float32)


def overlay(image: np.ndarray, color: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a colour prediction over an (H, W, 3) uint8 image; ``alpha`` = weight of the colours."""
    if image.shape != color.shape:
        raise ValueError(f"image {image.shape} and colour map {color.shape} differ in size")
    mix = image.astype(np.float32) * (1 - alpha) + color.astype(np.float32) * alpha
    return np.clip(mix + 0.5, 0, 255).astype(np.uint8)


def resize_nearest(img: np.ndarray, width: int) -> np.ndarray:
    """Shrink/grow to ``width`` keeping the aspect ratio, nearest (class colours stay pure)."""
    return _resize(img, width, Image.NEAREST)


def resize_smooth(img: np.ndarray, width: int) -> np.ndarray:
    """Shrink/grow to ``width`` keeping the aspect ratio, bilinear (photos, entropy maps)."""
    return _resize(img, width, Image.BILINEAR)


def _resize(img: np.ndarray, width: int, resample) -> np.ndarray:
    h, w = img.shape[:2]
    if w == width:
        return img
    height = max(1, round(h * width / w))
    return np.asarray(Image.fromarray(img).resize((width, height), resample))


def png_bytes(img: np.ndarray) -> bytes:
    """An (H, W) or (H, W, 3) uint8 array as PNG file bytes."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG", optimize=False)
    return buf.getvalue()
