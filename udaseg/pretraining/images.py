"""Category table, one image's rendering, and the dataset of the pretraining set.

Design (fixed before any adaptation run of benchmark v3, issue #24; never changed for a method's
result). Each choice and its reason:

- **128 categories** (ImageNet's role needs many, the issue asks ≥ 100): 23 hand-drawn objects of
  the street classes (vehicles seen from the side and the rear, tram, two-wheelers, people and
  riders, poles, lamps, traffic lights, four sign shapes, three kinds of tree, bushes, buildings,
  fences, brick walls), 14 hand-drawn objects that are not on the street (cup, bottle, chair …:
  ImageNet is mostly not street objects), 40 superformula shapes and 51 IFS fractals
  (``formula.py``: formula-driven categories are a published pretraining set of their own).
- **Object-centric**: one object per image, 45–100% of the frame (``min_scale``, the pretraining
  key ``min_object_scale``, can lower the floor), anywhere, on a background that is never a street
  scene (``looks.py``); sometimes a primitive shape occludes part of it.
- **Looks vary per image**, not per category: palettes (artefacts any colour, natural things
  jittered hues, 15% of images any colour at all), texture and shading on the object, exposure,
  contrast, gamma, colour cast, grey, defocus or motion blur, noise, JPEG (``looks.py``).
- **Pose**: street objects stand upright (±10°, mirrored half the time: ImageNet photographs are
  mostly upright); other objects ±30°, formula shapes any angle and either mirror.
- **96×96 pixels**: the benchmark's fine-tuning input is 256×128 and its objects 5–100 px; 96
  keeps a ResNet-18 step at ~200 images/s on 2 CPU cores (a layer4 map of 3×3).
- **Rendered on the fly**, seeded by (seed, split, index): nothing large is written, any image
  can be rendered again, and a resumed run sees exactly the images it would have seen.
  ``label = index % 128``, so a batch of 128 consecutive indices holds every category once.
- **Splits**: ``train`` and ``heldout`` differ only in the seed stream, so held-out accuracy
  measures generalisation to new instances and looks, as ImageNet's val does.

Nothing of the benchmark's scenes is used: no scene renderer, layout, placement, background,
sensor or split of ``udaseg.benchmark``; only ``world.py`` (below) imports anything of it, its
object models and what they draw with (``tests/test_pretraining.py`` checks the imports).

**The street objects' appearance** (``street_objects``, the pretraining key, session 16): ``drawn``
(the default above, ``demo_resnet18``'s set) or ``world``: the 23 street categories replaced by
23 of the benchmark world's own object models, one per photograph, on this set's backgrounds and
looks (``world.py``, which says what it takes from ``udaseg.benchmark`` and what not, and why:
with the drawn set, pretraining longer or larger did not move the paper's recipe at all). The
other 105 categories, the backgrounds, the looks and the label rule are the same in both.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import cv2
import numpy as np
import torch

from . import formula, objects, world
from .looks import background, photograph, texture_object
from .palette import Palette
from .pen import Pen

SIZE = 96
MIN_SCALE = 0.45  # the smallest object, as a fraction of the frame's side (the design's default)
SPLITS = {"train": 0, "heldout": 1}
N_SUPERFORMULA, N_IFS = 40, 51


@dataclass(frozen=True)
class Category:
    name: str
    kind: str  # "street" | "other" | "superformula" | "ifs": decides the pose range
    draw: Callable


def _table(street_objects: str = "drawn") -> tuple[Category, ...]:
    if street_objects == "drawn":
        cats = [Category(n, "street", f) for n, f in objects.STREET.items()]
    else:  # painted by the benchmark world's object models (``world.py``)
        cats = [Category(n, "world", partial(world.photograph, name=n)) for n in world.WORLD_STREET]
    cats += [Category(n, "other", f) for n, f in objects.OTHER.items()]
    cats += [Category(f"superformula_{i:02d}", "superformula", partial(formula.draw_superformula, i))
             for i in range(N_SUPERFORMULA)]
    cats += [Category(f"ifs_{i:02d}", "ifs", partial(formula.draw_ifs, i)) for i in range(N_IFS)]
    return tuple(cats)


STREET_OBJECTS = ("drawn", "world")
CATEGORY_SETS = {name: _table(name) for name in STREET_OBJECTS}
CATEGORIES = CATEGORY_SETS["drawn"]
# (max rotation in degrees, vertical mirror allowed) per kind
_POSE = {"street": (10.0, False), "world": (10.0, False), "other": (30.0, False), "superformula": (180.0, True),
         "ifs": (180.0, True)}


def _place(r: np.random.Generator, kind: str, size: int, min_scale: float = MIN_SCALE) -> np.ndarray:
    """A 2×3 affine map from the object layer to the image: mirror, rotate, scale, shift."""
    max_rot, vflip = _POSE[kind]
    s = r.uniform(min_scale, 1.0)
    m = cv2.getRotationMatrix2D((size / 2, size / 2), r.uniform(-max_rot, max_rot), s)
    mirror = np.diag([-1.0 if r.random() < 0.5 else 1.0, -1.0 if vflip and r.random() < 0.5 else 1.0])
    m[:, :2] = m[:, :2] @ mirror
    # put the layer's centre at a random point that keeps most of the object in view
    slack = (1 - s) * size / 2 + 0.1 * size
    m[:, 2] = size / 2 + r.uniform(-slack, slack, 2) - m[:, :2] @ np.array([size / 2, size / 2])
    return m


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown pretraining split {split!r}; expected one of {', '.join(SPLITS)}")


def _check_street_objects(street_objects: str) -> None:
    if street_objects not in CATEGORY_SETS:
        raise ValueError(f"pretraining street_objects={street_objects!r}: expected one of {', '.join(STREET_OBJECTS)}")


def render(index: int, split: str = "train", seed: int = 0, size: int = SIZE,
           min_scale: float = MIN_SCALE, street_objects: str = "drawn") -> tuple[np.ndarray, int]:
    """Image ``index`` of ``split``: (size, size, 3) uint8 RGB and its category; the object spans
    ``min_scale``–1 of the frame's side."""
    _check_split(split)
    _check_street_objects(street_objects)
    cats = CATEGORY_SETS[street_objects]
    label = index % len(cats)
    cat = cats[label]
    r = np.random.default_rng([seed, SPLITS[split], index])
    pal = Palette(r)
    bg = background(r, pal, size)
    if cat.kind == "world":  # already shaded in its world's materials: no texture of this set's
        rgb, mask = world.to_layer(*cat.draw(r), size)
    else:
        pen = Pen(size)
        cat.draw(pen, r, pal)
        rgb, mask = pen.rgb, pen.mask
    m = _place(r, cat.kind, size, min_scale)
    layer = cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    alpha = cv2.warpAffine(mask, m, (size, size), flags=cv2.INTER_LINEAR).astype(np.float32)[..., None] / 255.0
    img = bg * (1 - alpha) + (layer if cat.kind == "world" else texture_object(r, layer)) * alpha
    if r.random() < 0.25:  # a primitive occluder in front of part of the object
        occ = Pen(size)
        x, y = r.uniform(0, 1, 2)
        occ.ellipse(x, y, r.uniform(0.08, 0.25), r.uniform(0.08, 0.25), pal.any(), angle=r.uniform(0, 180))
        a = occ.mask.astype(np.float32)[..., None] / 255.0
        img = img * (1 - a) + occ.rgb.astype(np.float32) / 255.0 * a
    return photograph(r, img), label


class PretrainImages(torch.utils.data.Dataset):
    """``length`` images of ``split`` as (3, size, size) uint8 tensors and int64 labels."""

    def __init__(self, split: str, length: int, seed: int = 0, size: int = SIZE, offset: int = 0,
                 min_scale: float = MIN_SCALE, street_objects: str = "drawn"):
        _check_split(split)
        _check_street_objects(street_objects)
        if not 0 < min_scale <= 1:
            raise ValueError(f"pretraining min_scale={min_scale}: the smallest object's share of the frame, in (0, 1]")
        self.split, self.length, self.seed, self.size, self.offset = split, length, seed, size, offset
        self.min_scale, self.street_objects = min_scale, street_objects
        self.num_classes = len(CATEGORY_SETS[street_objects])

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        img, label = render(self.offset + i, self.split, self.seed, self.size, self.min_scale, self.street_objects)
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))), label
