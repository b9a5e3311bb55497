"""Drawing in unit coordinates onto an object layer and its coverage mask.

The pretraining images draw each object on its own ``size × size`` layer, in coordinates where
(0, 0) is the top left and (1, 1) the bottom right, then warp the layer onto a background
(``images.py``). Every primitive paints the colour into ``rgb`` and 255 into ``mask``, anti-aliased
(cv2 ``LINE_AA`` with 4 fractional bits), so the mask says exactly where the object is.
"""
from __future__ import annotations

import cv2
import numpy as np

_SHIFT = 4
_ONE = 1 << _SHIFT


class Pen:
    """Anti-aliased primitives on ``rgb`` (H, W, 3) uint8 and ``mask`` (H, W) uint8."""

    def __init__(self, size: int):
        self.size = size
        self.rgb = np.zeros((size, size, 3), np.uint8)
        self.mask = np.zeros((size, size), np.uint8)

    def _pt(self, x: float, y: float) -> tuple[int, int]:
        return int(round(x * self.size * _ONE)), int(round(y * self.size * _ONE))

    def _len(self, v: float) -> int:
        return max(1, int(round(v * self.size * _ONE)))

    def poly(self, pts, colour) -> None:
        """A filled polygon; ``pts`` is a sequence of (x, y) in unit coordinates."""
        p = np.round(np.asarray(pts, np.float64) * self.size * _ONE).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(self.rgb, [p], _ints(colour), cv2.LINE_AA, _SHIFT)
        cv2.fillPoly(self.mask, [p], 255, cv2.LINE_AA, _SHIFT)

    def rect(self, x0: float, y0: float, x1: float, y1: float, colour) -> None:
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], colour)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, colour, angle: float = 0.0,
                thickness: float | None = None) -> None:
        """Filled (``thickness`` None) or outlined ellipse; ``angle`` in degrees."""
        t = -1 if thickness is None else max(1, int(round(thickness * self.size)))
        c, axes = self._pt(cx, cy), (self._len(rx), self._len(ry))
        cv2.ellipse(self.rgb, c, axes, angle, 0, 360, _ints(colour), t, cv2.LINE_AA, _SHIFT)
        cv2.ellipse(self.mask, c, axes, angle, 0, 360, 255, t, cv2.LINE_AA, _SHIFT)

    def circle(self, cx: float, cy: float, r: float, colour, thickness: float | None = None) -> None:
        self.ellipse(cx, cy, r, r, colour, thickness=thickness)

    def line(self, x0: float, y0: float, x1: float, y1: float, width: float, colour) -> None:
        """A segment ``width`` wide (unit coordinates) as a polygon, so thin lines stay anti-aliased."""
        d = np.array([x1 - x0, y1 - y0], np.float64)
        n = np.hypot(*d)
        if n < 1e-9:
            self.circle(x0, y0, width / 2, colour)
            return
        o = np.array([-d[1], d[0]]) / n * (width / 2)
        self.poly([(x0 + o[0], y0 + o[1]), (x1 + o[0], y1 + o[1]), (x1 - o[0], y1 - o[1]), (x0 - o[0], y0 - o[1])],
                  colour)

    def polyline(self, pts, width: float, colour) -> None:
        for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:]):
            self.line(x0, y0, x1, y1, width, colour)
            self.circle(x1, y1, width / 2, colour)

    def points(self, xy: np.ndarray, colour) -> None:
        """Single pixels at unit coordinates ``xy`` (M, 2) (the fractal attractors)."""
        ij = np.floor(xy * self.size).astype(np.int64)
        keep = (ij >= 0).all(1) & (ij < self.size).all(1)
        ij = ij[keep]
        self.rgb[ij[:, 1], ij[:, 0]] = colour
        self.mask[ij[:, 1], ij[:, 0]] = 255


def _ints(colour) -> tuple[int, int, int]:
    # cv2 writes the channels in the order given: the layer and the colours are both RGB.
    return tuple(int(c) for c in colour)
