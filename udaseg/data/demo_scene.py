"""Procedural dash-camera street scenes for the embedded demo benchmark (written by ``demo.py``).

``render_scene(rng, style, width, height)`` draws one scene and returns its RGB image, its label
map and an instance map. Labels use internal codes: the 19 trainIds, plus ``STATIC`` (bins: the
Cityscapes "static" void class), ``EGO`` (the ego car's bonnet, Cityscapes "ego vehicle") and
``VOID``; ``demo.py`` converts them to each format's ids.

Two styles, ``SOURCE`` (game-like) and ``TARGET`` (camera-like), differ the way a simulator differs
from a camera — on purpose more than in colour, because a colour-only gap is undone by per-image
normalisation (DESIGN.md §2, lesson 5):

- rendering: flat shading, saturated clean colours, sharp edges and clear skies (SOURCE) versus
  textures laid in world coordinates (asphalt, plaster, bricks, paving, foliage), muted per-object
  colours, soft shadows, haze, colour cast, vignetting, blur and sensor noise (TARGET);
- layout: wide field of view, high camera, wide multi-lane roads, tall buildings with gaps, many
  moving cars and trucks, few pedestrians, palm trees (SOURCE) versus a narrow field of view, low
  camera, narrow streets lined with parked cars, low continuous façades, front yards with
  hedges, trees, pedestrians, cyclists, the odd tram, and the ego car's bonnet (TARGET).

Both share the classes and their shapes (cars have a body, cabin windows and wheels; people a
head, torso, arms and legs), so a model trained on target labels does well on the target.

Drawing model: a painter's algorithm, far to near, in layers (sky, far backdrop, ground, buildings,
yard structures, street objects sorted by depth, bonnet). Every primitive is one ``cv2.fillPoly``
into a primitive-id map, and a primitive carries (class, material, instance): label, instances
and image come from the same painting and agree pixel-exactly. Materials are shaded afterwards,
vectorised per material kind; textures that need a pixel's position on its surface (lane marks,
paving joints, windows) get it analytically from the camera model.
"""
from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from udaseg.data.labels import CLASSES_19

# ----------------------------------------------------------------------------------- label codes

(ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEGETATION, TERRAIN, SKY,
 PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE) = range(19)
STATIC, EGO, VOID = 253, 254, 255
assert (CLASSES_19[ROAD], CLASSES_19[SKY], CLASSES_19[BICYCLE]) == ("road", "sky", "bicycle")
THINGS = (PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE)

# Material kinds (how a material is shaded after painting) and ground patterns (ground param 1).
FLAT, SKYGRAD, GROUND, FACADE, LEAF, GLASS, EMIT = range(7)
GRASS, ASPHALT, PAVING = range(3)
KERB_H = 0.15  # sidewalks are raised by a kerb, metres

# ---------------------------------------------------------------------------------------- styles

Box = tuple[tuple[float, float], tuple[float, float], tuple[float, float]]  # HSV ranges


@dataclass(frozen=True)
class Style:
    """The ranges one domain draws its scenes from. Densities are expected counts per 100 m of
    street (per lane for moving vehicles, per side for things along the kerb)."""

    name: str
    # camera
    hfov_deg: tuple[float, float]
    horizon: tuple[float, float]  # horizon row / image height (the camera looks level)
    cam_height: tuple[float, float]  # metres above the road
    hood: bool  # the ego car's bonnet at the bottom of the frame
    # street
    lanes: tuple[int, int]
    parking_p: float  # probability of a parking strip along each side
    sidewalk: tuple[float, float]
    verge_p: float  # probability of a grass verge between the kerb and the sidewalk, per side
    zebra_p: float  # probability of a mid-block zebra crossing with pedestrian lights
    yard_p: float  # probability of a front yard (grass, hedge/wall/fence) along each side
    yard: tuple[float, float]
    street_len: tuple[float, float]
    crossings: tuple[float, ...]  # probabilities of 0, 1, 2 ... cross streets
    # buildings
    suburb_p: float  # probability of a suburban street: low houses in gardens, wide open sky
    block_len: tuple[float, float]
    storeys: tuple[int, int]
    tower_p: float
    gap_p: float
    # objects
    cars_per_lane: float
    truck_p: float
    bus_p: float
    moto_p: float
    tram_p: float  # per image
    parked: float  # parked-car fill ratio of a parking strip
    persons: float
    riders: float
    bike_p: float  # share of riders on bicycles (the rest on motorcycles)
    parked_bikes: float
    trees: float
    palm_p: float
    lamps: float
    signs: float
    statics: float
    structures: tuple[float, float, float, float]  # P(none, hedge, wall, fence) of a frontage run
    # rendering
    camera_like: bool  # textures, haze, soft shadows, cast, vignetting, blur, sensor noise
    sunny_p: float
    colours: dict = field(hash=False, compare=False)


# Game-like colours: saturated, clean, bright.
_SOURCE_COLOURS: dict[str, list[Box]] = {
    "road": [((0.58, 0.68), (0.05, 0.15), (0.20, 0.30))],
    "sidewalk": [((0.06, 0.12), (0.06, 0.22), (0.66, 0.82)), ((0.55, 0.65), (0.02, 0.08), (0.70, 0.85))],
    "kerb": [((0.0, 1.0), (0.0, 0.04), (0.78, 0.92)), ((0.98, 1.02), (0.60, 0.80), (0.60, 0.80)),
             ((0.12, 0.15), (0.70, 0.85), (0.75, 0.90))],
    "terrain": [((0.20, 0.30), (0.55, 0.80), (0.50, 0.72))],
    "building": [((0.05, 0.14), (0.25, 0.55), (0.70, 0.92)), ((0.0, 1.0), (0.30, 0.60), (0.60, 0.90)),
                 ((0.55, 0.65), (0.05, 0.20), (0.75, 0.95))],
    "tower": [((0.50, 0.62), (0.35, 0.70), (0.45, 0.75))],
    "frame": [((0.0, 1.0), (0.0, 0.10), (0.75, 0.95))],
    "window": [((0.55, 0.62), (0.35, 0.65), (0.22, 0.42))],
    "wall": [((0.02, 0.12), (0.15, 0.45), (0.60, 0.85))],
    "fence": [((0.0, 1.0), (0.0, 0.08), (0.55, 0.80)), ((0.05, 0.10), (0.40, 0.60), (0.45, 0.65))],
    "pole": [((0.0, 1.0), (0.0, 0.06), (0.35, 0.60)), ((0.30, 0.40), (0.40, 0.60), (0.25, 0.40))],
    "leaf": [((0.22, 0.33), (0.50, 0.80), (0.30, 0.58))],
    "trunk": [((0.06, 0.10), (0.45, 0.70), (0.30, 0.45))],
    "car": [((0.0, 1.0), (0.70, 0.95), (0.55, 0.92)), ((0.0, 1.0), (0.0, 0.05), (0.85, 0.97)),
            ((0.0, 1.0), (0.0, 0.10), (0.08, 0.18)), ((0.0, 1.0), (0.0, 0.08), (0.45, 0.75))],
    "truck": [((0.0, 1.0), (0.50, 0.90), (0.60, 0.95)), ((0.0, 1.0), (0.0, 0.05), (0.85, 0.97))],
    "bus": [((0.0, 0.15), (0.70, 0.90), (0.80, 0.95)), ((0.55, 0.65), (0.60, 0.90), (0.60, 0.90))],
    "tram": [((0.0, 0.05), (0.70, 0.90), (0.70, 0.90))],
    "glass": [((0.55, 0.62), (0.30, 0.60), (0.15, 0.30))],
    "skin": [((0.04, 0.09), (0.25, 0.60), (0.45, 0.95))],
    "shirt": [((0.0, 1.0), (0.60, 0.95), (0.50, 0.95)), ((0.0, 1.0), (0.0, 0.05), (0.90, 1.0))],
    "trousers": [((0.58, 0.65), (0.50, 0.80), (0.35, 0.60)), ((0.0, 1.0), (0.0, 0.10), (0.10, 0.25)),
                 ((0.08, 0.12), (0.30, 0.50), (0.60, 0.80))],
    "hair": [((0.05, 0.10), (0.40, 0.80), (0.10, 0.40)), ((0.10, 0.13), (0.50, 0.70), (0.70, 0.90))],
    "bike": [((0.0, 1.0), (0.70, 0.95), (0.50, 0.90))],
    "static": [((0.30, 0.40), (0.50, 0.80), (0.30, 0.50)), ((0.0, 1.0), (0.0, 0.10), (0.30, 0.50))],
    "hood": [((0.0, 1.0), (0.0, 0.1), (0.1, 0.2))],
    # (zenith, horizon) pairs: clear blue day, hazy blue day, or a purple-orange dusk
    "sky": [((0.57, 0.62), (0.55, 0.80), (0.80, 0.97)), ((0.54, 0.60), (0.12, 0.35), (0.92, 1.0)),
            ((0.55, 0.60), (0.30, 0.50), (0.85, 1.0)), ((0.12, 0.16), (0.05, 0.20), (0.92, 1.0)),
            ((0.72, 0.80), (0.30, 0.50), (0.60, 0.80)), ((0.05, 0.10), (0.40, 0.60), (0.95, 1.0))],
}

# Camera-like colours: muted, greyer, darker foliage, overcast skies; wider per-object spread.
_TARGET_COLOURS: dict[str, list[Box]] = {
    "road": [((0.55, 0.70), (0.0, 0.08), (0.30, 0.44))],
    "sidewalk": [((0.04, 0.12), (0.03, 0.15), (0.42, 0.60)), ((0.0, 0.05), (0.15, 0.30), (0.40, 0.55))],
    "kerb": [((0.0, 1.0), (0.0, 0.05), (0.50, 0.65))],
    "terrain": [((0.14, 0.25), (0.25, 0.50), (0.30, 0.50)), ((0.10, 0.14), (0.25, 0.40), (0.35, 0.50))],
    "building": [((0.07, 0.13), (0.10, 0.35), (0.50, 0.80)), ((0.0, 1.0), (0.0, 0.06), (0.40, 0.85)),
                 ((0.02, 0.06), (0.35, 0.55), (0.35, 0.55))],
    "tower": [((0.55, 0.60), (0.05, 0.20), (0.40, 0.60))],
    "frame": [((0.0, 1.0), (0.0, 0.05), (0.50, 0.70))],
    "window": [((0.55, 0.65), (0.05, 0.25), (0.12, 0.35))],
    "wall": [((0.05, 0.12), (0.05, 0.25), (0.45, 0.70)), ((0.0, 1.0), (0.0, 0.05), (0.40, 0.65))],
    "fence": [((0.0, 1.0), (0.0, 0.06), (0.25, 0.55)), ((0.07, 0.10), (0.30, 0.50), (0.30, 0.45))],
    "pole": [((0.0, 1.0), (0.0, 0.05), (0.30, 0.55))],
    "leaf": [((0.17, 0.28), (0.30, 0.60), (0.18, 0.40))],
    "trunk": [((0.06, 0.10), (0.20, 0.40), (0.20, 0.35))],
    "car": [((0.0, 1.0), (0.0, 0.05), (0.60, 0.85)), ((0.0, 1.0), (0.0, 0.05), (0.08, 0.20)),
            ((0.0, 1.0), (0.0, 0.04), (0.85, 0.95)), ((0.58, 0.66), (0.30, 0.60), (0.20, 0.45)),
            ((0.97, 1.02), (0.40, 0.70), (0.30, 0.55)), ((0.0, 1.0), (0.05, 0.25), (0.35, 0.60))],
    "truck": [((0.0, 1.0), (0.0, 0.10), (0.55, 0.90)), ((0.55, 0.65), (0.30, 0.50), (0.30, 0.50))],
    "bus": [((0.0, 1.0), (0.0, 0.05), (0.75, 0.90)), ((0.10, 0.14), (0.60, 0.80), (0.70, 0.85))],
    "tram": [((0.0, 1.0), (0.0, 0.05), (0.75, 0.90)), ((0.95, 1.0), (0.50, 0.70), (0.50, 0.65))],
    "glass": [((0.55, 0.65), (0.10, 0.30), (0.10, 0.25))],
    "skin": [((0.04, 0.09), (0.20, 0.50), (0.35, 0.85))],
    "shirt": [((0.0, 1.0), (0.05, 0.40), (0.15, 0.70)), ((0.0, 1.0), (0.0, 0.05), (0.05, 0.20))],
    "trousers": [((0.58, 0.65), (0.20, 0.50), (0.15, 0.40)), ((0.0, 1.0), (0.0, 0.08), (0.05, 0.20)),
                 ((0.08, 0.12), (0.15, 0.35), (0.35, 0.60))],
    "hair": [((0.05, 0.10), (0.30, 0.70), (0.08, 0.35)), ((0.0, 1.0), (0.0, 0.05), (0.50, 0.70))],
    "bike": [((0.0, 1.0), (0.0, 0.20), (0.10, 0.50)), ((0.0, 1.0), (0.30, 0.60), (0.20, 0.50))],
    "static": [((0.30, 0.40), (0.20, 0.40), (0.20, 0.35)), ((0.0, 1.0), (0.0, 0.05), (0.20, 0.40))],
    "hood": [((0.0, 1.0), (0.0, 0.05), (0.06, 0.14))],
    # (zenith, horizon) pairs: overcast grey, or a pale blue sky
    "sky": [((0.0, 1.0), (0.0, 0.05), (0.72, 0.90)), ((0.0, 1.0), (0.0, 0.04), (0.82, 0.97)),
            ((0.56, 0.60), (0.15, 0.35), (0.72, 0.88)), ((0.55, 0.60), (0.05, 0.15), (0.85, 0.95))],
}

SOURCE = Style(
    name="source", hfov_deg=(70, 86), horizon=(0.36, 0.46), cam_height=(1.6, 2.4), hood=False,
    lanes=(2, 5), parking_p=0.2, sidewalk=(3.0, 6.0), verge_p=0.25, zebra_p=0.15, yard_p=0.5, yard=(1.5, 4.0),
    street_len=(110, 200),
    crossings=(0.45, 0.4, 0.15), suburb_p=0.35, block_len=(12, 45), storeys=(2, 9), tower_p=0.12, gap_p=0.45,
    cars_per_lane=4.0, truck_p=0.16, bus_p=0.06, moto_p=0.08, tram_p=0.02, parked=0.35,
    persons=1.5, riders=0.6, bike_p=0.3, parked_bikes=0.2, trees=4.0, palm_p=0.5, lamps=3.5,
    signs=2.0, statics=1.0, structures=(0.45, 0.1, 0.25, 0.2), camera_like=False, sunny_p=0.9,
    colours=_SOURCE_COLOURS,
)

TARGET = Style(
    name="target", hfov_deg=(48, 60), horizon=(0.42, 0.50), cam_height=(1.1, 1.4), hood=True,
    lanes=(1, 3), parking_p=0.75, sidewalk=(2.5, 5.0), verge_p=0.45, zebra_p=0.35, yard_p=0.6, yard=(1.5, 5.0),
    street_len=(70, 140),
    crossings=(0.55, 0.45), suburb_p=0.1, block_len=(10, 30), storeys=(2, 6), tower_p=0.0, gap_p=0.12,
    cars_per_lane=2.0, truck_p=0.04, bus_p=0.03, moto_p=0.04, tram_p=0.1, parked=0.45,
    persons=9.0, riders=2.0, bike_p=0.8, parked_bikes=3.0, trees=8.0, palm_p=0.0, lamps=6.0,
    signs=5.0, statics=3.0, structures=(0.25, 0.35, 0.2, 0.2), camera_like=True, sunny_p=0.35,
    colours=_TARGET_COLOURS,
)
STYLES = {"source": SOURCE, "target": TARGET}

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


def _hsv(rng, box: Box) -> np.ndarray:
    """A random colour from an HSV box (hue ranges may wrap past 1)."""
    lo, hi = np.array(box, np.float64).T
    h, s, v = rng.uniform(lo, hi)
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), np.float32)


# ------------------------------------------------------------------------------------ the scene


@dataclass
class Look:
    """Per-image lighting and atmosphere drawn from the style."""

    sunny: bool
    sun_side: int  # +1: sun on the right (+X), -1: left
    face: dict  # brightness of faces by orientation ("top", "near", "px" (+X normal), "nx")
    sky_top: np.ndarray
    sky_low: np.ndarray
    haze: np.ndarray
    visibility: float  # metres
    shadow: float  # ground brightness in shadow


@dataclass
class Street:
    """Street geometry in world metres (X = 0 is the centre of the camera's lane). Sides are
    indexed by s = -1 (left) and +1 (right)."""

    lane_w: float
    n_onc: int  # oncoming lanes, left of the centre line
    n_fwd: int
    centre: float  # X of the line between the directions
    park_l: float
    park_r: float
    xl: float  # road edges (kerb lines)
    xr: float
    sw: tuple[float, float]  # sidewalk widths left, right (a verge included)
    verge: tuple[float, float]  # grass verge widths along the kerb (0: none)
    yard: tuple[float, float]
    z_far: float  # end of the street: the far backdrop stands here
    suburb: bool  # low houses in gardens
    crossings: list[tuple[float, float]]  # Z ranges of cross streets
    zebras: list[float] = field(default_factory=list)  # far edges of zebra crossings (3.7 m deep)
    blocks: tuple[list, list] = ((), ())  # buildings per side: (z0, z1, height, setback)
    lines: list = field(default_factory=list)  # lane markings: (x, width, rgb, period, duty)

    def edge(self, s):
        return self.xl if s < 0 else self.xr

    def walk_edge(self, s):
        """Inner edge of the paved sidewalk of side s (beyond the verge)."""
        return self.edge(s) + s * self.verge[s > 0]

    def prop(self, s):
        """The property line (outer sidewalk edge) of side s (-1 left, +1 right)."""
        return self.edge(s) + s * self.sw[s > 0]

    def facade(self, s):
        return self.prop(s) + s * self.yard[s > 0]

    def in_crossing(self, z, margin=0.0):
        return any(a - margin <= z <= b + margin for a, b in self.crossings)


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


def sample_camera(rng, style: Style, width: int, height: int) -> Camera:
    """Field of view, horizon row and camera height from the style's ranges."""
    f = width / (2 * math.tan(math.radians(rng.uniform(*style.hfov_deg)) / 2))
    return Camera(width, height, f, cx=width / 2 + rng.uniform(-0.03, 0.03) * width,
                  cy=rng.uniform(*style.horizon) * height, h=rng.uniform(*style.cam_height))


def sample_look(rng, style: Style) -> Look:
    """Weather and light of one image: sun or overcast, face brightness, sky colours, haze."""
    sunny = bool(rng.random() < style.sunny_p)
    sun_side = int(rng.choice([-1, 1]))
    if style.camera_like:  # soft light: small contrast between faces
        lit, dark, top, near = (0.97, 0.72, 1.05, 0.88) if sunny else (0.93, 0.84, 1.03, 0.92)
    else:  # game sun: strong, clean face contrast
        lit, dark, top, near = (1.0, 0.62, 1.15, 0.84) if sunny else (0.95, 0.75, 1.08, 0.88)
    face = {None: 1.0, "top": top, "near": near, "px": lit if sun_side > 0 else dark,
            "nx": dark if sun_side > 0 else lit}
    skies = style.colours["sky"]
    i = 2 * int(rng.integers(len(skies) // 2))
    sky_top, sky_low = _hsv(rng, skies[i]), _hsv(rng, skies[i + 1])
    vis = rng.uniform(120, 350) if style.camera_like else rng.uniform(500, 1500)
    shadow = (rng.uniform(0.5, 0.65) if sunny else rng.uniform(0.78, 0.88))
    return Look(sunny, sun_side, face, sky_top, sky_low, haze=sky_low * 0.95, visibility=vis, shadow=shadow)


def _poisson(rng, mean) -> int:
    return int(rng.poisson(max(mean, 0.0)))


def sample_street(rng, style: Style) -> Street:
    """Road, lanes, sidewalks, yards, cross streets and the building blocks along both sides."""
    n = int(rng.integers(style.lanes[0], style.lanes[1] + 1))
    n_fwd = max(1, (n + 1) // 2) if rng.random() < 0.85 else n  # sometimes a one-way street
    n_onc = n - n_fwd
    lane_w = rng.uniform(3.0, 3.7)
    ego = int(rng.integers(n_fwd))
    centre = -(ego + 0.5) * lane_w
    park_l = 2.2 if rng.random() < style.parking_p else 0.0
    park_r = 2.2 if rng.random() < style.parking_p else 0.0
    xl = centre - n_onc * lane_w - park_l
    xr = centre + n_fwd * lane_w + park_r
    sw = (rng.uniform(*style.sidewalk), rng.uniform(*style.sidewalk))
    verge = tuple(rng.uniform(0.8, min(2.0, w - 1.5)) if rng.random() < style.verge_p else 0.0 for w in sw)
    suburb = bool(rng.random() < style.suburb_p)
    if suburb:  # front gardens everywhere
        yard = (rng.uniform(4, 10), rng.uniform(4, 10))
    else:
        yard = tuple(rng.uniform(*style.yard) if rng.random() < style.yard_p else 0.0 for _ in range(2))
    z_far = rng.uniform(*style.street_len)
    n_cross = int(rng.choice(len(style.crossings), p=np.array(style.crossings) / sum(style.crossings)))
    crossings = []
    for _ in range(n_cross):
        zc = rng.uniform(14, z_far - 30)
        width = rng.uniform(9, 16)
        if all(abs(zc - a) > width + 25 for a, _ in crossings):
            crossings.append((zc, zc + width))
    crossings.sort()
    zebras = [a - 0.8 for a, _ in crossings]
    if rng.random() < style.zebra_p:
        zz = rng.uniform(12, 45)
        if all(abs(zz - a) > 15 for a, _ in crossings):
            zebras.append(zz)
    st = Street(lane_w, n_onc, n_fwd, centre, park_l, park_r, xl, xr, sw, verge, yard, z_far, suburb, crossings, zebras)
    st.blocks = (_sample_blocks(rng, style, st, -1), _sample_blocks(rng, style, st, +1))
    st.lines = _lane_lines(rng, style, st)
    return st


def _sample_blocks(rng, style: Style, st: Street, s: int) -> list:
    """Building blocks along side s: (z0, z1, height, setback), near to far, with gaps."""
    blocks, z = [], -15.0
    cross_sw = max(st.sw)
    while z < st.z_far:
        hole = next(((a, b) for a, b in st.crossings if a - cross_sw - 1 <= z < b + cross_sw), None)
        if hole:
            z = hole[1] + cross_sw + 0.5
            continue
        length = rng.uniform(8, 18) if st.suburb else rng.uniform(*style.block_len)
        nxt = min([a - cross_sw for a, _ in st.crossings if a - cross_sw > z] + [st.z_far + 50])
        z1 = min(z + length, nxt)
        if st.suburb:  # houses
            storeys = int(rng.integers(0, 3))
        else:
            storeys = int(rng.integers(style.storeys[0], style.storeys[1] + 1))
            if rng.random() < style.tower_p:
                storeys = int(rng.integers(15, 35))
        height = 4.0 + storeys * rng.uniform(3.0, 3.5)
        setback = rng.uniform(0, 2.0) if rng.random() < 0.3 else 0.0
        blocks.append((z, z1, height, setback))
        gap_p = 0.7 if st.suburb else style.gap_p
        z = z1 + (rng.uniform(4, 14) if rng.random() < gap_p else 0.0)
    return blocks


def _lane_lines(rng, style: Style, st: Street) -> list:
    """Lane markings as (x, width, rgb, dash period (0 = solid), duty). Game: US-style double
    yellow centre line and white edge lines; camera: European white dashes, worn."""
    white = np.array([0.95, 0.95, 0.92], np.float32)
    yellow = np.array([0.95, 0.78, 0.15], np.float32)
    lines = []
    start = st.centre - st.n_onc * st.lane_w
    for i in range(1, st.n_onc + st.n_fwd):
        x = start + i * st.lane_w
        if abs(x - st.centre) < 1e-6 and st.n_onc:
            if style.camera_like:
                lines.append((x, 0.12, white, 6.0, 0.5))
            else:
                lines += [(x - 0.12, 0.12, yellow, 0.0, 1.0), (x + 0.12, 0.12, yellow, 0.0, 1.0)]
        else:
            period, duty = (4.5, 0.5) if style.camera_like else (9.0, 0.35)
            lines.append((x, 0.12, white, period, duty))
    if not style.camera_like:
        lines += [(st.xl + st.park_l + 0.3, 0.15, white, 0.0, 1.0), (st.xr - st.park_r - 0.3, 0.15, white, 0.0, 1.0)]
    else:  # parking strips: a thin solid line
        if st.park_l:
            lines.append((st.xl + st.park_l, 0.1, white, 0.0, 1.0))
        if st.park_r:
            lines.append((st.xr - st.park_r, 0.1, white, 0.0, 1.0))
    return lines


def _free_intervals(z0, z1, holes):
    """[z0, z1] minus the hole intervals."""
    out, a = [], z0
    for h0, h1 in sorted(holes):
        if h1 <= a or h0 >= z1:
            continue
        if h0 > a:
            out.append((a, h0))
        a = max(a, h1)
    if a < z1:
        out.append((a, z1))
    return out


# ------------------------------------------------------------------------- background: sky ... buildings


def paint_sky(sc: Scene) -> None:
    """Sky over the whole frame (everything else is painted over it); game skies get crisp clouds."""
    cam, lk = sc.cam, sc.look
    w, h = cam.width, cam.height
    sc.fill2(np.array([[0, 0], [w, 0], [w, h], [0, h]], float), SKY,
             sc.cv.material(lk.sky_top, SKYGRAD, lk.sky_low))
    if sc.style.camera_like:
        return  # overcast structure comes from the sky shader's cloud field
    white = sc.cv.material(np.array([0.97, 0.97, 1.0]) * sc.u(0.9, 1.0))
    for _ in range(_poisson(sc.rng, 2.5)):
        x, y, r = sc.u(0, w), sc.u(0.05, 0.7) * cam.cy, sc.u(0.04, 0.1) * w
        for _ in range(3 + sc.pick(3)):
            sc.fill2(ellipse2d(x + sc.u(-1.5, 1.5) * r, y + sc.u(-0.3, 0.3) * r, r * sc.u(0.6, 1.2),
                               r * sc.u(0.3, 0.5)), SKY, white)


def _facade_mat(sc: Scene, rgb, axis: int, plane: float, face, tower=False) -> int:
    """A façade material: windows and storeys are laid out in the façade's own plane."""
    if tower:
        return sc.mat(sc.colour("frame"), face=face, kind=FACADE, rgb2=sc.colour("tower"),
                      params=(axis, plane, 3.6, 1.6, 0.9, 0.86, 4.0, sc.u(0, 2)))
    floor_h = sc.u(3.0, 3.5)
    spacing = sc.u(2.2, 3.4)
    return sc.mat(rgb, face=face, kind=FACADE, rgb2=sc.colour("window"),
                  params=(axis, plane, floor_h, spacing, sc.u(0.35, 0.6), sc.u(0.4, 0.6), sc.u(3.5, 4.5),
                          sc.u(0, spacing)))


def paint_backdrop(sc: Scene) -> None:
    """The far end of the street: a row of buildings and tree lines across the view at z_far."""
    st, cam = sc.street, sc.cam
    zb = st.z_far
    xmax = zb * (cam.width / 2 + abs(cam.cx - cam.width / 2)) / cam.f + 20
    x = -xmax
    tall = 1.0 if sc.style.camera_like else 2.0
    while x < xmax:
        w = sc.u(8, 30)
        if sc.p() < (0.4 if sc.style.camera_like else 0.25):
            xs = np.linspace(x, x + w, 9)
            ys = sc.u(5, 11) + sc.rng.uniform(-1.5, 1.5, xs.size)
            pts = np.concatenate([np.stack([xs, ys, np.full_like(xs, zb)], 1), [[x + w, 0, zb], [x, 0, zb]]])
            sc.fill3(pts, VEGETATION, sc.mat(sc.colour("leaf"), zb, kind=LEAF))
        else:
            height = sc.u(6, 25) * tall
            sc.fill3(vquad_z(zb, x, x + w, 0, height), BUILDING,
                     _facade_mat(sc, sc.colour("building"), 1, zb, "near"))
        x += w


def paint_ground(sc: Scene) -> None:
    """Vacant grass everywhere, the road and cross streets, then raised sidewalks, kerbs, yards.
    Order matters only between levels: surfaces at Y = 0 first, raised ones (kerb height) after."""
    st, cam = sc.street, sc.cam
    near, far, big = cam.near, st.z_far, 3 * st.z_far
    grass = sc.mat(sc.colour("terrain"), kind=GROUND, params=(0.0, GRASS))
    sc.fill3(hquad(0, -big, big, near, far), TERRAIN, grass)
    road = sc.mat(sc.colour("road"), kind=GROUND, params=(0.0, ASPHALT))
    sc.fill3(hquad(0, st.xl, st.xr, near, far), ROAD, road)
    for a, b in st.crossings:
        sc.fill3(hquad(0, -big, big, a, b), ROAD, road)
    walk = sc.mat(sc.colour("sidewalk"), kind=GROUND, params=(KERB_H, PAVING))
    kerb_rgb = sc.colour("kerb")
    yard_grass = sc.mat(sc.colour("terrain"), kind=GROUND, params=(KERB_H, GRASS))
    for s in (-1, 1):
        edge, prop, fac = st.edge(s), st.prop(s), st.facade(s)
        kerb = sc.mat(kerb_rgb, face="px" if s < 0 else "nx")
        for a, b in _free_intervals(near, far, st.crossings):
            sc.fill3(hquad(KERB_H, min(edge, prop), max(edge, prop), a, b), SIDEWALK, walk)
            if st.verge[s > 0]:
                inner = st.walk_edge(s)
                sc.fill3(hquad(KERB_H, min(edge, inner), max(edge, inner), a, b), TERRAIN, yard_grass)
            sc.fill3(vquad_x(edge, a, b, 0, KERB_H), SIDEWALK, kerb)
            if st.yard[s > 0] > 0:
                sc.fill3(hquad(KERB_H, min(prop, fac), max(prop, fac), a, b), TERRAIN, yard_grass)
        cross_sw = max(st.sw)
        outer = -big if s < 0 else big
        for a, b in st.crossings:  # the cross streets' sidewalks and the far kerb facing us
            lo, hi = min(edge, outer), max(edge, outer)
            sc.fill3(hquad(KERB_H, lo, hi, a - cross_sw, a), SIDEWALK, walk)
            sc.fill3(hquad(KERB_H, lo, hi, b, b + cross_sw), SIDEWALK, walk)
            sc.fill3(vquad_z(b, lo, hi, 0, KERB_H), SIDEWALK, sc.mat(kerb_rgb, face="near"))


def paint_back_rows(sc: Scene) -> None:
    """Buildings and tree lines a street further out: seen through gaps and over low blocks."""
    st = sc.street
    for s in (-1, 1):
        xb = st.facade(s) + s * sc.u(15, 35)
        z = -10.0
        mean_h = np.mean([b[2] for b in st.blocks[s > 0]]) if st.blocks[s > 0] else 15.0
        low, high, empty = (0.6, 1.5, 0.0) if sc.style.camera_like else (0.4, 1.1, 0.3)  # game: open sky behind
        while z < st.z_far:
            length = sc.u(15, 40)
            if sc.p() < empty:
                pass
            elif sc.p() < 0.3:
                zs = np.linspace(z, z + length, 7)
                ys = sc.u(6, 12) + sc.rng.uniform(-1.5, 1.5, zs.size)
                pts = np.concatenate([np.stack([np.full_like(zs, xb), ys, zs], 1), [[xb, 0, z + length], [xb, 0, z]]])
                sc.fill3(pts, VEGETATION, sc.mat(sc.colour("leaf"), z + 20, kind=LEAF))
            else:
                height = mean_h * sc.u(low, high)
                sc.fill3(vquad_x(xb, z, z + length, 0, height), BUILDING,
                         _facade_mat(sc, sc.colour("building"), 0, xb, "px" if s < 0 else "nx"))
            z += length


def paint_buildings(sc: Scene) -> None:
    """Street-facing façades and the end faces that look at the camera, far to near per side."""
    st = sc.street
    for s in (-1, 1):
        fac = st.facade(s)
        face = "px" if s < 0 else "nx"
        for z0, z1, height, setback in reversed(st.blocks[s > 0]):
            xf = fac + s * setback
            tower = height > 70 and not sc.style.camera_like
            rgb = sc.colour("building")
            after_crossing = any(abs(z0 - (b + max(st.sw))) < 1.0 for _, b in st.crossings)
            depth = 80.0 if after_crossing else 20.0
            if z0 > sc.cam.near:
                sc.fill3(vquad_z(z0, min(xf, xf + s * depth), max(xf, xf + s * depth), 0, height), BUILDING,
                         _facade_mat(sc, rgb, 1, z0, "near", tower))
            sc.fill3(vquad_x(xf, z0, z1, 0, height), BUILDING, _facade_mat(sc, rgb, 0, xf, face, tower))
            if sc.look.sunny and s == sc.look.sun_side:  # this side shades the street
                reach = min(height * sc.u(0.2, 0.5), abs(st.facade(-s) - xf))
                sc.shadow3(hquad(0, min(xf, xf - s * reach), max(xf, xf - s * reach), z0, z1))


# ------------------------------------------------------------------------------------- objects


def paint_box(sc: Scene, x0, x1, y0, y1, z0, z1, cls, rgb, inst=0, kind=FLAT, rgb2=None,
              faces=("top", "side", "near")) -> None:
    """The camera-facing faces of an axis-aligned box, each lit by its orientation."""
    cam = sc.cam
    if "top" in faces and cam.h > y1:
        sc.fill3(hquad(y1, x0, x1, z0, z1), cls, sc.mat(rgb, z0, "top", kind, rgb2), inst)
    if "side" in faces and x1 < 0:
        sc.fill3(vquad_x(x1, z0, z1, y0, y1), cls, sc.mat(rgb, z0, "px", kind, rgb2), inst)
    elif "side" in faces and x0 > 0:
        sc.fill3(vquad_x(x0, z0, z1, y0, y1), cls, sc.mat(rgb, z0, "nx", kind, rgb2), inst)
    if "near" in faces and z0 > cam.near:
        sc.fill3(vquad_z(z0, x0, x1, y0, y1), cls, sc.mat(rgb, z0, "near", kind, rgb2), inst)


_CIRCLE = np.stack([np.cos(np.linspace(0, 2 * np.pi, 14, endpoint=False)),
                    np.sin(np.linspace(0, 2 * np.pi, 14, endpoint=False))], 1)


def _wheels_on_side(sc: Scene, xs, zcs, r, cls, inst, tyre, hub):
    """Wheels on a vehicle side in the plane X = xs: dark tyre discs with lighter hubs."""
    for rad, m in ((r, tyre), (r * 0.55, hub)):
        sc.fill3([np.stack([np.full(14, xs), r + rad * _CIRCLE[:, 1], zc + rad * _CIRCLE[:, 0]], 1) for zc in zcs],
                 cls, m, inst)


def _visible_side(x0, x1):
    """X of the vehicle side the camera sees, or None when the vehicle is straight ahead."""
    return x1 if x1 < -0.3 else x0 if x0 > 0.3 else None


def paint_car(sc: Scene, xc, z0, facing):
    """A car: wheels, body box, cabin box with glass, lights and plate on the near face."""
    w, L = sc.u(1.7, 1.95), sc.u(3.9, 4.8)
    hb, hc, clear = sc.u(0.9, 1.05), sc.u(1.38, 1.55), 0.28
    inst = sc.cv.new_instance()
    x0, x1 = xc - w / 2, xc + w / 2
    body = sc.colour("car")
    glass = sc.mat(sc.colour("glass"), z0, kind=GLASS)
    tyre = sc.mat(np.array([0.06, 0.06, 0.07]), z0)
    detailed = w * sc.px_per_m(z0) > 8
    sc.shadow3(hquad(0, x0 - 0.15 - 0.4 * sc.look.sun_side * sc.look.sunny, x1 + 0.15, z0 + 0.1, z0 + L + 0.3))
    if detailed and z0 + 0.6 > sc.cam.near:  # near wheels under the body
        sc.fill3([vquad_z(z0 + 0.6, a, a + 0.25, 0, clear + 0.1) for a in (x0 + 0.1, x1 - 0.35)], CAR, tyre, inst)
    paint_box(sc, x0, x1, clear, hb, z0, z0 + L, CAR, body, inst)
    if w * sc.px_per_m(z0) < 3:  # a few pixels: the body is all there is to see
        paint_box(sc, x0 + 0.12, x1 - 0.12, hb, hc, z0 + L * 0.3, z0 + L * 0.8, CAR, body, inst, faces=("near",))
        return
    xs = _visible_side(x0, x1)
    if xs is not None and detailed:
        hub = sc.mat(np.array([0.55, 0.55, 0.58]), z0)
        _wheels_on_side(sc, xs, (z0 + 0.8, z0 + L - 0.85), 0.33, CAR, inst, tyre, hub)
    cz0 = z0 + L * (0.28 if facing > 0 else 0.38)
    cz1 = z0 + L * (0.78 if facing > 0 else 0.86)
    paint_box(sc, x0 + 0.12, x1 - 0.12, hb, hc, cz0, cz1, CAR, body, inst)
    if not detailed:
        return
    if cz0 > sc.cam.near:  # rear window / windscreen
        sc.fill3(vquad_z(cz0 - 0.01, x0 + 0.2, x1 - 0.2, hb + 0.05, hc - 0.06), CAR, glass, inst)
    if xs is not None:  # side windows with a pillar between them
        xw = xs - 0.12 if xs > 0 else xs + 0.12  # the cabin is inset from the body side
        mid = (cz0 + cz1) / 2
        panes = ((cz0 + 0.12, mid - 0.06), (mid + 0.06, cz1 - 0.12))
        sc.fill3([vquad_x(xw, a, b, hb + 0.06, hc - 0.06) for a, b in panes], CAR, glass, inst)
    if z0 > sc.cam.near:  # lights, plate and bumper on the near face
        lamp = np.array([0.9, 0.1, 0.08]) if facing > 0 else np.array([1.0, 0.97, 0.85])
        lamp_m = sc.mat(lamp, z0, kind=EMIT)
        sc.fill3([vquad_z(z0 - 0.01, a, a + 0.3, hb - 0.25, hb - 0.1) for a in (x0 + 0.08, x1 - 0.38)],
                 CAR, lamp_m, inst)
        sc.fill3(vquad_z(z0 - 0.01, x0, x1, clear, clear + 0.14), CAR, sc.mat(body * 0.4, z0, "near"), inst)
        sc.fill3(vquad_z(z0 - 0.02, xc - 0.26, xc + 0.26, clear + 0.2, clear + 0.32), CAR,
                 sc.mat(np.array([0.92, 0.92, 0.88]), z0), inst)


def paint_truck(sc: Scene, xc, z0, facing):
    """A lorry: cargo box and cab (cab at the far end when we see its back), chassis, wheels."""
    w, L = sc.u(2.35, 2.55), sc.u(7.0, 10.0)
    hbox, hcab = sc.u(3.2, 3.8), sc.u(2.7, 3.0)
    inst = sc.cv.new_instance()
    x0, x1 = xc - w / 2, xc + w / 2
    cab_rgb, box_rgb = sc.colour("truck"), sc.colour("truck") if sc.p() < 0.5 else np.array([0.85, 0.85, 0.85])
    tyre = sc.mat(np.array([0.05, 0.05, 0.06]), z0)
    dark = np.array([0.12, 0.12, 0.13])
    sc.shadow3(hquad(0, x0 - 0.2, x1 + 0.2, z0, z0 + L + 0.3))
    xs = _visible_side(x0, x1)
    if facing > 0:
        cab = (z0 + L - 2.3, z0 + L)
        paint_box(sc, x0 + 0.05, x1 - 0.05, 0.5, hcab, *cab, TRUCK, cab_rgb, inst)
        paint_box(sc, x0 + 0.3, x1 - 0.3, 0.45, 0.95, z0 + 0.2, z0 + L - 2.4, TRUCK, dark, inst)
        if xs is not None:
            _wheels_on_side(sc, xs, (z0 + 1.2, z0 + 2.5, z0 + L - 1.4), 0.5, TRUCK, inst, tyre,
                            sc.mat(dark * 3, z0))
        paint_box(sc, x0, x1, 0.95, hbox, z0, z0 + L - 2.4, TRUCK, box_rgb, inst)
        if z0 > sc.cam.near:  # rear doors and lamps
            line = sc.mat(box_rgb * 0.6, z0, "near")
            sc.fill3(vquad_z(z0 - 0.01, xc - 0.03, xc + 0.03, 1.0, hbox - 0.1), TRUCK, line, inst)
            sc.fill3([vquad_z(z0 - 0.01, a, a + 0.25, 0.75, 0.9) for a in (x0 + 0.1, x1 - 0.35)], TRUCK,
                     sc.mat(np.array([0.9, 0.1, 0.1]), z0, kind=EMIT), inst)
    else:
        paint_box(sc, x0, x1, 0.95, hbox, z0 + 2.4, z0 + L, TRUCK, box_rgb, inst)
        if xs is not None:
            _wheels_on_side(sc, xs, (z0 + 1.2, z0 + L - 2.5, z0 + L - 1.2), 0.5, TRUCK, inst, tyre,
                            sc.mat(dark * 3, z0))
        paint_box(sc, x0 + 0.05, x1 - 0.05, 0.5, hcab, z0, z0 + 2.3, TRUCK, cab_rgb, inst)
        if z0 > sc.cam.near:  # windscreen, grille, headlamps
            glass = sc.mat(sc.colour("glass"), z0, kind=GLASS)
            sc.fill3(vquad_z(z0 - 0.01, x0 + 0.2, x1 - 0.2, 1.7, hcab - 0.15), TRUCK, glass, inst)
            sc.fill3(vquad_z(z0 - 0.01, x0 + 0.5, x1 - 0.5, 0.7, 1.4), TRUCK, sc.mat(dark, z0), inst)
            sc.fill3([vquad_z(z0 - 0.02, a, a + 0.3, 0.75, 0.95) for a in (x0 + 0.1, x1 - 0.4)], TRUCK,
                     sc.mat(np.array([1.0, 0.97, 0.85]), z0, kind=EMIT), inst)


def paint_bus(sc: Scene, xc, z0, facing, cls=BUS):
    """A bus (or, with cls=TRAIN, a tram): a long box with a band of side windows, a big
    near window, a destination display and, for trams, a pantograph."""
    tram = cls == TRAIN
    w, L, H = (2.4, sc.u(25, 32), 3.4) if tram else (2.5, sc.u(11, 12.5), sc.u(2.9, 3.2))
    inst = sc.cv.new_instance()
    x0, x1 = xc - w / 2, xc + w / 2
    rgb = sc.colour("tram" if tram else "bus")
    glass = sc.mat(sc.colour("glass"), z0, kind=GLASS)
    sc.shadow3(hquad(0, x0 - 0.2, x1 + 0.2, z0, z0 + L + 0.3))
    if tram:  # pantograph: thin bars above the roof
        mid = z0 + L / 2
        bar = sc.mat(np.array([0.15, 0.15, 0.15]), z0)
        arm = [[xc - 0.04, H, mid - 1.0], [xc + 0.04, H, mid - 1.0], [xc + 0.04, 4.6, mid], [xc - 0.04, 4.6, mid]]
        sc.fill3(np.array(arm), cls, bar, inst)
        sc.fill3(vquad_z(mid, xc - 0.8, xc + 0.8, 4.55, 4.65), cls, bar, inst)
    paint_box(sc, x0, x1, 0.3, H, z0, z0 + L, cls, rgb, inst)
    xs = _visible_side(x0, x1)
    if xs is not None:
        xw = xs - 0.01 if xs > 0 else xs + 0.01
        tyre = sc.mat(np.array([0.05, 0.05, 0.06]), z0)
        hub = sc.mat(np.array([0.5, 0.5, 0.5]), z0)
        _wheels_on_side(sc, xs, (z0 + 2.5, z0 + L - 3.0) if not tram else (z0 + 2.5, z0 + L / 2, z0 + L - 2.5),
                        0.48, cls, inst, tyre, hub)
        panes = np.arange(z0 + 0.8, z0 + L - 2.3, 1.8)
        sc.fill3([vquad_x(xw, z, z + 1.6, 1.25, H - 0.55) for z in panes], cls, glass, inst)
    if z0 > sc.cam.near:
        top = H - 0.5 if facing > 0 else H - 0.45
        sc.fill3(vquad_z(z0 - 0.01, x0 + 0.15, x1 - 0.15, 1.5 if facing > 0 else 1.0, top), cls, glass, inst)
        sc.fill3(vquad_z(z0 - 0.02, x0 + 0.4, x1 - 0.4, H - 0.4, H - 0.15), cls,
                 sc.mat(np.array([1.0, 0.65, 0.1]), z0, kind=EMIT), inst)
        lamp = np.array([0.9, 0.1, 0.08]) if facing > 0 else np.array([1.0, 0.97, 0.85])
        sc.fill3([vquad_z(z0 - 0.01, a, a + 0.25, 0.55, 0.8) for a in (x0 + 0.1, x1 - 0.35)], cls,
                 sc.mat(lamp, z0, kind=EMIT), inst)


def _limb(sc: Scene, a3, b3, wa, wb, cls, mat, inst):
    """A limb or bar between two 3D points, wa/wb metres wide at its ends."""
    if min(a3[2], b3[2]) < sc.cam.near:
        return
    pa, pb = sc.cam.project(np.array([a3, b3], float))
    sc.fill2(segment_quad(pa, pb, wa * sc.px_per_m(a3[2]), wb * sc.px_per_m(b3[2])), cls, mat, inst)


def _head(sc: Scene, c3, r, cls, skin, hair, inst):
    """A head: a skin ellipse with a hair cap."""
    if c3[2] < sc.cam.near:
        return
    (u, v), = sc.cam.project(np.array([c3], float))
    s = sc.px_per_m(c3[2])
    sc.fill2(ellipse2d(u, v, r * s * 0.85, r * s, 12), cls, skin, inst)
    sc.fill2(ellipse2d(u, v - r * s * 0.35, r * s * 0.88, r * s * 0.7, 12), cls, hair, inst)


def paint_person(sc: Scene, x, z, height):
    """A pedestrian seen from the front or back: legs (walking stride), torso, arms, head."""
    if z < sc.cam.near + 0.5:
        return
    inst = sc.cv.new_instance()
    H = height
    skin = sc.mat(sc.colour("skin"), z)
    hair = sc.mat(sc.colour("hair"), z)
    shirt = sc.mat(sc.colour("shirt"), z)
    legs = sc.mat(sc.colour("trousers"), z)
    sc.shadow3(hquad(0, x - 0.3, x + 0.3 + 0.6 * sc.look.sunny, z - 0.1, z + 0.3), 0.8)
    if H * sc.px_per_m(z) < 14:  # far away: legs, torso and head are all that a few pixels show
        _limb(sc, (x, 0.52 * H, z), (x, 0.02, z), 0.3, 0.3, PERSON, legs, inst)
        _limb(sc, (x, 0.5 * H, z), (x, 0.82 * H, z), 0.36, 0.42, PERSON, shirt, inst)
        _head(sc, (x, 0.92 * H, z), 0.07 * H, PERSON, skin, hair, inst)
        return
    stride = sc.u(0.0, 0.16) * H
    hip = 0.52 * H
    for side in (-1, 1):
        foot = x + side * (0.08 * H / 1.75 + stride * sc.u(0.3, 1.0) / 2)
        _limb(sc, (x + side * 0.07, hip, z), (foot, 0.02, z), 0.14, 0.11, PERSON, legs, inst)
    sh = 0.2 * H / 1.75
    torso = [[x - 0.15, hip - 0.05, z], [x + 0.15, hip - 0.05, z], [x + sh, 0.82 * H, z], [x - sh, 0.82 * H, z]]
    sc.fill3(np.array(torso), PERSON, shirt, inst)
    swing = sc.u(-0.15, 0.15)
    for side in (-1, 1):
        _limb(sc, (x + side * (sh - 0.03), 0.8 * H, z), (x + side * (sh + 0.05) + swing * side, 0.47 * H, z),
              0.09, 0.07, PERSON, shirt if sc.p() < 0.6 else skin, inst)
    if sc.style.camera_like and sc.p() < 0.35:  # a bag
        side = sc.sign()
        sc.fill3(vquad_z(z - 0.05, x + side * sh, x + side * (sh + 0.22), 0.45 * H, 0.62 * H), PERSON,
                 sc.mat(sc.colour("trousers"), z), inst)
    _limb(sc, (x, 0.81 * H, z), (x, 0.87 * H, z), 0.08, 0.08, PERSON, skin, inst)
    _head(sc, (x, 0.93 * H, z), 0.075 * H / 1.75 * 1.6, PERSON, skin, hair, inst)


def paint_two_wheeler(sc: Scene, x, z, heading, motor: bool, rider: bool):
    """A bicycle or motorcycle (heading 0 = driving away, ±π/2 = crossing) with an optional rider.
    The vehicle is drawn in its own vertical plane, so it is a thin sliver from behind and a
    clear two-wheeled profile from the side."""
    if z < sc.cam.near + 1.5:
        return
    cls = MOTORCYCLE if motor else BICYCLE
    inst = sc.cv.new_instance()
    d = np.array([math.sin(heading), 0.0, math.cos(heading)])
    P = np.array([x, 0.0, z])
    up = np.array([0.0, 1.0, 0.0])
    r, half = (0.32, 0.72) if motor else (0.34, 0.53)
    frame = sc.mat(sc.colour("bike"), z)
    tyre = sc.mat(np.array([0.05, 0.05, 0.05]), z)
    s = sc.px_per_m(z)
    sc.shadow3(hquad(0, x - 0.4, x + 0.4, z - 0.6, z + 0.6), 0.7)
    t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    for c in (P - d * half, P + d * half):  # wheels
        ring = c + up * r + np.outer(np.cos(t), d) * r + np.outer(np.sin(t), up) * r
        pts = sc.cam.project(ring)
        if motor:
            sc.fill2(pts, cls, tyre, inst)
        else:
            sc.cv.lines([pts], cls, tyre, inst, round(0.05 * s), closed=True)
    if motor:  # body and tank between the wheels, in the bike's plane
        body = [P - d * 0.75 + up * 0.75, P - d * 0.2 + up * 0.95, P + d * 0.4 + up * 1.0, P + d * 0.7 + up * 0.75,
                P + d * 0.35 + up * 0.35, P - d * 0.35 + up * 0.35]
        sc.fill3(np.array(body), cls, frame, inst)
        _limb(sc, P + d * 0.55 + up * 0.85, P + d * 0.65 + up * 1.15, 0.08, 0.08, cls, tyre, inst)
        seat, bar = P - d * 0.25 + up * 0.95, P + d * 0.55 + up * 1.1
    else:  # diamond frame, seat post and handlebar
        bb, seat, bar = P + up * 0.3, P - d * 0.12 + up * 0.92, P + d * 0.42 + up * 1.0
        for a, b in ((P - d * half + up * r, bb), (bb, seat), (P - d * half + up * r, seat), (seat, bar),
                     (bb, bar), (bar, P + d * half + up * r)):
            _limb(sc, a, b, 0.045, 0.045, cls, frame, inst)
    if not rider:
        return
    rid = sc.cv.new_instance()
    skin, hair = sc.mat(sc.colour("skin"), z), sc.mat(sc.colour("hair"), z)
    shirt, legs = sc.mat(sc.colour("shirt"), z), sc.mat(sc.colour("trousers"), z)
    hip = seat + up * 0.05
    shoulder = hip + up * 0.55 + d * (0.25 if motor else 0.18)
    side = np.cross(up, d)  # the rider's left-right axis
    for k in (-1, 1):
        knee = P + d * 0.15 + up * 0.55 + side * 0.12 * k
        foot = P + d * (0.05 * k) + up * 0.25 + side * 0.12 * k
        _limb(sc, hip + side * 0.1 * k, knee, 0.15, 0.12, RIDER, legs, rid)
        _limb(sc, knee, foot, 0.12, 0.1, RIDER, legs, rid)
    _limb(sc, hip, shoulder, 0.34, 0.38, RIDER, shirt, rid)
    for k in (-1, 1):
        _limb(sc, shoulder + side * 0.18 * k, bar + side * 0.25 * k, 0.09, 0.07, RIDER, shirt, rid)
    helmet = sc.mat(sc.colour("bike"), z) if motor or sc.p() < 0.5 else hair
    _head(sc, shoulder + up * 0.22 + d * 0.04, 0.12 if motor else 0.1, RIDER, skin, helmet, rid)


def _bar(sc: Scene, x, z, r, y0, y1, cls, mat):
    """A thin vertical bar facing the camera (poles, trunks)."""
    if z > sc.cam.near:
        sc.fill3(vquad_z(z, x - r, x + r, y0, y1), cls, mat)


def paint_lamp(sc: Scene, x, z, s):
    """A street lamp: pole, an arm reaching over the road (towards -s) and a lamp head."""
    H = sc.u(6.5, 9.0)
    m = sc.mat(sc.colour("pole"), z)
    _bar(sc, x, z, sc.u(0.08, 0.12), 0, H, POLE, m)
    reach = sc.u(1.0, 2.2)
    _limb(sc, (x, H - 0.1, z), (x - s * reach, H + 0.3, z), 0.08, 0.06, POLE, m, 0)
    head = x - s * reach
    sc.fill3(vquad_z(z - 0.01, head - 0.35, head + 0.35, H + 0.12, H + 0.35), POLE, m)


def _light_housing(sc: Scene, x, z, y, box_rgb):
    """A three-lamp traffic-light housing facing the camera (all of it class light)."""
    sc.fill3(vquad_z(z - 0.05, x - 0.17, x + 0.17, y, y + 0.9), LIGHT, sc.mat(box_rgb, z, "near"))
    on = sc.pick(3)
    lamps = ([1.0, 0.15, 0.1], [1.0, 0.7, 0.1], [0.2, 1.0, 0.45])
    s = sc.px_per_m(z)
    if 0.3 * s < 2:
        return
    (u, v), = sc.cam.project(np.array([[x, y + 0.75, z - 0.06]]))
    for i, rgb in enumerate(lamps):
        lit = np.array(rgb) if i == on else np.array(rgb) * 0.2
        lamp = sc.mat(lit, z, kind=EMIT if i == on else FLAT)
        sc.fill2(ellipse2d(u, v + i * 0.28 * s, 0.1 * s, 0.1 * s, 10), LIGHT, lamp)


def paint_traffic_light(sc: Scene, x, z, s, overhead: bool):
    """A traffic-light pole at the kerb, the housing on top or hanging from an arm over the road."""
    m = sc.mat(sc.colour("pole"), z)
    H = sc.u(3.0, 3.8) if not overhead else sc.u(5.5, 6.5)
    _bar(sc, x, z, 0.08, 0, H, POLE, m)
    box = np.array([0.12, 0.12, 0.1]) if sc.style.camera_like or sc.p() < 0.5 else np.array([0.9, 0.75, 0.1])
    if overhead:
        reach = sc.u(3.0, 5.0)
        _limb(sc, (x, H, z), (x - s * reach, H, z), 0.1, 0.08, POLE, m, 0)
        _light_housing(sc, x - s * reach, z, H - 1.0, box)
    else:
        _light_housing(sc, x, z, H - 0.1, box)


def paint_sign(sc: Scene, x, z):
    """A traffic sign: a thin pole and a plate (circle, triangle, square or a sign's grey back)."""
    H = sc.u(2.2, 3.0)
    _bar(sc, x, z, 0.035, 0, H, POLE, sc.mat(sc.colour("pole"), z))
    if z < sc.cam.near:
        return
    (u, v), = sc.cam.project(np.array([[x, H + 0.3, z - 0.02]]))
    s = sc.px_per_m(z)
    r = sc.u(0.28, 0.38) * s
    kind = sc.pick(4)
    red, white, blue = np.array([0.85, 0.1, 0.1]), np.array([0.95, 0.95, 0.95]), np.array([0.1, 0.3, 0.8])
    if sc.style.camera_like:  # faded paint
        red, white, blue = red * 0.8 + 0.08, white * 0.85, blue * 0.8 + 0.06
    if kind == 0:  # prohibition: red ring, white disc
        sc.fill2(ellipse2d(u, v, r, r, 16), SIGN, sc.mat(red, z))
        sc.fill2(ellipse2d(u, v, r * 0.75, r * 0.75, 16), SIGN, sc.mat(white, z))
    elif kind == 1:  # mandatory: blue disc, white arrow
        sc.fill2(ellipse2d(u, v, r, r, 16), SIGN, sc.mat(blue, z))
        arrow = segment_quad(np.array([u, v + r * 0.6]), np.array([u, v - r * 0.5]), r * 0.25, r * 0.25)
        sc.fill2(arrow, SIGN, sc.mat(white, z))
    elif kind == 2:  # warning: red triangle, white inside
        tri = np.array([[u, v - r * 1.1], [u + r * 1.1, v + r * 0.8], [u - r * 1.1, v + r * 0.8]])
        sc.fill2(tri, SIGN, sc.mat(red, z))
        sc.fill2(np.array([u, v]) + (tri - [u, v]) * 0.65 + [0, r * 0.05], SIGN, sc.mat(white, z))
    else:  # a square information sign or a plate seen from behind
        rgb = sc.colour("pole") if sc.p() < 0.4 else blue
        sc.fill2(np.array([[u - r, v - r], [u + r, v - r], [u + r, v + r], [u - r, v + r]]), SIGN, sc.mat(rgb, z))


def paint_tree(sc: Scene, x, z, palm=False):
    """A tree: trunk and a crown of overlapping blobs (or a palm with radiating fronds);
    trunks are vegetation in Cityscapes."""
    if z < sc.cam.near + 1:
        return
    leaf = sc.mat(sc.colour("leaf"), z, kind=LEAF)
    trunk = sc.mat(sc.colour("trunk"), z)
    s = sc.px_per_m(z)
    if palm:
        H = sc.u(7, 12)
        _limb(sc, (x, 0, z), (x + sc.u(-0.4, 0.4), H, z), 0.35, 0.22, VEGETATION, trunk, 0)
        (u, v), = sc.cam.project(np.array([[x, H, z]]))
        for a in np.linspace(0, 2 * np.pi, 9, endpoint=False) + sc.u(0, 1):
            tip = np.array([u + math.cos(a) * 2.6 * s, v - math.sin(a) * 1.0 * s + 0.9 * s])
            sc.fill2(segment_quad(np.array([u, v]), tip, 0.5 * s, 0.1 * s), VEGETATION, leaf)
        return
    base, radius = sc.u(2.0, 3.5), sc.u(1.6, 3.2)
    _bar(sc, x, z, sc.u(0.1, 0.2), 0, base + radius, VEGETATION, trunk)
    (u, v), = sc.cam.project(np.array([[x, base + radius, z]]))
    blobs = int(np.clip(radius * s / 3, 2, 8))  # fewer blobs when the crown is a few pixels
    for _ in range(blobs):
        du, dv = sc.u(-0.6, 0.6) * radius * s, sc.u(-0.6, 0.6) * radius * s
        rr = sc.u(0.45, 0.75) * radius * s
        jitter = sc.rng.uniform(0.85, 1.15, 12) if sc.style.camera_like else None
        sc.fill2(ellipse2d(u + du, v + dv * 0.8, rr, rr * 0.9, 12, jitter), VEGETATION, leaf)


def paint_static(sc: Scene, x, z):
    """A rubbish bin: Cityscapes' 'static' void class (ignored in training and evaluation)."""
    paint_box(sc, x - 0.3, x + 0.3, 0, sc.u(0.9, 1.2), z, z + 0.6, STATIC, sc.colour("static"))


def paint_structure(sc: Scene, kind: str, x, z0, z1, s, height, rgb, first: bool):
    """One piece (a few metres) of a hedge, wall or fence on the property line of side s.
    Long runs are cut into pieces so that the painter's order interleaves them correctly."""
    faces = ("top", "side", "near") if first else ("top", "side")
    if kind == "hedge":
        x0, x1 = sorted((x, x + s * 0.8))
        paint_box(sc, x0, x1, 0, height, z0, z1, VEGETATION, rgb, kind=LEAF, faces=faces)
    elif kind == "wall":
        paint_box(sc, min(x, x + s * 0.3), max(x, x + s * 0.3), 0, height, z0, z1, WALL, rgb, faces=faces)
    else:  # fence: posts, two rails and see-through pickets
        m = sc.mat(rgb, z0, "px" if s < 0 else "nx")
        sc.fill3(vquad_x(x, z0, z1, height - 0.12, height), FENCE, m)
        sc.fill3(vquad_x(x, z0, z1, 0.15, 0.25), FENCE, m)
        zs = np.arange(z0, z1, 0.18)
        zs = zs[zs > sc.cam.near]
        if zs.size:
            bottoms = sc.cam.project(np.stack([np.full_like(zs, x), np.zeros_like(zs), zs], 1))
            tops = sc.cam.project(np.stack([np.full_like(zs, x), np.full_like(zs, height), zs], 1))
            width = 0.05 * sc.px_per_m((z0 + z1) / 2)
            sc.cv.lines(list(np.stack([bottoms, tops], 1)), FENCE, m, 0, round(width))
        _bar(sc, x, z0, 0.05, 0, height + 0.05, FENCE, m)


def paint_hood(sc: Scene):
    """The ego car's bonnet across the bottom of the frame (Cityscapes 'ego vehicle', void)."""
    w, h = sc.cam.width, sc.cam.height
    top = sc.u(0.09, 0.15) * h
    us = np.linspace(-0.02 * w, 1.02 * w, 24)
    vs = h - top * (1 - 0.6 * ((us - w / 2) / (w / 2)) ** 2)
    pts = np.concatenate([np.stack([us, vs], 1), [[1.02 * w, h + 2], [-0.02 * w, h + 2]]])
    sc.fill2(pts, EGO, sc.mat(sc.colour("hood"), kind=GLASS))


# ------------------------------------------------------------------------------------ placement


def _vehicle_positions(sc: Scene, z_min, z_max, density, lengths):
    """Sorted non-overlapping Z positions along one lane."""
    zs = np.sort(sc.rng.uniform(z_min, z_max, _poisson(sc.rng, density * (z_max - z_min) / 100)))
    out, last = [], -1e9
    for z in zs:
        z = max(z, last)
        if z > z_max:
            break
        length = lengths()
        out.append((float(z), length))
        last = z + length + sc.u(1.5, 6)
    return out


def _vehicle_kind(sc: Scene) -> str:
    r, st = sc.p(), sc.style
    for kind, p in (("truck", st.truck_p), ("bus", st.bus_p), ("moto", st.moto_p)):
        if r < p:
            return kind
        r -= p
    return "car"


def place_vehicles(sc: Scene, add) -> None:
    """Moving vehicles in the lanes, parked cars along the parking strips, the odd tram."""
    st = sc.street
    n_lanes = st.n_onc + st.n_fwd
    tram_lane = sc.pick(n_lanes) if sc.p() < sc.style.tram_p else -1
    for i in range(n_lanes):
        xc = st.centre + (i - st.n_onc + 0.5) * st.lane_w
        facing = -1 if i < st.n_onc else 1
        if i == tram_lane:
            z = sc.u(12, 45)
            add(z, paint_bus, dict(xc=xc, z0=z, facing=facing, cls=TRAIN))
            continue
        z_min = 7.0 if abs(xc) < 0.5 else 2.0  # keep the ego lane clear in front of the camera
        for z, _ in _vehicle_positions(sc, z_min, st.z_far * 0.9, sc.style.cars_per_lane, lambda: 5.0):
            kind = _vehicle_kind(sc)
            x = xc + sc.u(-0.3, 0.3)
            if kind == "moto":
                heading = 0.0 if facing > 0 else math.pi
                add(z, paint_two_wheeler, dict(x=x, z=z + 1, heading=heading, motor=True, rider=True))
            elif kind == "car":
                add(z, paint_car, dict(xc=x, z0=z, facing=facing))
            elif kind == "truck":
                add(z, paint_truck, dict(xc=x, z0=z, facing=facing))
            else:
                add(z, paint_bus, dict(xc=x, z0=z, facing=facing))
    for s, width in ((-1, st.park_l), (1, st.park_r)):
        if not width:
            continue
        xc = st.edge(s) - s * 1.15
        z = sc.u(2.0, 8.0)
        while z < st.z_far * 0.85:
            length = sc.u(4.2, 5.0)
            if not st.in_crossing(z, 6) and not st.in_crossing(z + length, 6) and sc.p() < sc.style.parked:
                add(z, paint_car, dict(xc=xc + sc.u(-0.15, 0.15), z0=z, facing=s))  # parked with the traffic
            z += length + sc.u(0.6, 2.5)


def _on_sidewalk(sc: Scene, s, margin=0.3):
    """An X on the paved part of the sidewalk of side s."""
    st = sc.street
    a, b = sorted((st.walk_edge(s), st.prop(s)))
    return sc.u(a + margin, max(b - margin, a + margin))


def _sidewalk_z(sc: Scene, z_min=3.0, z_max=None):
    """A Z on the sidewalks (not across a cross street)."""
    st = sc.street
    z_max = min(st.z_far * 0.85, 90.0) if z_max is None else z_max
    for _ in range(10):
        z = sc.u(z_min, z_max)
        if not st.in_crossing(z, 0.5):
            return z
    return None


def place_people(sc: Scene, add) -> None:
    """Pedestrians on the sidewalks (some in pairs) and on zebra crossings, cyclists and
    motorcyclists on the road, parked bicycles on the sidewalks."""
    st, style = sc.street, sc.style
    length = min(st.z_far, 90.0)
    for s in (-1, 1):
        for _ in range(_poisson(sc.rng, style.persons * length / 100)):
            z = _sidewalk_z(sc)
            if z is None:
                continue
            x = _on_sidewalk(sc, s)
            h = sc.u(1.55, 1.95) if sc.p() > 0.1 else sc.u(1.05, 1.35)
            add(z, paint_person, dict(x=x, z=z, height=h))
            if sc.p() < 0.3:
                friend = dict(x=x + sc.u(0.5, 0.7) * sc.sign(), z=z + sc.u(-0.3, 0.8), height=sc.u(1.5, 1.9))
                add(friend["z"], paint_person, friend)
        for _ in range(_poisson(sc.rng, style.parked_bikes * length / 100)):
            z = _sidewalk_z(sc)
            if z is not None:
                add(z, paint_two_wheeler, dict(x=_on_sidewalk(sc, s, 0.6), z=z, heading=math.pi / 2 + sc.u(-0.5, 0.5),
                                               motor=sc.p() > style.bike_p, rider=False))
    for zz in st.zebras:  # people on the zebra
        for _ in range(_poisson(sc.rng, 2.0 if style.camera_like else 0.7)):
            z = sc.u(zz - 3.4, zz - 0.2)
            add(z, paint_person, dict(x=sc.u(st.xl + 0.5, st.xr - 0.5), z=z, height=sc.u(1.55, 1.95)))
    for _ in range(_poisson(sc.rng, style.riders)):
        motor = sc.p() > style.bike_p
        z = sc.u(5, 50)
        if st.crossings and sc.p() < 0.3:  # crossing the junction
            a, b = st.crossings[0]
            z = sc.u(a + 1, b - 1)
            add(z, paint_two_wheeler, dict(x=sc.u(st.xl, st.xr), z=z, heading=sc.sign() * math.pi / 2 + sc.u(-0.2, 0.2),
                                           motor=motor, rider=True))
            continue
        s = sc.sign() if st.n_onc else 1
        x = st.edge(s) - s * ((st.park_r if s > 0 else st.park_l) + 0.8)
        add(z, paint_two_wheeler, dict(x=x, z=z, heading=(0.0 if s > 0 else math.pi) + sc.u(-0.15, 0.15),
                                       motor=motor, rider=True))


def place_street_furniture(sc: Scene, add) -> None:
    """Lamps, signs, traffic lights at junctions, kerbside trees and bins."""
    st, style = sc.street, sc.style
    for s in (-1, 1):
        edge = st.edge(s)
        spacing = 100.0 / style.lamps
        z = sc.u(0, spacing)
        while z < st.z_far * 0.9:
            if not st.in_crossing(z, 1):
                add(z, paint_lamp, dict(x=edge + s * 0.45, z=z, s=s))
            z += spacing * sc.u(0.8, 1.2)
        for _ in range(_poisson(sc.rng, style.signs * st.z_far / 100)):
            z = _sidewalk_z(sc, 2.0, st.z_far * 0.8)
            if z is not None:
                add(z, paint_sign, dict(x=edge + s * sc.u(0.3, 0.7), z=z))
        spacing = 100.0 / style.trees
        z = sc.u(0, spacing)
        while z < st.z_far * 0.9:
            if not st.in_crossing(z, 2) and sc.p() < 0.8:
                x = edge + s * (st.verge[s > 0] / 2 if st.verge[s > 0] else sc.u(0.9, 1.3))
                add(z, paint_tree, dict(x=x, z=z, palm=sc.p() < style.palm_p))
            z += spacing * sc.u(0.6, 1.6)
        for _ in range(_poisson(sc.rng, style.statics * 0.9)):
            z = _sidewalk_z(sc)
            if z is not None:
                add(z, paint_static, dict(x=_on_sidewalk(sc, s, 0.5), z=z))
        for zz in st.zebras[len(st.crossings):]:  # pedestrian lights at a mid-block zebra
            if sc.p() < 0.8:
                add(zz - 4.2, paint_traffic_light, dict(x=edge + s * 0.5, z=zz - 4.2, s=s, overhead=False))
        for a, b in st.crossings:  # traffic lights on the junction's corners
            if sc.p() < 0.85:
                overhead = s > 0 and sc.p() < 0.5
                add(a - 1.0, paint_traffic_light, dict(x=edge + s * 0.5, z=a - 1.0, s=s, overhead=overhead))
            if sc.p() < 0.6:
                add(b + 1.0, paint_traffic_light, dict(x=edge + s * 0.5, z=b + 1.0, s=s, overhead=False))


def place_yard_trees(sc: Scene, add) -> None:
    """Trees in front yards (a layer of their own: always behind the property-line structures)."""
    st = sc.street
    for s in (-1, 1):
        yard = st.yard[s > 0]
        if yard <= 2.5:
            continue
        for _ in range(_poisson(sc.rng, sc.style.trees * (1.0 if st.suburb else 0.4) * st.z_far / 100)):
            z = _sidewalk_z(sc, 4.0, st.z_far * 0.9)
            if z is not None:
                add(z, paint_tree, dict(x=st.prop(s) + s * sc.u(1.5, yard - 0.5), z=z))


_STRUCTURES = ("none", "hedge", "wall", "fence")
_STRUCTURE_HEIGHT = {"hedge": (0.8, 1.6), "wall": (0.5, 2.0), "fence": (1.0, 2.0)}
_STRUCTURE_COLOUR = {"hedge": "leaf", "wall": "wall", "fence": "fence"}


def place_frontage(sc: Scene, add) -> None:
    """Hedges, walls and fences in runs along the property lines (or across building gaps when
    there is no yard), cut into 4 m pieces for the painter's order."""
    st = sc.street
    probs = np.cumsum(sc.style.structures) / sum(sc.style.structures)
    for s in (-1, 1):
        if st.yard[s > 0] > 0:
            x = st.prop(s)
            corners = [(a - max(st.sw), b + max(st.sw)) for a, b in st.crossings]
            runs = _free_intervals(sc.cam.near, st.z_far * 0.95, corners)
        else:
            x = st.facade(s)
            blocks = st.blocks[s > 0]
            runs = [(a[1], b[0]) for a, b in zip(blocks, blocks[1:]) if b[0] - a[1] > 1]
        for a, b in runs:
            z = a
            while z < b:
                run_end = min(b, z + sc.u(8, 30))
                kind = _STRUCTURES[int(np.searchsorted(probs, sc.p()))]
                if kind != "none":
                    height, rgb = sc.u(*_STRUCTURE_HEIGHT[kind]), sc.colour(_STRUCTURE_COLOUR[kind])
                    for i, p0 in enumerate(np.arange(z, run_end, 4.0)):
                        add(p0, paint_structure, dict(kind=kind, x=x, z0=p0, z1=min(p0 + 4.0, run_end), s=s,
                                                      height=height, rgb=rgb, first=i == 0))
                z = run_end


def place_street(sc: Scene, add) -> None:
    """Everything between the property lines: vehicles, people, street furniture."""
    place_vehicles(sc, add)
    place_people(sc, add)
    place_street_furniture(sc, add)


def paint_far_to_near(sc: Scene, place) -> None:
    """Collect one layer's objects with ``place(sc, add)``, then paint them far to near."""
    objects: list = []
    place(sc, lambda depth, fn, kw: objects.append((depth, len(objects), fn, kw)))
    for _, _, fn, kw in sorted(objects, key=lambda o: (-o[0], o[1])):
        fn(sc, **kw)


# ---------------------------------------------------------------------------------------- shading


@dataclass
class _Pixels:
    """The pixels of one material kind: flat indices, centres (u, v) and material ids."""

    idx: np.ndarray
    u: np.ndarray
    v: np.ndarray
    m: np.ndarray

    def take(self, field2d: np.ndarray, sel=None) -> np.ndarray:
        """A screen-space field at these pixels (or at the subset ``sel``)."""
        return field2d.ravel()[self.idx if sel is None else self.idx[sel]]


def _noise_fields(rng, h: int, w: int, camera_like: bool) -> dict:
    """Screen-space noise fields (about zero mean, unit std) at a few scales, and a world texture
    tile. The game look uses only the mid-scale field (cel-shaded foliage)."""

    def smooth(ch, cw, interp=cv2.INTER_CUBIC):
        small = rng.standard_normal((max(ch, 2), max(cw, 2)), dtype=np.float32)
        small = (small - small.mean()) / (small.std() + 1e-6)  # normalise the cheap small grid
        return cv2.resize(small, (w, h), interpolation=interp) * np.float32(1.4)  # interpolation smooths

    if not camera_like:
        return {"mid": smooth(h // 10, w // 10)}
    return {
        "fine": rng.standard_normal((h, w), dtype=np.float32),
        "mid": smooth(h // 10, w // 10),
        "leaf": smooth(h // 2, w // 2, cv2.INTER_LINEAR),
        "low": smooth(3, 4),
        "cloud": 0.6 * smooth(4, 7) + 0.4 * smooth(h // 20, w // 20),
        "tile": rng.standard_normal((64, 64), dtype=np.float32),
    }


def _world_noise(tile, X, Z, cell):
    """Nearest lookup in a periodic 64×64 noise tile at world coordinates (perspective-correct
    grain)."""
    return tile[np.floor(Z * (1 / cell)).astype(np.int32) & 63, np.floor(X * (1 / cell)).astype(np.int32) & 63]


def _frac(x):
    """x − floor(x); much faster than np.mod on float32 arrays."""
    return x - np.floor(x)


def _coverage(dist, half_width, mpp):
    """Fraction of a pixel (mpp metres wide) covered by a stripe: a cheap anti-aliased line."""
    return np.minimum(np.maximum((half_width - dist) / mpp + 0.5, 0), 1)  # np.clip is slower


# Shaders work on colour planes: ``col`` is (3, n) for the n pixels of one material kind, per-pixel
# factors are (n,), colours are (3, 1). (NumPy broadcasts along a last axis of length 3 slowly.)


def _rgb(*c):
    return np.array(c, np.float32)[:, None]


def _shade_sky(sc: Scene, col, px: _Pixels, T, F):
    cam = sc.cam
    t = np.clip((cam.cy - px.v) / max(cam.cy, 1.0), 0, 1) ** 0.6
    col = np.take(T["rgb2"], px.m, axis=1) * (1 - t) + np.take(T["rgb"], px.m, axis=1) * t
    if sc.style.camera_like:  # overcast structure
        c = np.clip(px.take(F["cloud"]) * 0.5 + 0.3, 0, 1) * 0.35
        col = col * (1 - c) + _rgb(0.92, 0.92, 0.94) * c
    return col


def _lane_marks(sc: Scene, X, Z, mpp, road):
    """Lane lines along the main road and zebra stripes before junctions, on the ``road`` pixels:
    (coverage (n,), colour (3, n)). Marks are sparse: only the pixels they touch are computed."""
    st = sc.street
    cov = np.zeros_like(X)
    paint = np.zeros((3, X.size), np.float32)
    along = road & (X > st.xl) & (X < st.xr)
    for a, b in st.crossings:
        along &= ~((Z > a - 0.3) & (Z < b))
    along &= mpp < 0.5  # beyond that a line is a small fraction of a pixel
    for x, width, rgb, period, duty in st.lines:
        hit = np.flatnonzero(along & (np.abs(X - x) < width / 2 + mpp))
        c = _coverage(np.abs(X[hit] - x), width / 2, mpp[hit])
        if period:
            c = c * (_frac(Z[hit] * (1 / period)) < duty)
        cov[hit] = np.maximum(cov[hit], c)
        paint[:, hit] = np.asarray(rgb, np.float32)[:, None]
    for zz in st.zebras:
        hit = np.flatnonzero(road & (Z > zz - 3.7) & (Z < zz) & (X > st.xl + 0.3) & (X < st.xr - 0.3))
        c = _coverage(np.abs(_frac(X[hit] - st.xl) - 0.5), 0.25, mpp[hit])
        cov[hit] = np.maximum(cov[hit], c)
        paint[:, hit] = _rgb(0.93, 0.93, 0.9)
    return cov, paint


def _shade_ground(sc: Scene, col, px: _Pixels, T, F):
    """Ground planes: lane marks, and for cameras, asphalt grain and patches, paving joints, grass.
    Works on all ground pixels at once with per-pattern masks (row subsets are slow in NumPy)."""
    cam = sc.cam
    y_g, pattern = np.take(T["params"][0], px.m), np.take(T["params"][1], px.m)
    Z = (cam.h - y_g) * cam.f / np.maximum(px.v - cam.cy, 0.25)
    X = (px.u - cam.cx) * Z / cam.f
    mpp = Z / cam.f  # metres per pixel across the view
    cov, paint = _lane_marks(sc, X, Z, mpp, pattern == ASPHALT)
    if sc.style.camera_like:
        grain = _world_noise(F["tile"], X, Z, 0.06) * np.minimum(0.08 / mpp, 1)  # sub-pixel grain fades
        patch = _world_noise(F["tile"], X + 17.0, Z, 2.5)
        joint = np.maximum(_coverage(0.5 * np.abs(_frac(X * 2 + 0.5) - 0.5), 0.015, mpp),
                           _coverage(0.5 * np.abs(_frac(Z * 2 + 0.5) - 0.5), 0.015, mpp * 4))
        grass = np.minimum(np.maximum(px.take(F["leaf"]), -1.5), 1.5) * (0.25 / 1.5) - 0.2
        col = col * (1 + 0.10 * grain + 0.06 * patch - 0.3 * joint * (pattern == PAVING) + grass * (pattern == GRASS))
        cov = cov * np.minimum(np.maximum(0.7 + 0.3 * px.take(F["mid"]), 0.3), 1)  # worn paint
    col = col + cov * (paint - col)
    t = 1 - np.exp(-Z / sc.look.visibility)
    return col + t * (sc.look.haze[:, None] - col)


def _shade_facade(sc: Scene, col, px: _Pixels, T, F):
    """Façades: windows on a storey grid in the façade's plane, shop fronts; for cameras, plaster
    noise, cornices, brick courses near the camera and varied window reflections."""
    cam = sc.cam
    axis, plane, floor_h, spacing, win_w, win_h, ground, off = np.take(T["params"], px.m, axis=1)
    ax = (axis == 0).astype(np.float32)  # 1: a plane along the street (X = plane), 0: across (Z = plane)
    du = px.u - cam.cx
    du = du + (np.abs(du) < 1e-3) * np.float32(1e-3)
    Z = np.maximum(plane * (ax * (cam.f / du) + (1 - ax)), cam.near)
    along = ax * Z + (1 - ax) * du * Z / cam.f
    H = cam.h - (px.v - cam.cy) * Z / cam.f
    fa = (along - off) / spacing
    ci = np.floor(fa)
    fa -= ci
    fr = (H - ground) / floor_h
    ri = np.floor(fr)
    fr -= ri
    win = (H > ground) & (np.abs(fa - 0.5) < win_w / 2) & (np.abs(fr - 0.55) < win_h / 2)
    shop = (H > 0.4) & (H < ground - 0.6) & (np.abs(fa - 0.5) < 0.4)
    rnd = _frac(np.sin(ci * 12.9898 + ri * 78.233 + px.m.astype(np.float32) * 0.7193) * 43758.5453)  # per window
    glass = np.take(T["rgb2"], px.m, axis=1)
    if sc.style.camera_like:
        glass = glass * (0.6 + 0.8 * rnd) + _rgb(0.09, 0.07, 0.03) * (rnd > 0.85)  # curtains, lights, reflections
        mpp = Z / cam.f
        brick = _coverage(0.3 * np.abs(_frac(H * (1 / 0.3)) - 0.5), 0.02, mpp) * (mpp < 0.06) * (rnd > 0.5)
        cornice = (H > ground) & (fr < 0.06)
        col = col * (1 + 0.06 * px.take(F["mid"]) - 0.15 * brick + 0.12 * cornice)
    else:
        glass = glass * (1.0 - 0.15 * (rnd <= 0.5))
    col = col + (win | shop) * (glass * (1.0 - 0.3 * shop) - col)
    t = 1 - np.exp(-Z / sc.look.visibility)
    return col + t * (sc.look.haze[:, None] - col)


def _shade_leaf(sc: Scene, col, px: _Pixels, T, F):
    """Foliage: dappled leaves for cameras, two-tone cel shading for the game."""
    if sc.style.camera_like:
        dapple = np.minimum(np.maximum(0.75 + 0.35 * px.take(F["leaf"]), 0.3), 1.6)
        return col * dapple + _rgb(0.03, 0.02, -0.01) * np.minimum(np.maximum(px.take(F["mid"]), 0), 2)
    return col * (1.0 + 0.15 * (px.take(F["mid"]) > 0.4))


def _shade_glass(sc: Scene, col, px: _Pixels, T, F):
    """Glass and paint reflections: a smooth sheen for cameras, flat for the game."""
    if sc.style.camera_like:
        return col * (1 + 0.3 * px.take(F["mid"])) + 0.04
    return col


_SHADERS = {SKYGRAD: _shade_sky, GROUND: _shade_ground, FACADE: _shade_facade, LEAF: _shade_leaf, GLASS: _shade_glass}


def shade(sc: Scene, mat: np.ndarray, fields: dict) -> np.ndarray:
    """Turn the material map into float32 RGB planes (3, H, W) (before the camera pipeline)."""
    cv = sc.cv
    h, w = mat.shape
    T = {"rgb": np.array(cv.rgb, np.float32).T.copy(), "rgb2": np.array(cv.rgb2, np.float32).T.copy(),
         "params": np.array(cv.params, np.float32).T.copy()}  # (3 or 8, materials)
    mflat = mat.ravel()
    kinds = np.take(np.array(cv.kind, np.int8), mflat)
    planes = np.take(T["rgb"], mflat, axis=1)  # (3, H·W)
    for kind, shader in _SHADERS.items():
        idx = np.flatnonzero(kinds == kind)
        if idx.size:
            px = _Pixels(idx, (idx % w).astype(np.float32) + 0.5, (idx // w).astype(np.float32) + 0.5, mflat[idx])
            out = shader(sc, np.take(planes, idx, axis=1), px, T, fields)
            for c in range(3):  # 1-D scatters are much faster than a 2-D one
                planes[c][idx] = out[c]
    gain = np.ones(h * w, np.float32)
    ground = kinds == GROUND
    if sc.style.camera_like:  # soft shadows, and fine texture on every surface but sky and lamps
        shadow = cv2.GaussianBlur(cv.shadow, (0, 0), 1.5 * w / 512).ravel()
        rough = (kinds != SKYGRAD) & (kinds != EMIT)
        gain += rough * (0.05 * fields["fine"].ravel() + 0.05 * fields["mid"].ravel())
    else:
        shadow = cv.shadow.ravel()
    gain *= 1 + ground * (shadow - 1)
    planes *= gain
    return planes.reshape(3, h, w)


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


# ------------------------------------------------------------------------------------- the scene


@dataclass
class RenderedScene:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    label: np.ndarray  # (H, W) uint8 internal codes (trainIds, STATIC, EGO, VOID)
    instance: np.ndarray  # (H, W) uint16, 0 on stuff


def render_scene(rng: np.random.Generator, style: Style, width: int, height: int) -> RenderedScene:
    """Draw one street scene of the given style; deterministic for the generator's state."""
    cam = sample_camera(rng, style, width, height)
    look = sample_look(rng, style)
    sc = Scene(rng, style, cam, look)
    sc.street = sample_street(rng, style)
    paint_sky(sc)
    paint_backdrop(sc)
    paint_ground(sc)
    paint_back_rows(sc)
    paint_buildings(sc)
    # layers further from the street's axis first: along a ray, smaller |X| is always nearer
    for place in (place_yard_trees, place_frontage, place_street):
        paint_far_to_near(sc, place)
    if style.hood:
        paint_hood(sc)
    label, mat, inst = sc.cv.maps()
    fields = _noise_fields(np.random.default_rng(rng.integers(2**63)), height, width, style.camera_like)
    planes = camera_post(sc, shade(sc, mat, fields), fields)
    inst[~np.isin(label, THINGS)] = 0
    image = cv2.merge([np.clip(p * 255 + 0.5, 0, 255).astype(np.uint8) for p in planes])
    if style.camera_like:  # the sensor's tone curve, as a lookup table on the 8-bit image
        gamma = rng.uniform(0.9, 1.1)
        image = cv2.LUT(image, (np.linspace(0, 1, 256) ** gamma * 255 + 0.5).astype(np.uint8))
    return RenderedScene(image, label, inst)
