"""Backgrounds and the photographic look of the pretraining images.

ImageNet is photographs: objects on every kind of background, under every light, through many
cameras. Each image draws its own: a background of one of five kinds (gradient, smooth colour
noise, clutter of primitive shapes, stripes or checks, a two-tone horizon), a texture and a
shading gradient on the object, then exposure, contrast, gamma, colour cast, sometimes grey,
defocus or motion blur, sensor noise and JPEG compression. Nothing here is the benchmark's
scene renderer or its camera model (``udaseg.benchmark.sensor``).
"""
from __future__ import annotations

import cv2
import numpy as np

from .palette import Palette
from .pen import Pen


def _rgb01(colour) -> np.ndarray:
    return np.asarray(colour, np.float32) / 255.0


def value_noise(r: np.random.Generator, size: int, cells: int, channels: int = 1) -> np.ndarray:
    """Smooth noise in [0, 1]: a random ``cells × cells`` grid, bicubically upsampled."""
    grid = r.random((cells, cells, channels)).astype(np.float32)
    out = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(out.reshape(size, size, channels), 0, 1)


def _gradient(r, size):
    a = r.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    t = np.clip(0.5 + (xx - 0.5) * np.cos(a) + (yy - 0.5) * np.sin(a), 0, 1)[..., None]
    return t, 1 - t


def background(r: np.random.Generator, pal: Palette, size: int) -> np.ndarray:
    """(size, size, 3) float32 in [0, 1]."""
    kind = r.integers(5)
    c1, c2 = _rgb01(pal.any()), _rgb01(pal.any())
    if kind == 0:  # gradient
        t, u = _gradient(r, size)
        return t * c1 + u * c2
    if kind == 1:  # smooth colour noise
        return value_noise(r, size, int(r.integers(2, 10)), 3) * r.uniform(0.4, 1.0) + r.uniform(0, 0.3)
    if kind == 2:  # clutter of primitives
        p = Pen(size)
        p.rgb[:] = pal.any()
        for _ in range(int(r.integers(4, 16))):
            c = pal.any()
            x, y, s = r.random(), r.random(), r.uniform(0.05, 0.3)
            shape = r.integers(3)
            if shape == 0:
                p.ellipse(x, y, s, s * r.uniform(0.3, 1), c, angle=r.uniform(0, 180))
            elif shape == 1:
                p.poly(np.stack([x + s * r.uniform(-1, 1, 4), y + s * r.uniform(-1, 1, 4)], 1), c)
            else:
                p.line(x, y, x + r.uniform(-0.5, 0.5), y + r.uniform(-0.5, 0.5), r.uniform(0.01, 0.05), c)
        img = p.rgb.astype(np.float32) / 255.0
        return cv2.GaussianBlur(img, (0, 0), r.uniform(0.5, 3.0)) if r.random() < 0.5 else img
    if kind == 3:  # stripes or checks
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        a, period = r.uniform(0, np.pi), r.uniform(4, 30)
        u = xx * np.cos(a) + yy * np.sin(a)
        t = (np.floor(u / period) % 2)
        if r.random() < 0.5:
            t = (t + np.floor((-xx * np.sin(a) + yy * np.cos(a)) / period) % 2) % 2
        return t[..., None] * c1 + (1 - t[..., None]) * c2
    h = int(size * r.uniform(0.2, 0.8))  # two-tone horizon, each half with its own noise
    img = np.empty((size, size, 3), np.float32)
    img[:h], img[h:] = c1, c2
    return np.clip(img + (value_noise(r, size, int(r.integers(4, 16)), 3) - 0.5) * r.uniform(0, 0.3), 0, 1)


def texture_object(r: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    """Modulate the object layer (float [0, 1]) with a noise texture and a shading gradient."""
    size = rgb.shape[0]
    out = rgb
    if r.random() < 0.7:
        amp = r.uniform(0.1, 0.5)
        out = out * (1 + amp * (value_noise(r, size, int(r.integers(3, 24))) - 0.5))
    if r.random() < 0.7:
        t, _ = _gradient(r, size)
        out = out * (1 + r.uniform(-0.4, 0.4) * (t - 0.5))
    return out


def photograph(r: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Exposure, contrast, gamma, colour cast, grey, blur, noise, JPEG: float [0, 1] → uint8 RGB."""
    img = img * r.uniform(0.6, 1.4)
    img = (img - img.mean()) * r.uniform(0.6, 1.4) + img.mean()
    img = img * r.uniform(0.85, 1.15, 3).astype(np.float32)
    img = np.clip(img, 0, 1) ** r.uniform(0.7, 1.4)
    if r.random() < 0.1:
        img = np.repeat(img.mean(2, keepdims=True), 3, 2)
    blur = r.random()
    if blur < 0.4:
        img = cv2.GaussianBlur(img, (0, 0), r.uniform(0.3, 1.3))
    elif blur < 0.55:
        n = int(r.integers(3, 8))
        k = np.zeros((n, n), np.float32)
        k[n // 2] = 1.0 / n
        k = cv2.warpAffine(k, cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), r.uniform(0, 180), 1.0), (n, n))
        img = cv2.filter2D(img, -1, k / max(k.sum(), 1e-6))
    if r.random() < 0.6:
        img = img + r.normal(0, r.uniform(0.005, 0.05), img.shape).astype(np.float32)
    out = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    if r.random() < 0.2:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(r.integers(20, 85))])
        out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return out
