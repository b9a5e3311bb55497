"""Formula-driven categories: iterated-function-system fractals and superformula shapes.

ImageNet's role needs many categories besides the street's; drawing a hundred more objects by
hand is neither feasible nor necessary. Formula-driven supervised pretraining (FractalDB,
Kataoka et al., ACCV 2020) shows that classifying categories *defined by a formula* — each an
IFS fractal — teaches features that fine-tune nearly as well as ImageNet's. We use their rule:
a category is one IFS (2–8 affine maps, parameters uniform in [-1, 1], map probabilities ∝ |det|),
kept when its attractor fills enough of its bounding box (FractalDB's filling-rate filter), and an
instance perturbs one parameter by ±15% (their intra-category variation). We add contractive maps
only (largest singular value < 1) so every instance has an attractor. Superformula shapes
(Gielis, Am. J. Bot. 2003) add closed outlines with symmetry ``m``: a category is (m, n1, n2, n3).

Categories are derived from ``CATEGORY_SEED`` and their index alone, so the set never changes
with anything else.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .palette import Palette
from .pen import Pen

CATEGORY_SEED = 20261205
MIN_FILLING_RATE = 0.12  # occupied share of a 48×48 grid over the attractor's bounding box
_CHAINS, _STEPS, _BURN_IN = 512, 22, 6


def _contractive_maps(rng: np.random.Generator, n: int) -> np.ndarray:
    maps = []
    while len(maps) < n:
        m = rng.uniform(-1.0, 1.0, 6)
        if np.linalg.norm(m[:4].reshape(2, 2), 2) < 0.95:
            maps.append(m)
    return np.stack(maps)


def attractor(maps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Points (M, 2) of the IFS attractor by the chaos game, run as many short parallel chains."""
    det = np.abs(maps[:, 0] * maps[:, 3] - maps[:, 1] * maps[:, 2]) + 1e-3
    prob = det / det.sum()
    xy = rng.uniform(-1, 1, (_CHAINS, 2))
    out = []
    for step in range(_STEPS):
        k = rng.choice(len(maps), size=_CHAINS, p=prob)
        m = maps[k]
        xy = np.stack([m[:, 0] * xy[:, 0] + m[:, 1] * xy[:, 1] + m[:, 4],
                       m[:, 2] * xy[:, 0] + m[:, 3] * xy[:, 1] + m[:, 5]], 1)
        if step >= _BURN_IN:
            out.append(xy)
    return np.concatenate(out)


def _fit_unit(xy: np.ndarray, margin: float = 0.05) -> np.ndarray | None:
    lo, hi = np.percentile(xy, 0.5, axis=0), np.percentile(xy, 99.5, axis=0)
    extent = (hi - lo).max()
    if not np.isfinite(extent) or extent < 1e-6:
        return None
    return (xy - (lo + hi) / 2) / extent * (1 - 2 * margin) + 0.5


def filling_rate(xy: np.ndarray, grid: int = 48) -> float:
    u = _fit_unit(xy, 0.0)
    if u is None:
        return 0.0
    ij = np.clip((u * grid).astype(int), 0, grid - 1)
    return len(np.unique(ij[:, 0] * grid + ij[:, 1])) / grid ** 2


@lru_cache(maxsize=None)
def ifs_category(index: int) -> np.ndarray:
    """The maps (n, 6) of IFS category ``index``: the first draw that passes the filling rate."""
    for attempt in range(1000):
        rng = np.random.default_rng([CATEGORY_SEED, 1, index, attempt])
        maps = _contractive_maps(rng, int(rng.integers(2, 9)))
        if filling_rate(attractor(maps, np.random.default_rng(0))) >= MIN_FILLING_RATE:
            return maps
    raise RuntimeError(f"no IFS category {index} passes the filling-rate filter")  # not reached in practice


@lru_cache(maxsize=None)
def superformula_category(index: int) -> tuple[int, float, float, float]:
    """(m, n1, n2, n3) of superformula category ``index``; m cycles 2..13 so neighbours differ."""
    rng = np.random.default_rng([CATEGORY_SEED, 2, index])
    m = 2 + index % 12
    return m, float(rng.uniform(0.4, 6.0)), float(rng.uniform(0.4, 6.0)), float(rng.uniform(0.4, 6.0))


def draw_ifs(index: int, p: Pen, r: np.random.Generator, pal: Palette) -> None:
    maps = ifs_category(index).copy()
    for _ in range(10):  # FractalDB's intra-category variation: one parameter ×[0.85, 1.15]
        trial = maps.copy()
        i, j = r.integers(len(maps)), r.integers(6)
        trial[i, j] *= r.uniform(0.85, 1.15)
        if np.linalg.norm(trial[i, :4].reshape(2, 2), 2) < 0.98:
            maps = trial
            break
    xy = _fit_unit(attractor(maps, r))
    if xy is None:
        return
    colour = pal.any()
    p.points(xy, colour)
    if r.random() < 0.5:  # a thicker rendering, like FractalDB's patch mode
        p.points(np.clip(xy + 1.0 / p.size, 0, 1 - 1e-6), colour)


def draw_superformula(index: int, p: Pen, r: np.random.Generator, pal: Palette) -> None:
    m, n1, n2, n3 = superformula_category(index)
    n1, n2, n3 = (v * r.uniform(0.9, 1.1) for v in (n1, n2, n3))
    phi = np.linspace(0, 2 * np.pi, 181)
    t = m * phi / 4
    rad = (np.abs(np.cos(t)) ** n2 + np.abs(np.sin(t)) ** n3 + 1e-12) ** (-1.0 / n1)
    rad = rad / rad.max()
    sx, sy = 0.45 * r.uniform(0.85, 1.0), 0.45 * r.uniform(0.85, 1.0)
    pts = np.stack([0.5 + sx * rad * np.cos(phi), 0.5 + sy * rad * np.sin(phi)], 1)
    p.poly(pts, pal.any())
    if r.random() < 0.5:
        k = r.uniform(0.3, 0.6)
        p.poly(0.5 + (pts - 0.5) * k, pal.any())
