"""Colours for the pretraining objects: any hue for artefacts, jittered natural hues for the rest.

ImageNet photographs show cars of every colour but trees mostly green and skin in a narrow range
of tones; a palette per image keeps that: ``any()`` draws from the whole HSV cube, the named
families jitter around their usual hue, and ``tint`` (per image) sometimes replaces even the
natural hues, as lighting and white balance do in photographs.
"""
from __future__ import annotations

import colorsys

import numpy as np


class Palette:
    def __init__(self, rng: np.random.Generator, unnatural: float = 0.15):
        self.rng = rng
        self.unnatural = rng.random() < unnatural  # this image ignores natural hues altogether

    def hsv(self, h: float, s: float, v: float) -> tuple[int, int, int]:
        r, g, b = colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1)))
        return int(r * 255), int(g * 255), int(b * 255)

    def any(self) -> tuple[int, int, int]:
        r = self.rng
        return self.hsv(r.random(), r.uniform(0.0, 1.0), r.uniform(0.15, 1.0))

    def _natural(self, h: float, dh: float, s: tuple[float, float], v: tuple[float, float]):
        if self.unnatural:
            return self.any()
        r = self.rng
        return self.hsv(h + r.uniform(-dh, dh), r.uniform(*s), r.uniform(*v))

    def green(self):
        return self._natural(0.30, 0.08, (0.35, 0.9), (0.2, 0.75))

    def brown(self):
        return self._natural(0.08, 0.04, (0.3, 0.8), (0.15, 0.55))

    def skin(self):
        return self._natural(0.07, 0.03, (0.2, 0.6), (0.3, 0.95))

    def grey(self):
        v = self.rng.uniform(0.2, 0.85)
        return self.hsv(self.rng.random(), self.rng.uniform(0, 0.12), v)

    def dark(self):
        return self.hsv(self.rng.random(), self.rng.uniform(0, 0.3), self.rng.uniform(0.02, 0.22))

    def light(self):
        return self.hsv(self.rng.random(), self.rng.uniform(0, 0.25), self.rng.uniform(0.75, 1.0))

    def glass(self):
        return self._natural(0.58, 0.06, (0.1, 0.5), (0.15, 0.7))

    def lamp(self, hue: float):
        return self._natural(hue, 0.02, (0.7, 1.0), (0.8, 1.0))
