"""Scene: the painters' shared state — random draws, colours, lit and hazed materials, fills, shadows."""
from __future__ import annotations

import colorsys
import math

import cv2
import numpy as np

from udaseg.benchmark.camera import Camera, Canvas, _clip_near
from udaseg.benchmark.codes import FLAT
from udaseg.benchmark.layout import Street
from udaseg.benchmark.styles import Look, Style

class Scene:
    """What painters share: the random stream, style, look, camera, canvas and street."""

    def __init__(self, rng, style: Style, cam: Camera, look: Look):
        self.rng, self.style, self.cam, self.look = rng, style, cam, look
        self.cv = Canvas(cam)
        self.street: Street | None = None
        self._buf: list[float] = []

    def p(self) -> float:
        """A uniform draw in [0, 1). Painters draw thousands of scalars; taking them from a block
        drawn at once is much cheaper than one Generator call each (and as deterministic)."""
        if not self._buf:
            self._buf = self.rng.random(256).tolist()[::-1]
        return self._buf.pop()

    def u(self, a, b) -> float:
        return a + (b - a) * self.p()

    def sign(self) -> int:
        return 1 if self.p() < 0.5 else -1

    def pick(self, n: int) -> int:
        return min(int(self.p() * n), n - 1)

    def colour(self, key: str) -> np.ndarray:
        """A colour for one object; camera-like scenes add per-object channel jitter."""
        boxes = self.style.colours[key]
        (h0, h1), (s0, s1), (v0, v1) = boxes[self.pick(len(boxes))]
        rgb = colorsys.hsv_to_rgb(self.u(h0, h1) % 1.0, self.u(s0, s1), self.u(v0, v1))
        if self.style.camera_like:
            rgb = [min(max(c * self.u(0.92, 1.08), 0.0), 1.0) for c in rgb]
        return np.array(rgb, np.float32)

    def mat(self, rgb, depth=0.0, face=None, kind=FLAT, rgb2=None, params=()) -> int:
        """A material lit for its face orientation and hazed for its depth (kinds that vary in
        depth across the surface — ground, façades — are hazed per pixel instead)."""
        t = 1.0 - math.exp(-max(depth, 0.0) / self.look.visibility)
        k = self.look.face.get(face, 1.0) * (1 - t)
        haze = self.look.haze * t
        rgb2 = None if rgb2 is None else rgb2 * k + haze
        return self.cv.material(rgb * k + haze, kind, rgb2, params)

    def fill3(self, poly3, cls, mat, inst=0):
        """Fill one world polygon, or a list of non-overlapping ones, with one primitive."""
        polys = [poly3] if isinstance(poly3, np.ndarray) and poly3.ndim == 2 else poly3
        self.cv.fill_world([np.asarray(P, float) for P in polys], cls, mat, inst)

    def fill2(self, poly2, cls, mat, inst=0):
        self.cv.fill([poly2], cls, mat, inst)

    def shadow3(self, poly3, strength=1.0):
        """Darken the ground under a 3D polygon (image only: the shadow map touches ground pixels)."""
        P = _clip_near(np.asarray(poly3, float), self.cam.near)
        if P is not None:
            value = 1.0 - (1.0 - self.look.shadow) * strength
            cv2.fillPoly(self.cv.shadow, [np.round(self.cam.project(P) * 16).astype(np.int32)], value, shift=4)

    def px_per_m(self, z):
        return self.cam.f / max(z, self.cam.near)
