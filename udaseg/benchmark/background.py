"""Background painters: sky, far backdrop, ground (road, sidewalks, kerbs, yards), back rows, buildings."""
from __future__ import annotations

import numpy as np

from udaseg.benchmark.camera import ellipse2d, hquad, vquad_x, vquad_z
from udaseg.benchmark.codes import (ASPHALT, BUILDING, FACADE, GRASS, GROUND, KERB_H, LEAF, PAVING, ROAD, SIDEWALK, SKY,
                                    SKYGRAD, TERRAIN, VEGETATION)
from udaseg.benchmark.context import Scene
from udaseg.benchmark.layout import _free_intervals, _poisson

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
