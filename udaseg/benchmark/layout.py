"""Street layout sampling: the camera pose and the Street (lanes, sidewalks, yards, blocks, markings)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from udaseg.benchmark.camera import Camera
from udaseg.benchmark.styles import Style

# ------------------------------------------------------------------------------------ the street


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


def sample_camera(rng, style: Style, width: int, height: int) -> Camera:
    """Field of view, horizon row and camera height from the style's ranges."""
    f = width / (2 * math.tan(math.radians(rng.uniform(*style.hfov_deg)) / 2))
    return Camera(width, height, f, cx=width / 2 + rng.uniform(-0.03, 0.03) * width,
                  cy=rng.uniform(*style.horizon) * height, h=rng.uniform(*style.cam_height))


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
