"""Sensor post-processing: colour grading, white balance, vignetting, lens blur and sensor noise."""
from __future__ import annotations

import cv2
import numpy as np

from udaseg.benchmark.context import Scene

# -------------------------------------------------------------------------------- camera pipeline


def camera_post(sc: Scene, img: np.ndarray, fields: dict) -> np.ndarray:
    """The imaging pipeline on (3, H, W) planes. Game: saturated, crisp, sometimes a warm golden
    hour. Camera: white-balance cast, lower contrast, uneven illumination, vignetting, lens blur,
    sensor noise."""
    rng, h, w = sc.rng, sc.cam.height, sc.cam.width
    if not sc.style.camera_like:
        grey = img.mean(0)
        img = grey + (img - grey) * np.float32(rng.uniform(1.15, 1.4))
        if rng.random() < 0.25:
            img *= np.array([1.08, 1.0, 0.85], np.float32)[:, None, None]
        return img
    # white balance, exposure and contrast are one affine map per channel
    gain = np.array([rng.uniform(0.9, 1.1), 1.0, rng.uniform(0.85, 1.12)], np.float32)
    gain *= np.float32(rng.uniform(0.85, 1.1))
    contrast = rng.uniform(0.75, 0.95)
    mean = float(img.mean()) * float(gain.mean())
    # uneven illumination and vignetting are one gain map
    yy, xx = np.ogrid[:h, :w]
    r2 = ((xx - w / 2) / (w / 2)) ** 2 * 0.7 + ((yy - h / 2) / (h / 2)) ** 2 * 0.3
    light = (1 + 0.12 * fields["low"]) * (1 - rng.uniform(0.15, 0.35) * r2).astype(np.float32)
    img = (img * (gain * contrast)[:, None, None] + np.float32(mean * (1 - contrast))) * light
    sigma_blur = rng.uniform(0.6, 1.2) * w / 512
    img = np.stack([cv2.GaussianBlur(p, (0, 0), sigma_blur) for p in img])
    # sensor noise after the lens blur, stronger in bright areas (shot noise); the fine field is
    # no longer needed after shading, so its values are reused instead of drawing new ones
    img += (fields["fine"] * np.float32(rng.uniform(0.01, 0.025))) * (0.5 + 0.8 * img)
    return img
