"""Class sets, label maps and palettes of the Cityscapes / GTA5 / SYNTHIA benchmarks.

Every number here is the public convention (Cityscapes ``labels.py``, and the SYNTHIA maps of
the ADVENT / FADA loaders); ``tests/test_labels.py`` checks each entry against DESIGN.md §2.

Vocabulary:
- *labelId*: the 34-id Cityscapes annotation id stored in ``*_gtFine_labelIds.png`` and in the
  GTA5 label PNGs.
- *trainId*: the 0..18 index of the 19 evaluated classes; 255 = ignore.
- *SYNTHIA id*: the class id stored in channel 0 of SYNTHIA-RAND-CITYSCAPES ``GT/LABELS``.
"""
from __future__ import annotations

import cv2
import numpy as np

IGNORE_INDEX = 255

# (name, labelId, RGB colour) of the 19 trainIds, in trainId order (Cityscapes order).
_CITYSCAPES_19 = (
    ("road", 7, (128, 64, 128)),
    ("sidewalk", 8, (244, 35, 232)),
    ("building", 11, (70, 70, 70)),
    ("wall", 12, (102, 102, 156)),
    ("fence", 13, (190, 153, 153)),
    ("pole", 17, (153, 153, 153)),
    ("light", 19, (250, 170, 30)),
    ("sign", 20, (220, 220, 0)),
    ("vegetation", 21, (107, 142, 35)),
    ("terrain", 22, (152, 251, 152)),
    ("sky", 23, (70, 130, 180)),
    ("person", 24, (220, 20, 60)),
    ("rider", 25, (255, 0, 0)),
    ("car", 26, (0, 0, 142)),
    ("truck", 27, (0, 0, 70)),
    ("bus", 28, (0, 60, 100)),
    ("train", 31, (0, 80, 100)),
    ("motorcycle", 32, (0, 0, 230)),
    ("bicycle", 33, (119, 11, 32)),
)

CLASSES_19: tuple[str, ...] = tuple(name for name, _, _ in _CITYSCAPES_19)
TRAINID_TO_LABELID: tuple[int, ...] = tuple(lid for _, lid, _ in _CITYSCAPES_19)
PALETTE_19: np.ndarray = np.array([rgb for _, _, rgb in _CITYSCAPES_19], dtype=np.uint8)  # (19, 3)

# SYNTHIA-RAND-CITYSCAPES id -> index in the 16-class protocol (ADVENT / FADA loaders).
SYNTHIA_ID_TO_16: dict[int, int] = {
    3: 0,  # road
    4: 1,  # sidewalk
    2: 2,  # building
    21: 3,  # wall
    5: 4,  # fence
    7: 5,  # pole
    15: 6,  # light
    9: 7,  # sign
    6: 8,  # vegetation
    1: 9,  # sky
    10: 10,  # person
    17: 11,  # rider
    8: 12,  # car
    19: 13,  # bus
    12: 14,  # motorcycle
    11: 15,  # bicycle
}

# The 16 SYNTHIA classes as indices into the 19 (no terrain, truck, train).
PROTOCOL_16_IN_19: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18)
# The 13-class protocol drops wall, fence and pole from the 16.
PROTOCOL_13_IN_16: tuple[int, ...] = tuple(i for i in range(16) if i not in (3, 4, 5))
PROTOCOL_13_IN_19: tuple[int, ...] = tuple(PROTOCOL_16_IN_19[i] for i in PROTOCOL_13_IN_16)

CLASSES_16: tuple[str, ...] = tuple(CLASSES_19[i] for i in PROTOCOL_16_IN_19)
CLASSES_13: tuple[str, ...] = tuple(CLASSES_19[i] for i in PROTOCOL_13_IN_19)
PALETTE_16: np.ndarray = PALETTE_19[list(PROTOCOL_16_IN_19)]

# The SYNTHIA ids of the 16 classes, inverse of SYNTHIA_ID_TO_16 (used by the demo writer).
SYNTHIA_ID_OF_16: tuple[int, ...] = tuple(
    sorted(SYNTHIA_ID_TO_16, key=SYNTHIA_ID_TO_16.__getitem__)
)


def _lut(mapping: dict[int, int], size: int) -> np.ndarray:
    lut = np.full(size, IGNORE_INDEX, dtype=np.uint8)
    for src, dst in mapping.items():
        lut[src] = dst
    return lut


# labelId -> trainId for Cityscapes and GTA5 (GTA5 labels are Cityscapes labelIds).
# 256 entries so any uint8 label indexes it; ids outside the map become 255.
LABELID_TO_TRAINID: np.ndarray = _lut({lid: t for t, lid in enumerate(TRAINID_TO_LABELID)}, 256)
CITYSCAPES_LUT = LABELID_TO_TRAINID
GTA5_LUT = LABELID_TO_TRAINID
# SYNTHIA ids are 16-bit on disk; ids above 255 are outside the map.
SYNTHIA_LUT_16: np.ndarray = _lut(SYNTHIA_ID_TO_16, 65536)
# SYNTHIA ids -> the 19 trainIds, for training a 19-class model on SYNTHIA.
SYNTHIA_LUT_19: np.ndarray = _lut({s: PROTOCOL_16_IN_19[c] for s, c in SYNTHIA_ID_TO_16.items()}, 65536)
# 19 trainIds -> 16-class indices (terrain, truck, train -> 255), for evaluating Cityscapes in 16.
TRAINID19_TO_16: np.ndarray = _lut({t: i for i, t in enumerate(PROTOCOL_16_IN_19)}, 256)

CLASS_SETS: dict[str, tuple[str, ...]] = {"cityscapes19": CLASSES_19, "synthia16": CLASSES_16}


def class_names(num_classes: int) -> tuple[str, ...]:
    """The class names of a 19- or 16-class model."""
    if num_classes == 19:
        return CLASSES_19
    if num_classes == 16:
        return CLASSES_16
    raise ValueError(f"no class set with {num_classes} classes (expected 19 or 16)")


def palette(num_classes: int) -> np.ndarray:
    """(K, 3) uint8 colours of a 19- or 16-class model, in the Cityscapes palette."""
    return PALETTE_19 if num_classes == 19 else PALETTE_16 if num_classes == 16 else _bad(num_classes)


def _bad(num_classes: int):
    raise ValueError(f"no palette for {num_classes} classes (expected 19 or 16)")


# The largest id each raw format defines: Cityscapes/GTA5 labelIds 0..33 (0..6 are void and map
# to ignore on purpose); SYNTHIA-RAND-CITYSCAPES ids 0..22. Anything larger is not a valid label.
MAX_LABELID = 33
MAX_SYNTHIA_ID = 22


def map_labels(ids: np.ndarray, lut: np.ndarray, max_known_id: int) -> tuple[np.ndarray, int]:
    """Map raw ids through a LUT to trainIds.

    Returns (uint8 trainIds, number of pixels whose id is not defined by the format, i.e.
    > ``max_known_id``). Those pixels become 255 like void ids, but the count lets readers warn
    instead of silently producing a wrong label.
    """
    ids = np.asarray(ids)
    if ids.dtype == np.uint8 and ids.ndim == 2 and ids.size:
        # one OpenCV table lookup over all 256 byte values (ids the format lacks → 255): 0.4 ms
        # for a GTA5 frame where numpy's clamp + gather + mask took 6 ms
        table = np.full(256, IGNORE_INDEX, np.uint8)
        n = min(len(lut), max_known_id + 1)
        table[:n] = lut[:n]
        outside = int(np.count_nonzero(ids > max_known_id)) if int(ids.max()) > max_known_id else 0
        return cv2.LUT(ids, table), outside
    outside = ids > max_known_id
    out = lut[np.minimum(ids, len(lut) - 1)]
    out[outside] = IGNORE_INDEX
    return out, int(np.count_nonzero(outside))


def trainid_to_labelid(train_ids: np.ndarray, num_classes: int = 19) -> np.ndarray:
    """Convert predicted indices to Cityscapes labelIds (submission format); 255 -> 0 (unlabeled)."""
    table = np.zeros(256, dtype=np.uint8)
    classes_in_19 = range(19) if num_classes == 19 else PROTOCOL_16_IN_19
    if num_classes not in (16, 19):
        _bad(num_classes)
    for idx, t in enumerate(classes_in_19):
        table[idx] = TRAINID_TO_LABELID[t]
    return table[np.asarray(train_ids, dtype=np.uint8)]


def colorize(train_ids: np.ndarray, num_classes: int = 19) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) uint8 colours; ignore (255) is black."""
    table = np.zeros((256, 3), dtype=np.uint8)
    table[:num_classes] = palette(num_classes)
    return table[np.asarray(train_ids, dtype=np.uint8)]
