"""Object painters: vehicles, people, two-wheelers, poles, lights, signs, trees, bins, fences, the bonnet."""
from __future__ import annotations

import math

import numpy as np

from udaseg.benchmark.camera import ellipse2d, hquad, segment_quad, vquad_x, vquad_z
from udaseg.benchmark.codes import (BICYCLE, BUS, CAR, EGO, EMIT, FENCE, FLAT, GLASS, LEAF, LIGHT, MOTORCYCLE, PERSON,
                                    POLE, RIDER, SIGN, STATIC, TRAIN, TRUCK, VEGETATION, WALL)
from udaseg.benchmark.context import Scene

# ------------------------------------------------------------------------------------- objects


def paint_box(sc: Scene, x0, x1, y0, y1, z0, z1, cls, rgb, inst=0, kind=FLAT, rgb2=None,
              faces=("top", "side", "near")) -> None:
    """The camera-facing faces of an axis-aligned box, each lit by its orientation."""
    cam = sc.cam
    if "top" in faces and cam.h > y1:
        sc.fill3(hquad(y1, x0, x1, z0, z1), cls, sc.mat(rgb, z0, "top", kind, rgb2), inst)
    if "side" in faces and x1 < 0:
        sc.fill3(vquad_x(x1, z0, z1, y0, y1), cls, sc.mat(rgb, z0, "px", kind, rgb2), inst)
    elif "side" in faces and x0 > 0:
        sc.fill3(vquad_x(x0, z0, z1, y0, y1), cls, sc.mat(rgb, z0, "nx", kind, rgb2), inst)
    if "near" in faces and z0 > cam.near:
        sc.fill3(vquad_z(z0, x0, x1, y0, y1), cls, sc.mat(rgb, z0, "near", kind, rgb2), inst)


_CIRCLE = np.stack([np.cos(np.linspace(0, 2 * np.pi, 14, endpoint=False)),
                    np.sin(np.linspace(0, 2 * np.pi, 14, endpoint=False))], 1)


def _wheels_on_side(sc: Scene, xs, zcs, r, cls, inst, tyre, hub):
    """Wheels on a vehicle side in the plane X = xs: dark tyre discs with lighter hubs."""
    for rad, m in ((r, tyre), (r * 0.55, hub)):
        sc.fill3([np.stack([np.full(14, xs), r + rad * _CIRCLE[:, 1], zc + rad * _CIRCLE[:, 0]], 1) for zc in zcs],
                 cls, m, inst)


def _visible_side(x0, x1):
    """X of the vehicle side the camera sees, or None when the vehicle is straight ahead."""
    return x1 if x1 < -0.3 else x0 if x0 > 0.3 else None


def paint_car(sc: Scene, xc, z0, facing):
    """A car: wheels, body box, cabin box with glass, lights and plate on the near face."""
    w, L = sc.u(1.7, 1.95), sc.u(3.9, 4.8)
    hb, hc, clear = sc.u(0.9, 1.05), sc.u(1.38, 1.55), 0.28
    inst = sc.cv.new_instance()
    x0, x1 = xc - w / 2, xc + w / 2
    body = sc.colour("car")
    glass = sc.mat(sc.colour("glass"), z0, kind=GLASS)
    tyre = sc.mat(np.array([0.06, 0.06, 0.07]), z0)
    detailed = w * sc.px_per_m(z0) > 8
    sc.shadow3(hquad(0, x0 - 0.15 - 0.4 * sc.look.sun_side * sc.look.sunny, x1 + 0.15, z0 + 0.1, z0 + L + 0.3))
    if detailed and z0 + 0.6 > sc.cam.near:  # near wheels under the body
        sc.fill3([vquad_z(z0 + 0.6, a, a + 0.25, 0, clear + 0.1) for a in (x0 + 0.1, x1 - 0.35)], CAR, tyre, inst)
    paint_box(sc, x0, x1, clear, hb, z0, z0 + L, CAR, body, inst)
    if w * sc.px_per_m(z0) < 3:  # a few pixels: the body is all there is to see
        paint_box(sc, x0 + 0.12, x1 - 0.12, hb, hc, z0 + L * 0.3, z0 + L * 0.8, CAR, body, inst, faces=("near",))
        return
    xs = _visible_side(x0, x1)
    if xs is not None and detailed:
        hub = sc.mat(np.array([0.55, 0.55, 0.58]), z0)
        _wheels_on_side(sc, xs, (z0 + 0.8, z0 + L - 0.85), 0.33, CAR, inst, tyre, hub)
    cz0 = z0 + L * (0.28 if facing > 0 else 0.38)
    cz1 = z0 + L * (0.78 if facing > 0 else 0.86)
    paint_box(sc, x0 + 0.12, x1 - 0.12, hb, hc, cz0, cz1, CAR, body, inst)
    if not detailed:
        return
    if cz0 > sc.cam.near:  # rear window / windscreen
        sc.fill3(vquad_z(cz0 - 0.01, x0 + 0.2, x1 - 0.2, hb + 0.05, hc - 0.06), CAR, glass, inst)
    if xs is not None:  # side windows with a pillar between them
        xw = xs - 0.12 if xs > 0 else xs + 0.12  # the cabin is inset from the body side
        mid = (cz0 + cz1) / 2
        panes = ((cz0 + 0.12, mid - 0.06), (mid + 0.06, cz1 - 0.12))
        sc.fill3([vquad_x(xw, a, b, hb + 0.06, hc - 0.06) for a, b in panes], CAR, glass, inst)
    if z0 > sc.cam.near:  # lights, plate and bumper on the near face
        lamp = np.array([0.9, 0.1, 0.08]) if facing > 0 else np.array([1.0, 0.97, 0.85])
        lamp_m = sc.mat(lamp, z0, kind=EMIT)
        sc.fill3([vquad_z(z0 - 0.01, a, a + 0.3, hb - 0.25, hb - 0.1) for a in (x0 + 0.08, x1 - 0.38)],
                 CAR, lamp_m, inst)
        sc.fill3(vquad_z(z0 - 0.01, x0, x1, clear, clear + 0.14), CAR, sc.mat(body * 0.4, z0, "near"), inst)
        sc.fill3(vquad_z(z0 - 0.02, xc - 0.26, xc + 0.26, clear + 0.2, clear + 0.32), CAR,
                 sc.mat(np.array([0.92, 0.92, 0.88]), z0), inst)


def paint_truck(sc: Scene, xc, z0, facing):
    """A lorry: cargo box and cab (cab at the far end when we see its back), chassis, wheels."""
    w, L = sc.u(2.35, 2.55), sc.u(7.0, 10.0)
    hbox, hcab = sc.u(3.2, 3.8), sc.u(2.7, 3.0)
    inst = sc.cv.new_instance()
    x0, x1 = xc - w / 2, xc + w / 2
    cab_rgb, box_rgb = sc.colour("truck"), sc.colour("truck") if sc.p() < 0.5 else np.array([0.85, 0.85, 0.85])
    tyre = sc.mat(np.array([0.05, 0.05, 0.06]), z0)
    dark = np.array([0.12, 0.12, 0.13])
    sc.shadow3(hquad(0, x0 - 0.2, x1 + 0.2, z0, z0 + L + 0.3))
    xs = _visible_side(x0, x1)
    if facing > 0:
        cab = (z0 + L - 2.3, z0 + L)
        paint_box(sc, x0 + 0.05, x1 - 0.05, 0.5, hcab, *cab, TRUCK, cab_rgb, inst)
        paint_box(sc, x0 + 0.3, x1 - 0.3, 0.45, 0.95, z0 + 0.2, z0 + L - 2.4, TRUCK, dark, inst)
        if xs is not None:
            _wheels_on_side(sc, xs, (z0 + 1.2, z0 + 2.5, z0 + L - 1.4), 0.5, TRUCK, inst, tyre,
                            sc.mat(dark * 3, z0))
        paint_box(sc, x0, x1, 0.95, hbox, z0, z0 + L - 2.4, TRUCK, box_rgb, inst)
        if z0 > sc.cam.near:  # rear doors and lamps
            line = sc.mat(box_rgb * 0.6, z0, "near")
            sc.fill3(vquad_z(z0 - 0.01, xc - 0.03, xc + 0.03, 1.0, hbox - 0.1), TRUCK, line, inst)
            sc.fill3([vquad_z(z0 - 0.01, a, a + 0.25, 0.75, 0.9) for a in (x0 + 0.1, x1 - 0.35)], TRUCK,
                     sc.mat(np.array([0.9, 0.1, 0.1]), z0, kind=EMIT), inst)
    else:
        paint_box(sc, x0, x1, 0.95, hbox, z0 + 2.4, z0 + L, TRUCK, box_rgb, inst)
        if xs is not None:
            _wheels_on_side(sc, xs, (z0 + 1.2, z0 + L - 2.5, z0 + L - 1.2), 0.5, TRUCK, inst, tyre,
                            sc.mat(dark * 3, z0))
        paint_box(sc, x0 + 0.05, x1 - 0.05, 0.5, hcab, z0, z0 + 2.3, TRUCK, cab_rgb, inst)
        if z0 > sc.cam.near:  # windscreen, grille, headlamps
            glass = sc.mat(sc.colour("glass"), z0, kind=GLASS)
            sc.fill3(vquad_z(z0 - 0.01, x0 + 0.2, x1 - 0.2, 1.7, hcab - 0.15), TRUCK, glass, inst)
            sc.fill3(vquad_z(z0 - 0.01, x0 + 0.5, x1 - 0.5, 0.7, 1.4), TRUCK, sc.mat(dark, z0), inst)
            sc.fill3([vquad_z(z0 - 0.02, a, a + 0.3, 0.75, 0.95) for a in (x0 + 0.1, x1 - 0.4)], TRUCK,
                     sc.mat(np.array([1.0, 0.97, 0.85]), z0, kind=EMIT), inst)


def paint_bus(sc: Scene, xc, z0, facing, cls=BUS):
    """A bus (or, with cls=TRAIN, a tram): a long box with a band of side windows, a big
    near window, a destination display and, for trams, a pantograph."""
    tram = cls == TRAIN
    w, L, H = (2.4, sc.u(25, 32), 3.4) if tram else (2.5, sc.u(11, 12.5), sc.u(2.9, 3.2))
    inst = sc.cv.new_instance()
    x0, x1 = xc - w / 2, xc + w / 2
    rgb = sc.colour("tram" if tram else "bus")
    glass = sc.mat(sc.colour("glass"), z0, kind=GLASS)
    sc.shadow3(hquad(0, x0 - 0.2, x1 + 0.2, z0, z0 + L + 0.3))
    if tram:  # pantograph: thin bars above the roof
        mid = z0 + L / 2
        bar = sc.mat(np.array([0.15, 0.15, 0.15]), z0)
        arm = [[xc - 0.04, H, mid - 1.0], [xc + 0.04, H, mid - 1.0], [xc + 0.04, 4.6, mid], [xc - 0.04, 4.6, mid]]
        sc.fill3(np.array(arm), cls, bar, inst)
        sc.fill3(vquad_z(mid, xc - 0.8, xc + 0.8, 4.55, 4.65), cls, bar, inst)
    paint_box(sc, x0, x1, 0.3, H, z0, z0 + L, cls, rgb, inst)
    xs = _visible_side(x0, x1)
    if xs is not None:
        xw = xs - 0.01 if xs > 0 else xs + 0.01
        tyre = sc.mat(np.array([0.05, 0.05, 0.06]), z0)
        hub = sc.mat(np.array([0.5, 0.5, 0.5]), z0)
        _wheels_on_side(sc, xs, (z0 + 2.5, z0 + L - 3.0) if not tram else (z0 + 2.5, z0 + L / 2, z0 + L - 2.5),
                        0.48, cls, inst, tyre, hub)
        panes = np.arange(z0 + 0.8, z0 + L - 2.3, 1.8)
        sc.fill3([vquad_x(xw, z, z + 1.6, 1.25, H - 0.55) for z in panes], cls, glass, inst)
    if z0 > sc.cam.near:
        top = H - 0.5 if facing > 0 else H - 0.45
        sc.fill3(vquad_z(z0 - 0.01, x0 + 0.15, x1 - 0.15, 1.5 if facing > 0 else 1.0, top), cls, glass, inst)
        sc.fill3(vquad_z(z0 - 0.02, x0 + 0.4, x1 - 0.4, H - 0.4, H - 0.15), cls,
                 sc.mat(np.array([1.0, 0.65, 0.1]), z0, kind=EMIT), inst)
        lamp = np.array([0.9, 0.1, 0.08]) if facing > 0 else np.array([1.0, 0.97, 0.85])
        sc.fill3([vquad_z(z0 - 0.01, a, a + 0.25, 0.55, 0.8) for a in (x0 + 0.1, x1 - 0.35)], cls,
                 sc.mat(lamp, z0, kind=EMIT), inst)


def _limb(sc: Scene, a3, b3, wa, wb, cls, mat, inst):
    """A limb or bar between two 3D points, wa/wb metres wide at its ends."""
    if min(a3[2], b3[2]) < sc.cam.near:
        return
    pa, pb = sc.cam.project(np.array([a3, b3], float))
    sc.fill2(segment_quad(pa, pb, wa * sc.px_per_m(a3[2]), wb * sc.px_per_m(b3[2])), cls, mat, inst)


def _head(sc: Scene, c3, r, cls, skin, hair, inst):
    """A head: a skin ellipse with a hair cap."""
    if c3[2] < sc.cam.near:
        return
    (u, v), = sc.cam.project(np.array([c3], float))
    s = sc.px_per_m(c3[2])
    sc.fill2(ellipse2d(u, v, r * s * 0.85, r * s, 12), cls, skin, inst)
    sc.fill2(ellipse2d(u, v - r * s * 0.35, r * s * 0.88, r * s * 0.7, 12), cls, hair, inst)


def paint_person(sc: Scene, x, z, height):
    """A pedestrian seen from the front or back: legs (walking stride), torso, arms, head."""
    if z < sc.cam.near + 0.5:
        return
    inst = sc.cv.new_instance()
    H = height
    skin = sc.mat(sc.colour("skin"), z)
    hair = sc.mat(sc.colour("hair"), z)
    shirt = sc.mat(sc.colour("shirt"), z)
    legs = sc.mat(sc.colour("trousers"), z)
    sc.shadow3(hquad(0, x - 0.3, x + 0.3 + 0.6 * sc.look.sunny, z - 0.1, z + 0.3), 0.8)
    if H * sc.px_per_m(z) < 14:  # far away: legs, torso and head are all that a few pixels show
        _limb(sc, (x, 0.52 * H, z), (x, 0.02, z), 0.3, 0.3, PERSON, legs, inst)
        _limb(sc, (x, 0.5 * H, z), (x, 0.82 * H, z), 0.36, 0.42, PERSON, shirt, inst)
        _head(sc, (x, 0.92 * H, z), 0.07 * H, PERSON, skin, hair, inst)
        return
    stride = sc.u(0.0, 0.16) * H
    hip = 0.52 * H
    for side in (-1, 1):
        foot = x + side * (0.08 * H / 1.75 + stride * sc.u(0.3, 1.0) / 2)
        _limb(sc, (x + side * 0.07, hip, z), (foot, 0.02, z), 0.14, 0.11, PERSON, legs, inst)
    sh = 0.2 * H / 1.75
    torso = [[x - 0.15, hip - 0.05, z], [x + 0.15, hip - 0.05, z], [x + sh, 0.82 * H, z], [x - sh, 0.82 * H, z]]
    sc.fill3(np.array(torso), PERSON, shirt, inst)
    swing = sc.u(-0.15, 0.15)
    for side in (-1, 1):
        _limb(sc, (x + side * (sh - 0.03), 0.8 * H, z), (x + side * (sh + 0.05) + swing * side, 0.47 * H, z),
              0.09, 0.07, PERSON, shirt if sc.p() < 0.6 else skin, inst)
    if sc.style.camera_like and sc.p() < 0.35:  # a bag
        side = sc.sign()
        sc.fill3(vquad_z(z - 0.05, x + side * sh, x + side * (sh + 0.22), 0.45 * H, 0.62 * H), PERSON,
                 sc.mat(sc.colour("trousers"), z), inst)
    _limb(sc, (x, 0.81 * H, z), (x, 0.87 * H, z), 0.08, 0.08, PERSON, skin, inst)
    _head(sc, (x, 0.93 * H, z), 0.075 * H / 1.75 * 1.6, PERSON, skin, hair, inst)


def paint_two_wheeler(sc: Scene, x, z, heading, motor: bool, rider: bool):
    """A bicycle or motorcycle (heading 0 = driving away, ±π/2 = crossing) with an optional rider.
    The vehicle is drawn in its own vertical plane, so it is a thin sliver from behind and a
    clear two-wheeled profile from the side."""
    if z < sc.cam.near + 1.5:
        return
    cls = MOTORCYCLE if motor else BICYCLE
    inst = sc.cv.new_instance()
    d = np.array([math.sin(heading), 0.0, math.cos(heading)])
    P = np.array([x, 0.0, z])
    up = np.array([0.0, 1.0, 0.0])
    r, half = (0.32, 0.72) if motor else (0.34, 0.53)
    frame = sc.mat(sc.colour("bike"), z)
    tyre = sc.mat(np.array([0.05, 0.05, 0.05]), z)
    s = sc.px_per_m(z)
    sc.shadow3(hquad(0, x - 0.4, x + 0.4, z - 0.6, z + 0.6), 0.7)
    t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    for c in (P - d * half, P + d * half):  # wheels
        ring = c + up * r + np.outer(np.cos(t), d) * r + np.outer(np.sin(t), up) * r
        pts = sc.cam.project(ring)
        if motor:
            sc.fill2(pts, cls, tyre, inst)
        else:
            sc.cv.lines([pts], cls, tyre, inst, round(0.05 * s), closed=True)
    if motor:  # body and tank between the wheels, in the bike's plane
        body = [P - d * 0.75 + up * 0.75, P - d * 0.2 + up * 0.95, P + d * 0.4 + up * 1.0, P + d * 0.7 + up * 0.75,
                P + d * 0.35 + up * 0.35, P - d * 0.35 + up * 0.35]
        sc.fill3(np.array(body), cls, frame, inst)
        _limb(sc, P + d * 0.55 + up * 0.85, P + d * 0.65 + up * 1.15, 0.08, 0.08, cls, tyre, inst)
        seat, bar = P - d * 0.25 + up * 0.95, P + d * 0.55 + up * 1.1
    else:  # diamond frame, seat post and handlebar
        bb, seat, bar = P + up * 0.3, P - d * 0.12 + up * 0.92, P + d * 0.42 + up * 1.0
        for a, b in ((P - d * half + up * r, bb), (bb, seat), (P - d * half + up * r, seat), (seat, bar),
                     (bb, bar), (bar, P + d * half + up * r)):
            _limb(sc, a, b, 0.045, 0.045, cls, frame, inst)
    if not rider:
        return
    rid = sc.cv.new_instance()
    skin, hair = sc.mat(sc.colour("skin"), z), sc.mat(sc.colour("hair"), z)
    shirt, legs = sc.mat(sc.colour("shirt"), z), sc.mat(sc.colour("trousers"), z)
    hip = seat + up * 0.05
    shoulder = hip + up * 0.55 + d * (0.25 if motor else 0.18)
    side = np.cross(up, d)  # the rider's left-right axis
    for k in (-1, 1):
        knee = P + d * 0.15 + up * 0.55 + side * 0.12 * k
        foot = P + d * (0.05 * k) + up * 0.25 + side * 0.12 * k
        _limb(sc, hip + side * 0.1 * k, knee, 0.15, 0.12, RIDER, legs, rid)
        _limb(sc, knee, foot, 0.12, 0.1, RIDER, legs, rid)
    _limb(sc, hip, shoulder, 0.34, 0.38, RIDER, shirt, rid)
    for k in (-1, 1):
        _limb(sc, shoulder + side * 0.18 * k, bar + side * 0.25 * k, 0.09, 0.07, RIDER, shirt, rid)
    helmet = sc.mat(sc.colour("bike"), z) if motor or sc.p() < 0.5 else hair
    _head(sc, shoulder + up * 0.22 + d * 0.04, 0.12 if motor else 0.1, RIDER, skin, helmet, rid)


def _bar(sc: Scene, x, z, r, y0, y1, cls, mat):
    """A thin vertical bar facing the camera (poles, trunks)."""
    if z > sc.cam.near:
        sc.fill3(vquad_z(z, x - r, x + r, y0, y1), cls, mat)


def paint_lamp(sc: Scene, x, z, s):
    """A street lamp: pole, an arm reaching over the road (towards -s) and a lamp head."""
    H = sc.u(6.5, 9.0)
    m = sc.mat(sc.colour("pole"), z)
    _bar(sc, x, z, sc.u(0.08, 0.12), 0, H, POLE, m)
    reach = sc.u(1.0, 2.2)
    _limb(sc, (x, H - 0.1, z), (x - s * reach, H + 0.3, z), 0.08, 0.06, POLE, m, 0)
    head = x - s * reach
    sc.fill3(vquad_z(z - 0.01, head - 0.35, head + 0.35, H + 0.12, H + 0.35), POLE, m)


def _light_housing(sc: Scene, x, z, y, box_rgb):
    """A three-lamp traffic-light housing facing the camera (all of it class light)."""
    sc.fill3(vquad_z(z - 0.05, x - 0.17, x + 0.17, y, y + 0.9), LIGHT, sc.mat(box_rgb, z, "near"))
    on = sc.pick(3)
    lamps = ([1.0, 0.15, 0.1], [1.0, 0.7, 0.1], [0.2, 1.0, 0.45])
    s = sc.px_per_m(z)
    if 0.3 * s < 2:
        return
    (u, v), = sc.cam.project(np.array([[x, y + 0.75, z - 0.06]]))
    for i, rgb in enumerate(lamps):
        lit = np.array(rgb) if i == on else np.array(rgb) * 0.2
        lamp = sc.mat(lit, z, kind=EMIT if i == on else FLAT)
        sc.fill2(ellipse2d(u, v + i * 0.28 * s, 0.1 * s, 0.1 * s, 10), LIGHT, lamp)


def paint_traffic_light(sc: Scene, x, z, s, overhead: bool):
    """A traffic-light pole at the kerb, the housing on top or hanging from an arm over the road."""
    m = sc.mat(sc.colour("pole"), z)
    H = sc.u(3.0, 3.8) if not overhead else sc.u(5.5, 6.5)
    _bar(sc, x, z, 0.08, 0, H, POLE, m)
    box = np.array([0.12, 0.12, 0.1]) if sc.style.camera_like or sc.p() < 0.5 else np.array([0.9, 0.75, 0.1])
    if overhead:
        reach = sc.u(3.0, 5.0)
        _limb(sc, (x, H, z), (x - s * reach, H, z), 0.1, 0.08, POLE, m, 0)
        _light_housing(sc, x - s * reach, z, H - 1.0, box)
    else:
        _light_housing(sc, x, z, H - 0.1, box)


def paint_sign(sc: Scene, x, z):
    """A traffic sign: a thin pole and a plate (circle, triangle, square or a sign's grey back)."""
    H = sc.u(2.2, 3.0)
    _bar(sc, x, z, 0.035, 0, H, POLE, sc.mat(sc.colour("pole"), z))
    if z < sc.cam.near:
        return
    (u, v), = sc.cam.project(np.array([[x, H + 0.3, z - 0.02]]))
    s = sc.px_per_m(z)
    r = sc.u(0.28, 0.38) * s
    kind = sc.pick(4)
    red, white, blue = np.array([0.85, 0.1, 0.1]), np.array([0.95, 0.95, 0.95]), np.array([0.1, 0.3, 0.8])
    if sc.style.camera_like:  # faded paint
        red, white, blue = red * 0.8 + 0.08, white * 0.85, blue * 0.8 + 0.06
    if kind == 0:  # prohibition: red ring, white disc
        sc.fill2(ellipse2d(u, v, r, r, 16), SIGN, sc.mat(red, z))
        sc.fill2(ellipse2d(u, v, r * 0.75, r * 0.75, 16), SIGN, sc.mat(white, z))
    elif kind == 1:  # mandatory: blue disc, white arrow
        sc.fill2(ellipse2d(u, v, r, r, 16), SIGN, sc.mat(blue, z))
        arrow = segment_quad(np.array([u, v + r * 0.6]), np.array([u, v - r * 0.5]), r * 0.25, r * 0.25)
        sc.fill2(arrow, SIGN, sc.mat(white, z))
    elif kind == 2:  # warning: red triangle, white inside
        tri = np.array([[u, v - r * 1.1], [u + r * 1.1, v + r * 0.8], [u - r * 1.1, v + r * 0.8]])
        sc.fill2(tri, SIGN, sc.mat(red, z))
        sc.fill2(np.array([u, v]) + (tri - [u, v]) * 0.65 + [0, r * 0.05], SIGN, sc.mat(white, z))
    else:  # a square information sign or a plate seen from behind
        rgb = sc.colour("pole") if sc.p() < 0.4 else blue
        sc.fill2(np.array([[u - r, v - r], [u + r, v - r], [u + r, v + r], [u - r, v + r]]), SIGN, sc.mat(rgb, z))


def paint_tree(sc: Scene, x, z, palm=False):
    """A tree: trunk and a crown of overlapping blobs (or a palm with radiating fronds);
    trunks are vegetation in Cityscapes."""
    if z < sc.cam.near + 1:
        return
    leaf = sc.mat(sc.colour("leaf"), z, kind=LEAF)
    trunk = sc.mat(sc.colour("trunk"), z)
    s = sc.px_per_m(z)
    if palm:
        H = sc.u(7, 12)
        _limb(sc, (x, 0, z), (x + sc.u(-0.4, 0.4), H, z), 0.35, 0.22, VEGETATION, trunk, 0)
        (u, v), = sc.cam.project(np.array([[x, H, z]]))
        for a in np.linspace(0, 2 * np.pi, 9, endpoint=False) + sc.u(0, 1):
            tip = np.array([u + math.cos(a) * 2.6 * s, v - math.sin(a) * 1.0 * s + 0.9 * s])
            sc.fill2(segment_quad(np.array([u, v]), tip, 0.5 * s, 0.1 * s), VEGETATION, leaf)
        return
    base, radius = sc.u(2.0, 3.5), sc.u(1.6, 3.2)
    _bar(sc, x, z, sc.u(0.1, 0.2), 0, base + radius, VEGETATION, trunk)
    (u, v), = sc.cam.project(np.array([[x, base + radius, z]]))
    blobs = int(np.clip(radius * s / 3, 2, 8))  # fewer blobs when the crown is a few pixels
    for _ in range(blobs):
        du, dv = sc.u(-0.6, 0.6) * radius * s, sc.u(-0.6, 0.6) * radius * s
        rr = sc.u(0.45, 0.75) * radius * s
        jitter = sc.rng.uniform(0.85, 1.15, 12) if sc.style.camera_like else None
        sc.fill2(ellipse2d(u + du, v + dv * 0.8, rr, rr * 0.9, 12, jitter), VEGETATION, leaf)


def paint_static(sc: Scene, x, z):
    """A rubbish bin: Cityscapes' 'static' void class (ignored in training and evaluation)."""
    paint_box(sc, x - 0.3, x + 0.3, 0, sc.u(0.9, 1.2), z, z + 0.6, STATIC, sc.colour("static"))


def paint_structure(sc: Scene, kind: str, x, z0, z1, s, height, rgb, first: bool):
    """One piece (a few metres) of a hedge, wall or fence on the property line of side s.
    Long runs are cut into pieces so that the painter's order interleaves them correctly."""
    faces = ("top", "side", "near") if first else ("top", "side")
    if kind == "hedge":
        x0, x1 = sorted((x, x + s * 0.8))
        paint_box(sc, x0, x1, 0, height, z0, z1, VEGETATION, rgb, kind=LEAF, faces=faces)
    elif kind == "wall":
        paint_box(sc, min(x, x + s * 0.3), max(x, x + s * 0.3), 0, height, z0, z1, WALL, rgb, faces=faces)
    else:  # fence: posts, two rails and see-through pickets
        m = sc.mat(rgb, z0, "px" if s < 0 else "nx")
        sc.fill3(vquad_x(x, z0, z1, height - 0.12, height), FENCE, m)
        sc.fill3(vquad_x(x, z0, z1, 0.15, 0.25), FENCE, m)
        zs = np.arange(z0, z1, 0.18)
        zs = zs[zs > sc.cam.near]
        if zs.size:
            bottoms = sc.cam.project(np.stack([np.full_like(zs, x), np.zeros_like(zs), zs], 1))
            tops = sc.cam.project(np.stack([np.full_like(zs, x), np.full_like(zs, height), zs], 1))
            width = 0.05 * sc.px_per_m((z0 + z1) / 2)
            sc.cv.lines(list(np.stack([bottoms, tops], 1)), FENCE, m, 0, round(width))
        _bar(sc, x, z0, 0.05, 0, height + 0.05, FENCE, m)


def paint_hood(sc: Scene):
    """The ego car's bonnet across the bottom of the frame (Cityscapes 'ego vehicle', void)."""
    w, h = sc.cam.width, sc.cam.height
    top = sc.u(0.09, 0.15) * h
    us = np.linspace(-0.02 * w, 1.02 * w, 24)
    vs = h - top * (1 - 0.6 * ((us - w / 2) / (w / 2)) ** 2)
    pts = np.concatenate([np.stack([us, vs], 1), [[1.02 * w, h + 2], [-0.02 * w, h + 2]]])
    sc.fill2(pts, EGO, sc.mat(sc.colour("hood"), kind=GLASS))
