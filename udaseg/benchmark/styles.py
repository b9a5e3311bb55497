"""The two domains' looks: Style ranges and colours (SOURCE game-like, TARGET camera-like), per-image Look."""
from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import numpy as np

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


def _hsv(rng, box: Box) -> np.ndarray:
    """A random colour from an HSV box (hue ranges may wrap past 1)."""
    lo, hi = np.array(box, np.float64).T
    h, s, v = rng.uniform(lo, hi)
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), np.float32)


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
