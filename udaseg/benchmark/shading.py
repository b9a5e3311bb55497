"""Shading: the material map to RGB planes (sky, ground and lane marks, façades, foliage, glass, shadows)."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from udaseg.benchmark.codes import ASPHALT, EMIT, FACADE, GLASS, GRASS, GROUND, LEAF, PAVING, SKYGRAD
from udaseg.benchmark.context import Scene

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
