"""The street classes' objects in the benchmark world's own appearance, one object per photograph.

The pretraining set's ``street_objects: world`` (``images.py``): the 23 street categories are not
drawn by hand (``objects.py``) but painted by the benchmark's own object models
(``udaseg.benchmark.objects``: a car's body, cabin glass and wheels, a person's limbs, a tree's
crown …) and shaded by its materials (``udaseg.benchmark.shading``) — as ImageNet photographs
the same physical world as Cityscapes. Why this is a choice of its own (BENCHMARKS.md, v3): with
the hand-drawn set, neither 4× the pretraining nor 1.7× its resolution moved the SGD oracle,
while features that fit the benchmark's world gave 10 points more; the hand-drawn objects share
nothing of that world's appearance.

What is taken from the benchmark, and what is not:
- taken: the object painters, the level pinhole camera they draw through, the painters' shared
  state (``Scene``: colours, lit materials) and the material shading — the world's *things*;
- not taken: no scene, street layout, placement, background (sky, ground, buildings in a row),
  sensor pipeline or split. Each photograph is one object, framed by its own bounding box, on the
  set's own backgrounds (``looks.py``), through the set's own photographic looks. A building is
  one façade box, not a street.
- **Both domains' appearance, half each** (``SOURCE``'s game colours and flat shading, or
  ``TARGET``'s muted colours and textures): ImageNet is neither GTA5 nor Cityscapes, and taking
  only the target's would hand the adaptation methods a pretraining tuned to their target.

Each category is a painter of one object at (x, z) metres, seen at a bearing of its own;
``photograph`` aims a level camera at it, renders it at ``RENDER`` pixels (so the painters' own
level of detail applies), crops the object's box and hands back (rgb, alpha) for ``images.py``
to place, rotate and composite like the drawn objects.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

import udaseg.benchmark.objects as bo
from udaseg.benchmark.camera import Camera, vquad_x, vquad_z
from udaseg.benchmark.codes import BUILDING, FACADE, POLE, TRAIN, VOID
from udaseg.benchmark.context import Scene
from udaseg.benchmark.shading import _noise_fields, shade
from udaseg.benchmark.styles import SOURCE, TARGET, sample_look

RENDER = 192  # pixels of the square render before the object's box is cropped


# Painters of one object at lateral offset x and distance z (metres), drawing with the benchmark's
# own ranges (heights of hedges, walls and fences: benchmark/placement.py).
def _structure(kind, colour, height, thickness):
    """A few metres of hedge, wall or fence along the view, centred on x (the painter builds it
    ``thickness`` metres outward from its property line)."""
    def paint(sc, x, z):
        s = 1 if x > 0 else -1
        bo.paint_structure(sc, kind, x - s * thickness / 2, z, z + sc.u(3.0, 6.0), s, sc.u(*height),
                           sc.colour(colour), True)
    return paint


def _pole(sc, x, z):
    r = sc.u(0.06, 0.14)
    sc.fill3(vquad_z(z, x - r, x + r, 0, sc.u(3.0, 8.0)), POLE, sc.mat(sc.colour("pole"), z))


def _building(sc, x, z):
    """One façade box: its front and the side the camera sees, windows on storeys (as
    benchmark/background.py's façades)."""
    w, h = sc.u(6, 14), sc.u(6, 16)
    rgb, windows = sc.colour("building"), sc.colour("window")

    def facade(axis, plane, face):
        spacing = sc.u(2.2, 3.4)
        return sc.mat(rgb, face=face, kind=FACADE, rgb2=windows,
                      params=(axis, plane, sc.u(3.0, 3.5), spacing, sc.u(0.35, 0.6), sc.u(0.4, 0.6),
                              sc.u(3.5, 4.5), sc.u(0, spacing)))
    x0, x1 = x - w / 2, x + w / 2
    sc.fill3(vquad_z(z, x0, x1, 0, h), BUILDING, facade(1, z, "near"))
    if x0 > 0.3 or x1 < -0.3:
        xs = x0 if x0 > 0 else x1
        sc.fill3(vquad_x(xs, z, z + sc.u(8, 20), 0, h), BUILDING, facade(0, xs, "nx" if xs > 0 else "px"))


def _two_wheeler(motor, rider):
    return lambda sc, x, z: bo.paint_two_wheeler(sc, x, z, sc.sign() * math.pi / 2 + sc.u(-0.5, 0.5), motor, rider)


# name: (painter(sc, x, z), bearing off the view axis in degrees (0 = end-on), the largest box the
# painter draws as (height, length along the view, width across it) in metres — from the
# painters' own ranges in benchmark/objects.py; the camera stands back and aims to frame it)
WORLD_STREET = {
    "car_side": (lambda sc, x, z: bo.paint_car(sc, x, z, sc.sign()), (15, 35), (1.55, 4.8, 1.95)),
    "car_rear": (lambda sc, x, z: bo.paint_car(sc, x, z, 1), (0, 4), (1.55, 4.8, 1.95)),
    "car_front": (lambda sc, x, z: bo.paint_car(sc, x, z, -1), (0, 4), (1.55, 4.8, 1.95)),
    "truck": (lambda sc, x, z: bo.paint_truck(sc, x, z, sc.sign()), (0, 30), (3.8, 10.0, 2.55)),
    "bus": (lambda sc, x, z: bo.paint_bus(sc, x, z, sc.sign()), (0, 30), (3.2, 12.5, 2.5)),
    "tram": (lambda sc, x, z: bo.paint_bus(sc, x, z, sc.sign(), cls=TRAIN), (0, 20), (4.2, 32.0, 2.4)),
    "motorcycle": (_two_wheeler(True, False), (0, 10), (1.2, 1.2, 2.2)),
    "bicycle": (_two_wheeler(False, False), (0, 10), (1.1, 1.0, 1.8)),
    "motorcyclist": (_two_wheeler(True, True), (0, 10), (1.9, 1.2, 2.2)),
    "cyclist": (_two_wheeler(False, True), (0, 10), (1.9, 1.0, 1.8)),
    "person": (lambda sc, x, z: bo.paint_person(sc, x, z, sc.u(1.55, 1.95)), (0, 10), (1.95, 0.4, 0.8)),
    "pole": (_pole, (0, 10), (8.0, 0.3, 0.3)),
    "street_lamp": (lambda sc, x, z: bo.paint_lamp(sc, x, z, 1 if x > 0 else -1), (5, 15), (9.4, 0.3, 5.2)),
    "traffic_light": (lambda sc, x, z: bo.paint_traffic_light(sc, x, z, 1, False), (0, 10), (4.7, 0.3, 0.4)),
    "overhead_light": (lambda sc, x, z: bo.paint_traffic_light(sc, x, z, 1 if x > 0 else -1, True), (5, 15),
                       (6.6, 0.3, 10.4)),
    "sign": (lambda sc, x, z: bo.paint_sign(sc, x, z), (0, 10), (3.7, 0.3, 0.8)),
    "tree": (lambda sc, x, z: bo.paint_tree(sc, x, z), (0, 10), (10.5, 0.5, 8.7)),
    "palm": (lambda sc, x, z: bo.paint_tree(sc, x, z, palm=True), (0, 10), (13.0, 0.5, 6.4)),
    "bin": (lambda sc, x, z: bo.paint_static(sc, x, z), (5, 30), (1.2, 0.6, 0.6)),
    "building": (_building, (5, 30), (16.0, 20.0, 14.0)),
    "fence": (_structure("fence", "fence", (1.0, 2.0), 0.0), (20, 45), (2.05, 6.0, 0.8)),
    "wall": (_structure("wall", "wall", (0.5, 2.0), 0.3), (20, 45), (2.0, 6.0, 0.8)),
    "hedge": (_structure("hedge", "leaf", (0.8, 1.6), 0.8), (20, 45), (1.6, 6.0, 0.8)),
}


def _frame(f: float, x: float, z: float, cam_h: float, box: tuple) -> tuple[float, float, float]:
    """(focal length, cx, cy) that put the box of ``box`` = (height, length, width) at (x, z) in the
    middle of the frame, zooming out until it spans at most 90% of it."""
    height, length, width = box
    corners = np.array([(X, Y, Z) for X in (x - width / 2, x + width / 2) for Y in (0.0, height)
                        for Z in (z, z + length)])
    u, v = corners[:, 0] / corners[:, 2], (cam_h - corners[:, 1]) / corners[:, 2]  # in units of f
    f = min(f, 0.9 * RENDER / max(np.ptp(u), np.ptp(v)))
    return f, RENDER / 2 - f * (u.max() + u.min()) / 2, RENDER / 2 - f * (v.max() + v.min()) / 2


def render_object(r: np.random.Generator, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The whole ``RENDER``² frame of one object of category ``name``: (H, W, 3) float32 RGB in
    [0, 1] (black off the object) and (H, W) float32 alpha (1 on the object)."""
    paint, (b0, b1), box = WORLD_STREET[name]
    style = SOURCE if r.random() < 0.5 else TARGET
    f = RENDER / 2 / math.tan(math.radians(r.uniform(20.0, 30.0)))  # a 40-60 degree lens
    z = max(f * box[0] / (RENDER * r.uniform(0.5, 0.8)), 3.0)  # its height fills half the frame or more
    x = z * math.tan(math.radians(r.uniform(b0, b1))) * (1 if r.random() < 0.5 else -1)
    cam_h = r.uniform(1.0, 2.0)  # a person's or a car's camera
    cam = Camera(RENDER, RENDER, *_frame(f, x, z, cam_h, box), cam_h)
    sc = Scene(r, style, cam, sample_look(r, style))
    paint(sc, x, z)
    label, mat, _ = sc.cv.maps()
    fields = _noise_fields(np.random.default_rng(r.integers(2**63)), RENDER, RENDER, style.camera_like)
    alpha = (label != VOID).astype(np.float32)
    rgb = np.clip(shade(sc, mat, fields), 0, 1).transpose(1, 2, 0) * alpha[..., None]
    return rgb, alpha


def photograph(r: np.random.Generator, name: str) -> tuple[np.ndarray, np.ndarray]:
    """One object of category ``name`` in the benchmark world's appearance, cropped to its box:
    (h, w, 3) float32 RGB in [0, 1] and (h, w) float32 alpha (1 on the object)."""
    rgb, alpha = render_object(r, name)
    ys, xs = np.nonzero(alpha)
    if ys.size == 0:
        raise RuntimeError(f"world category {name!r} painted nothing")
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return np.ascontiguousarray(rgb[y0:y1, x0:x1]), np.ascontiguousarray(alpha[y0:y1, x0:x1])


def to_layer(rgb: np.ndarray, alpha: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The cropped object centred in a size×size layer, its longer side filling 90% of it (as the
    hand-drawn objects fill [0.05, 0.95]² of theirs): (size, size, 3) uint8 and (size, size) uint8."""
    h, w = alpha.shape
    k = 0.9 * size / max(h, w)
    m = np.array([[k, 0, size / 2 - k * w / 2], [0, k, size / 2 - k * h / 2]])
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    layer = cv2.warpAffine(rgb, m, (size, size), flags=interp)
    mask = cv2.warpAffine(alpha, m, (size, size), flags=interp)
    return (np.clip(layer, 0, 1) * 255 + 0.5).astype(np.uint8), (np.clip(mask, 0, 1) * 255 + 0.5).astype(np.uint8)
