"""Drawing one scene: ``render_scene``, the entry point of the procedural street-scene generator.

Procedural dash-camera street scenes for the embedded demo benchmark (written by ``writer.py``).

``render_scene(rng, style, width, height)`` draws one scene and returns its RGB image, its label
map and an instance map. Labels use internal codes: the 19 trainIds, plus ``STATIC`` (bins: the
Cityscapes "static" void class), ``EGO`` (the ego car's bonnet, Cityscapes "ego vehicle") and
``VOID``; ``writer.py`` converts them to each format's ids.

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

The generator's modules, each importing only those listed before it: ``codes`` (label codes,
material kinds), ``styles`` (the domains' ranges, colours and per-image light), ``camera``
(camera, canvas, shapes), ``layout`` (street sampling), ``context`` (the painters' shared
Scene), ``background`` (sky, ground, buildings), ``objects`` (object painters), ``placement``
(where objects go, far-to-near order), ``shading`` (materials to RGB) and ``sensor`` (the
camera's post-processing).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from udaseg.benchmark.background import paint_back_rows, paint_backdrop, paint_buildings, paint_ground, paint_sky
from udaseg.benchmark.codes import EGO, STATIC, THINGS, VOID
from udaseg.benchmark.context import Scene
from udaseg.benchmark.layout import sample_camera, sample_street
from udaseg.benchmark.objects import paint_hood
from udaseg.benchmark.placement import paint_far_to_near, place_frontage, place_street, place_yard_trees
from udaseg.benchmark.sensor import camera_post
from udaseg.benchmark.shading import _noise_fields, shade
from udaseg.benchmark.styles import SOURCE, STYLES, TARGET, Style, sample_look

# the entry point and the vocabulary the writer needs (label codes, the two styles)
__all__ = ["EGO", "STATIC", "THINGS", "VOID", "SOURCE", "STYLES", "TARGET", "Style", "RenderedScene", "render_scene"]

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
