"""The scene's label codes (trainIds, STATIC, EGO, VOID) and material kinds."""
from __future__ import annotations

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
