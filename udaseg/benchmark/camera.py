"""The level pinhole camera, the Canvas that records and rasterises primitives, and the shapes painters fill."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from udaseg.benchmark.codes import FLAT, VOID

# ---------------------------------------------------------------------------- camera and canvas


@dataclass(frozen=True)
class Camera:
    """A level pinhole camera at X = 0, height ``h``; world X right, Y up, Z forward (metres)."""

    width: int
    height: int
    f: float  # focal length, pixels
    cx: float
    cy: float  # horizon row
    h: float
    near: float = 0.5

    def __post_init__(self):
        # (u·Z, v·Z, Z) = (X, Y, Z) @ M + (0, f·h, 0): one matrix product per projection
        object.__setattr__(self, "_M", np.array([[self.f, 0.0, 0.0], [0.0, -self.f, 0.0], [self.cx, self.cy, 1.0]]))
        object.__setattr__(self, "_b", np.array([0.0, self.f * self.h, 0.0]))

    def project(self, pts: np.ndarray) -> np.ndarray:
        """(N, 3) world points (Z >= near) → (N, 2) pixel coordinates."""
        q = pts @ self._M + self._b
        return q[:, :2] / q[:, 2:]


def _clip_near(P: np.ndarray, near: float) -> np.ndarray | None:
    """Clip a 3D polygon to Z >= near (Sutherland-Hodgman on one plane); None if nothing is left."""
    z = P[:, 2]
    if z.min() >= near:
        return P
    if z.max() < near:
        return None
    out = []
    for i in range(len(P)):
        a, b = P[i], P[(i + 1) % len(P)]
        if a[2] >= near:
            out.append(a)
        if (a[2] >= near) != (b[2] >= near):
            out.append(a + (near - a[2]) / (b[2] - a[2]) * (b - a))
    return np.array(out) if len(out) >= 3 else None


class Canvas:
    """The painting: a primitive-id map, the (class, material, instance) of each primitive, the
    material table and a shadow map (a multiplier for ground pixels only).

    Drawing calls are recorded in order and rasterised by :meth:`maps`; world polygons are then
    projected all at once (per-call NumPy overhead dominated the drawing time otherwise).
    """

    def __init__(self, cam: Camera):
        self.cam = cam
        self.prim = np.zeros((cam.height, cam.width), np.int32)
        self.shadow = np.ones((cam.height, cam.width), np.float32)
        self._prims: list[tuple[int, int, int]] = [(VOID, 0, 0)]
        self._prim_ids: dict[tuple[int, int, int], int] = {}
        # ("world", pid, n polygons) | ("px", pid, polys) | ("lines", pid, polys, thickness, closed)
        self._ops: list = []
        self._world: list[np.ndarray] = []  # world polygons of the "world" ops, in order
        self.rgb: list = [(0.0, 0.0, 0.0)]
        self.rgb2: list = [(0.0, 0.0, 0.0)]
        self.kind: list[int] = [FLAT]
        self.params: list = [(0.0,) * 8]
        self.instances = 0

    def material(self, rgb, kind=FLAT, rgb2=None, params=()) -> int:
        self.rgb.append(rgb)
        self.rgb2.append(rgb if rgb2 is None else rgb2)
        self.kind.append(kind)
        self.params.append(tuple(params) + (0.0,) * (8 - len(params)))
        return len(self.rgb) - 1

    def new_instance(self) -> int:
        self.instances += 1
        return self.instances

    def _prim(self, cls: int, mat: int, inst: int) -> int:
        key = (cls, mat, inst)
        pid = self._prim_ids.get(key)
        if pid is None:
            pid = self._prim_ids[key] = len(self._prims)
            self._prims.append(key)
        return pid

    def fill_world(self, polys, cls: int, mat: int, inst: int = 0) -> None:
        """Fill 3D polygons ((N, 3) world points), clipped to the near plane. The polygons of
        one call must not overlap (OpenCV fills them with the even-odd rule)."""
        near = self.cam.near
        kept = []
        for P in polys:
            if P[:, 2].min() < near:
                P = _clip_near(P, near)
                if P is None:
                    continue
            kept.append(P)
        if kept:
            self._ops.append(("world", self._prim(cls, mat, inst), len(kept)))
            self._world.extend(kept)

    def fill(self, polys, cls: int, mat: int, inst: int = 0) -> None:
        """Fill 2D polygons (float pixel coordinates; 1/16-pixel precision); as fill_world."""
        self._ops.append(("px", self._prim(cls, mat, inst), [np.rint(p * 16).astype(np.int32) for p in polys]))

    def lines(self, polylines, cls: int, mat: int, inst: int, thickness: int, closed=False) -> None:
        """Draw 2D polylines ``thickness`` pixels wide (thin structures: spokes, pickets, tyres)."""
        self._ops.append(("lines", self._prim(cls, mat, inst), [np.rint(p * 16).astype(np.int32) for p in polylines],
                          max(1, int(thickness)), closed))

    def _rasterise(self) -> None:
        """Project the recorded world polygons in one go and draw every recorded call in order."""
        if self._world:
            sizes = [len(P) for P in self._world]
            pts = np.rint(self.cam.project(np.concatenate(self._world)) * 16).astype(np.int32)
            world = np.split(pts, np.cumsum(sizes)[:-1])
        k = 0
        for op in self._ops:
            if op[0] == "world":
                cv2.fillPoly(self.prim, world[k:k + op[2]], op[1], lineType=cv2.LINE_8, shift=4)
                k += op[2]
            elif op[0] == "px":
                cv2.fillPoly(self.prim, op[2], op[1], lineType=cv2.LINE_8, shift=4)
            else:
                cv2.polylines(self.prim, op[2], op[4], op[1], op[3], lineType=cv2.LINE_8, shift=4)
        self._ops, self._world = [], []

    def maps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(label uint8, material int32, instance uint16) maps of the painting."""
        self._rasterise()
        table = np.array(self._prims, dtype=np.int64)
        return (np.take(table[:, 0].astype(np.uint8), self.prim), np.take(table[:, 1].astype(np.int32), self.prim),
                np.take(table[:, 2].astype(np.uint16), self.prim))


# ------------------------------------------------------------------------------- 3D quads, shapes


def vquad_x(x, z0, z1, y0, y1):
    """A vertical rectangle in the plane X = x (faces along the street)."""
    return np.array([[x, y0, z0], [x, y0, z1], [x, y1, z1], [x, y1, z0]], float)


def vquad_z(z, x0, x1, y0, y1):
    """A vertical rectangle in the plane Z = z (faces looking at the camera)."""
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], float)


def hquad(y, x0, x1, z0, z1):
    """A horizontal rectangle at height y (ground, roofs)."""
    return np.array([[x0, y, z0], [x1, y, z0], [x1, y, z1], [x0, y, z1]], float)


_UNIT_CIRCLES = {n: np.stack([np.cos(np.linspace(0, 2 * np.pi, n, endpoint=False)),
                               np.sin(np.linspace(0, 2 * np.pi, n, endpoint=False))], 1) for n in (10, 12, 14, 16)}


def ellipse2d(cx, cy, rx, ry, n=14, jitter=None):
    """A 2D ellipse polygon; ``jitter`` (per-vertex radius factors) makes it organic."""
    r = np.array([rx, ry]) if jitter is None else np.outer(jitter, [rx, ry])
    return _UNIT_CIRCLES[n] * r + (cx, cy)


def segment_quad(pa, pb, wa, wb):
    """A 2D quad from pa to pb, wa and wb pixels wide at its ends (limbs, arms, spokes)."""
    d = pb - pa
    n = np.hypot(*d)
    normal = np.array([-d[1], d[0]]) / n if n > 1e-6 else np.array([1.0, 0.0])
    return np.array([pa + normal * wa / 2, pb + normal * wb / 2, pb - normal * wb / 2, pa - normal * wa / 2])
