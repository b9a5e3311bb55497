"""Hand-built object categories of the pretraining set: the street classes' objects and others.

Each drawer paints one object, seen from the side or the front, into a ``Pen`` in unit
coordinates (the object fills roughly [0.05, 0.95]²; ``images.py`` then scales, rotates, shifts
and flips it onto a background). Proportions vary per instance. These are 2D drawings made for
this set — none of the benchmark's 3D scene code (``udaseg.benchmark``) is used, so no object
here looks like a benchmark render, as ImageNet's photographs do not look like GTA5.
"""
from __future__ import annotations

import numpy as np

from .palette import Palette
from .pen import Pen

def _wheel(p: Pen, x, y, r, pal: Palette, hub=None):
    p.circle(x, y, r, pal.dark())
    p.circle(x, y, r * 0.5, hub or pal.grey())


# --- vehicles ------------------------------------------------------------------------------

def car_side(p: Pen, r, pal: Palette):
    body, y0, y1 = pal.any(), r.uniform(0.45, 0.55), r.uniform(0.68, 0.75)
    p.poly([(0.05, y1), (0.05, y0 + 0.04), (0.12, y0), (0.88, y0), (0.95, y0 + 0.06), (0.95, y1)], body)
    top = y0 - r.uniform(0.14, 0.22)
    a, b = r.uniform(0.2, 0.3), r.uniform(0.62, 0.75)
    p.poly([(a, y0), (a + 0.09, top), (b - 0.05, top), (b + 0.08, y0)], body)
    glass = pal.glass()
    m = (a + b) / 2
    p.poly([(a + 0.04, y0 - 0.01), (a + 0.11, top + 0.025), (m - 0.01, top + 0.025), (m - 0.01, y0 - 0.01)], glass)
    p.poly([(m + 0.01, y0 - 0.01), (m + 0.01, top + 0.025), (b - 0.06, top + 0.025), (b + 0.04, y0 - 0.01)], glass)
    rr = r.uniform(0.08, 0.11)
    for x in (0.23, 0.77):
        _wheel(p, x, y1, rr, pal)
    p.rect(0.91, y0 + 0.03, 0.95, y0 + 0.07, pal.lamp(0.15))


def car_rear(p: Pen, r, pal: Palette):
    body, w = pal.any(), r.uniform(0.32, 0.42)
    y0, y1 = r.uniform(0.42, 0.5), r.uniform(0.72, 0.8)
    for x in (0.5 - w + 0.05, 0.5 + w - 0.12):
        p.rect(x, y1 - 0.02, x + 0.07, y1 + 0.08, pal.dark())
    p.rect(0.5 - w, y0, 0.5 + w, y1, body)
    top = y0 - r.uniform(0.15, 0.22)
    p.poly([(0.5 - w + 0.04, y0), (0.5 - w + 0.1, top), (0.5 + w - 0.1, top), (0.5 + w - 0.04, y0)], body)
    p.poly([(0.5 - w + 0.08, y0 - 0.01), (0.5 - w + 0.12, top + 0.03), (0.5 + w - 0.12, top + 0.03),
            (0.5 + w - 0.08, y0 - 0.01)], pal.glass())
    red = pal.lamp(0.0)
    p.rect(0.5 - w + 0.02, y0 + 0.04, 0.5 - w + 0.11, y0 + 0.09, red)
    p.rect(0.5 + w - 0.11, y0 + 0.04, 0.5 + w - 0.02, y0 + 0.09, red)
    p.rect(0.42, y1 - 0.12, 0.58, y1 - 0.06, pal.light())


def truck(p: Pen, r, pal: Palette):
    y1 = r.uniform(0.75, 0.82)
    top = r.uniform(0.12, 0.25)
    cab_w = r.uniform(0.2, 0.26)
    p.rect(0.04, top, 0.95 - cab_w - 0.01, y1 - 0.04, pal.any())
    cab = pal.any()
    p.poly([(0.95 - cab_w, y1 - 0.04), (0.95 - cab_w, top + 0.2), (0.9, top + 0.2), (0.96, top + 0.35), (0.96, y1 - 0.04)], cab)
    p.poly([(0.97 - cab_w, top + 0.25), (0.89, top + 0.25), (0.93, top + 0.36), (0.97 - cab_w, top + 0.36)], pal.glass())
    p.rect(0.04, y1 - 0.06, 0.96, y1 - 0.02, pal.dark())
    rr = r.uniform(0.07, 0.09)
    for x in (0.15, 0.3, 0.85):
        _wheel(p, x, y1, rr, pal)


def bus(p: Pen, r, pal: Palette):
    top, y1 = r.uniform(0.2, 0.3), r.uniform(0.75, 0.82)
    body = pal.any()
    p.poly([(0.03, y1), (0.03, top + 0.03), (0.06, top), (0.95, top), (0.97, top + 0.05), (0.97, y1)], body)
    glass, n = pal.glass(), int(r.integers(4, 8))
    wy0, wy1 = top + 0.06, top + r.uniform(0.22, 0.3)
    xs = np.linspace(0.08, 0.92, n + 1)
    for a, b in zip(xs[:-1], xs[1:]):
        p.rect(a + 0.01, wy0, b - 0.01, wy1, glass)
    d = r.uniform(0.15, 0.75)
    p.rect(d, wy0, d + 0.08, y1 - 0.04, glass)
    if r.random() < 0.5:
        p.rect(0.03, wy1 + 0.05, 0.97, wy1 + 0.09, pal.any())
    for x in (0.2, 0.8):
        _wheel(p, x, y1, 0.08, pal)


def tram(p: Pen, r, pal: Palette):
    top, y1 = r.uniform(0.3, 0.4), r.uniform(0.72, 0.78)
    p.polyline([(0.4, top - 0.02), (0.5, top - 0.16), (0.6, top - 0.02)], 0.012, pal.dark())
    p.line(0.3, top - 0.16, 0.7, top - 0.16, 0.01, pal.dark())
    body = pal.any()
    p.poly([(0.02, y1), (0.02, top), (0.9, top), (0.98, top + 0.12), (0.98, y1)], body)
    glass = pal.glass()
    for a in np.arange(0.06, 0.82, 0.12):
        p.rect(a, top + 0.05, a + 0.08, top + 0.18, glass)
    p.poly([(0.88, top + 0.04), (0.92, top + 0.04), (0.97, top + 0.14), (0.88, top + 0.14)], glass)
    p.rect(0.0, y1 + 0.05, 1.0, y1 + 0.07, pal.grey())
    for x in (0.15, 0.3, 0.7, 0.85):
        p.circle(x, y1 + 0.02, 0.035, pal.dark())


def _two_wheels(p: Pen, r, pal: Palette, motor: bool):
    rr = r.uniform(0.15, 0.2)
    y = 0.95 - rr
    xa, xb = 0.08 + rr, 0.92 - rr
    w = 0.03 if motor else 0.018
    for x in (xa, xb):
        p.circle(x, y, rr, pal.dark(), thickness=w)
        p.circle(x, y, 0.03, pal.grey())
    frame = pal.any()
    seat = (xa + 0.12, y - 0.28)
    bar = (xb - 0.06, y - 0.34)
    if motor:
        p.poly([(xa + 0.02, y - 0.12), (xa + 0.08, y - 0.24), (xb - 0.12, y - 0.3), (xb - 0.05, y - 0.12),
                (xa + 0.3, y - 0.05)], frame)
        p.ellipse(xa + 0.2, y - 0.27, 0.14, 0.035, pal.dark())
    else:
        crank = ((xa + xb) / 2, y)
        for a, b in ((crank, seat), (seat, (xa, y)), ((xa, y), crank), (crank, bar), (bar, (xb, y)), (seat, bar)):
            p.line(*a, *b, 0.022, frame)
        p.ellipse(seat[0], seat[1] - 0.02, 0.05, 0.015, pal.dark())
    p.line(bar[0], bar[1], bar[0] + 0.05, bar[1] - 0.04, 0.02, pal.grey())
    return seat, bar


def motorcycle(p: Pen, r, pal: Palette):
    _two_wheels(p, r, pal, motor=True)


def bicycle(p: Pen, r, pal: Palette):
    _two_wheels(p, r, pal, motor=False)


def _figure(p: Pen, r, pal: Palette, x, foot_y, h, seated=None):
    """A person: head, torso, arms, legs; ``seated`` = (seat, hands) for a rider."""
    skin, top_c, legs_c = pal.skin(), pal.any(), pal.any()
    head_r = h * 0.07
    hip = (x, foot_y - h * 0.48)
    neck = (x + r.uniform(-0.01, 0.02), foot_y - h * 0.84)
    w = h * 0.09
    if seated is None:
        s = r.uniform(0.04, 0.16) * h
        for dx in (-s, s):
            p.line(hip[0], hip[1], x + dx, foot_y, w * 0.8, legs_c)
    else:
        seat, pedal = seated
        knee = (hip[0] + h * 0.2, hip[1] + h * 0.05)
        p.polyline([hip, knee, pedal], w * 0.8, legs_c)
    p.poly([(hip[0] - w, hip[1]), (neck[0] - w, neck[1]), (neck[0] + w, neck[1]), (hip[0] + w, hip[1])], top_c)
    if seated is None:
        a = r.uniform(0.05, 0.15) * h
        for dx in (-a, a):
            p.polyline([neck, (x + dx, neck[1] + h * 0.2), (x + dx * 1.2, neck[1] + h * 0.38)], w * 0.6, top_c)
    else:
        p.polyline([neck, seated[1]], w * 0.6, top_c)
    p.circle(neck[0], neck[1] - head_r * 1.1, head_r, skin)
    if r.random() < 0.6:  # hair or a helmet
        p.ellipse(neck[0], neck[1] - head_r * 1.5, head_r * 1.05, head_r * 0.6, pal.any() if seated else pal.dark())


def person(p: Pen, r, pal: Palette):
    _figure(p, r, pal, 0.5 + r.uniform(-0.05, 0.05), 0.96, r.uniform(0.8, 0.92))


def rider(p: Pen, r, pal: Palette):
    seat, bar = _two_wheels(p, r, pal, motor=r.random() < 0.5)
    crank = (0.5, 0.95 - 0.17)
    h = 0.62
    _figure(p, r, pal, seat[0], seat[1] + h * 0.48, h, seated=(seat, crank))
    p.circle(bar[0], bar[1], 0.02, pal.skin())


# --- street furniture ----------------------------------------------------------------------

def _pole(p: Pen, r, pal: Palette, x=0.5, top=0.05, w=None):
    w = w or r.uniform(0.03, 0.06)
    p.rect(x - w / 2, top, x + w / 2, 0.98, pal.grey())
    return w


def pole(p: Pen, r, pal: Palette):
    w = _pole(p, r, pal, x=0.5 + r.uniform(-0.1, 0.1), top=r.uniform(0.02, 0.1))
    if r.random() < 0.5:
        y = r.uniform(0.2, 0.6)
        p.rect(0.5 - w, y, 0.5 + w, y + 0.05, pal.grey())


def street_lamp(p: Pen, r, pal: Palette):
    _pole(p, r, pal, x=0.3, top=0.1, w=0.04)
    p.polyline([(0.3, 0.12), (0.45, 0.06), (0.68, 0.08)], 0.03, pal.grey())
    p.ellipse(0.7, 0.11, 0.1, 0.04, pal.dark())
    p.ellipse(0.7, 0.135, 0.07, 0.015, pal.lamp(0.14))


def traffic_light(p: Pen, r, pal: Palette):
    _pole(p, r, pal, x=0.5, top=0.4, w=0.05)
    x0, x1, y0, y1 = 0.38, 0.62, r.uniform(0.03, 0.1), r.uniform(0.55, 0.62)
    p.rect(x0, y0, x1, y1, pal.dark())
    lit = int(r.integers(3))
    for i, hue in enumerate((0.0, 0.12, 0.36)):
        cy = y0 + (y1 - y0) * (i + 0.5) / 3
        colour = pal.lamp(hue) if i == lit else pal.hsv(hue, 0.4, 0.25)
        p.circle(0.5, cy, 0.075, colour)


def _sign(p: Pen, r, pal: Palette, shape: str):
    _pole(p, r, pal, x=0.5, top=0.5, w=0.04)
    face, rim = pal.any(), pal.any()
    c, s = (0.5, 0.32), r.uniform(0.24, 0.3)
    if shape == "round":
        p.circle(*c, s, rim)
        p.circle(*c, s * 0.78, face)
    elif shape == "triangle":
        down = r.random() < 0.3
        pts = [(c[0] - s, c[1] - s * 0.8), (c[0] + s, c[1] - s * 0.8), (c[0], c[1] + s * 0.9)] if down else \
            [(c[0] - s, c[1] + s * 0.8), (c[0] + s, c[1] + s * 0.8), (c[0], c[1] - s * 0.9)]
        p.poly(pts, rim)
        inner = [(c[0] + (x - c[0]) * 0.65, c[1] + (y - c[1]) * 0.65) for x, y in pts]
        p.poly(inner, face)
    elif shape == "octagon":
        a = np.pi / 8 + np.arange(8) * np.pi / 4
        p.poly(np.stack([c[0] + s * np.cos(a), c[1] + s * np.sin(a)], 1), rim)
        p.poly(np.stack([c[0] + 0.8 * s * np.cos(a), c[1] + 0.8 * s * np.sin(a)], 1), face)
    else:
        w, h = s * r.uniform(0.9, 1.4), s * r.uniform(0.6, 1.0)
        p.rect(c[0] - w, c[1] - h, c[0] + w, c[1] + h, rim)
        p.rect(c[0] - w * 0.88, c[1] - h * 0.82, c[0] + w * 0.88, c[1] + h * 0.82, face)
    mark = pal.any()
    kind = int(r.integers(3))
    if kind == 0:
        p.line(c[0] - s * 0.4, c[1], c[0] + s * 0.4, c[1], s * 0.16, mark)
    elif kind == 1:
        p.poly([(c[0] - s * 0.3, c[1] + s * 0.1), (c[0], c[1] - s * 0.35), (c[0] + s * 0.3, c[1] + s * 0.1)], mark)
    else:
        p.circle(c[0], c[1], s * 0.2, mark)


def sign_round(p, r, pal):
    _sign(p, r, pal, "round")


def sign_triangle(p, r, pal):
    _sign(p, r, pal, "triangle")


def sign_rect(p, r, pal):
    _sign(p, r, pal, "rect")


def sign_octagon(p, r, pal):
    _sign(p, r, pal, "octagon")


# --- vegetation and structures ---------------------------------------------------------------

def tree(p: Pen, r, pal: Palette):
    trunk_w = r.uniform(0.05, 0.09)
    p.rect(0.5 - trunk_w / 2, 0.5, 0.5 + trunk_w / 2, 0.98, pal.brown())
    for _ in range(int(r.integers(5, 10))):
        p.ellipse(0.5 + r.uniform(-0.25, 0.25), r.uniform(0.2, 0.5), r.uniform(0.12, 0.25),
                  r.uniform(0.1, 0.2), pal.green(), angle=r.uniform(0, 180))


def conifer(p: Pen, r, pal: Palette):
    p.rect(0.47, 0.8, 0.53, 0.98, pal.brown())
    n = int(r.integers(3, 6))
    for i in range(n):
        y = 0.05 + 0.75 * i / n
        w = 0.15 + 0.3 * (i + 1) / n
        p.poly([(0.5 - w, y + 0.75 / n + 0.1), (0.5, y), (0.5 + w, y + 0.75 / n + 0.1)], pal.green())


def palm(p: Pen, r, pal: Palette):
    bend = r.uniform(-0.15, 0.15)
    pts = [(0.5 + bend * t * t, 0.98 - 0.75 * t) for t in np.linspace(0, 1, 6)]
    p.polyline(pts, 0.05, pal.brown())
    top = pts[-1]
    for a in np.linspace(0, 2 * np.pi, int(r.integers(6, 10)), endpoint=False):
        a += r.uniform(-0.2, 0.2)
        ln = r.uniform(0.22, 0.35)
        mid = (top[0] + 0.6 * ln * np.cos(a), top[1] + 0.6 * ln * np.sin(a) - 0.05)
        end = (top[0] + ln * np.cos(a), top[1] + ln * np.sin(a) + 0.06)
        p.polyline([top, mid, end], 0.04, pal.green())


def bush(p: Pen, r, pal: Palette):
    for _ in range(int(r.integers(8, 16))):
        p.ellipse(r.uniform(0.15, 0.85), r.uniform(0.5, 0.85), r.uniform(0.08, 0.18), r.uniform(0.07, 0.15),
                  pal.green(), angle=r.uniform(0, 180))


def building(p: Pen, r, pal: Palette):
    x0, x1, top = r.uniform(0.05, 0.2), r.uniform(0.8, 0.95), r.uniform(0.03, 0.2)
    wall = pal.any()
    p.rect(x0, top, x1, 0.98, wall)
    rows, cols = int(r.integers(3, 7)), int(r.integers(2, 6))
    glass = pal.glass()
    xs, ys = np.linspace(x0, x1, cols + 1), np.linspace(top + 0.04, 0.8, rows + 1)
    fw, fh = r.uniform(0.4, 0.7), r.uniform(0.4, 0.7)
    for a, b in zip(xs[:-1], xs[1:]):
        for c, d in zip(ys[:-1], ys[1:]):
            cx, cy = (a + b) / 2, (c + d) / 2
            p.rect(cx - (b - a) * fw / 2, cy - (d - c) * fh / 2, cx + (b - a) * fw / 2, cy + (d - c) * fh / 2, glass)
    door = r.uniform(x0 + 0.05, x1 - 0.15)
    p.rect(door, 0.84, door + 0.1, 0.98, pal.dark())
    if r.random() < 0.5:
        p.poly([(x0 - 0.02, top), ((x0 + x1) / 2, top - 0.1), (x1 + 0.02, top)], pal.any())


def fence(p: Pen, r, pal: Palette):
    c, top = pal.any(), r.uniform(0.25, 0.5)
    if r.random() < 0.5:  # pickets
        for x in np.arange(0.04, 0.96, r.uniform(0.06, 0.1)):
            p.poly([(x, 0.92), (x, top + 0.04), (x + 0.02, top), (x + 0.04, top + 0.04), (x + 0.04, 0.92)], c)
        for y in (top + 0.12, 0.8):
            p.rect(0.02, y, 0.98, y + 0.03, c)
    else:  # lattice / wire
        for x in np.arange(0.02, 1.0, 0.12):
            p.line(x, top, x + 0.2, 0.92, 0.012, c)
            p.line(x + 0.2, top, x, 0.92, 0.012, c)
        p.rect(0.02, top - 0.02, 0.98, top + 0.01, c)
        for x in (0.04, 0.5, 0.94):
            p.rect(x - 0.02, top - 0.04, x + 0.02, 0.95, pal.grey())


def brick_wall(p: Pen, r, pal: Palette):
    top = r.uniform(0.2, 0.5)
    mortar, brick = pal.light(), pal.any()
    p.rect(0.03, top, 0.97, 0.95, mortar)
    h = r.uniform(0.05, 0.08)
    w = h * r.uniform(1.8, 2.6)
    for i, y in enumerate(np.arange(top + 0.01, 0.94, h)):
        off = (w / 2) * (i % 2)
        for x in np.arange(0.03 - off, 0.97, w):
            a, b = max(x + 0.005, 0.03), min(x + w - 0.005, 0.97)
            if b > a:
                p.rect(a, y, b, min(y + h - 0.01, 0.95), brick)


# --- objects off the street (ImageNet has many more categories than the street needs) -------

def cup(p: Pen, r, pal: Palette):
    c = pal.any()
    p.ellipse(0.72, 0.55, 0.13, 0.15, c, thickness=0.05)
    p.poly([(0.25, 0.3), (0.7, 0.3), (0.65, 0.85), (0.3, 0.85)], c)
    p.ellipse(0.475, 0.3, 0.225, 0.05, pal.dark())


def bottle(p: Pen, r, pal: Palette):
    c, w = pal.any(), r.uniform(0.14, 0.2)
    p.poly([(0.5 - w, 0.95), (0.5 - w, 0.45), (0.45, 0.25), (0.45, 0.06), (0.55, 0.06), (0.55, 0.25),
            (0.5 + w, 0.45), (0.5 + w, 0.95)], c)
    p.rect(0.5 - w, 0.55, 0.5 + w, 0.75, pal.any())
    p.rect(0.44, 0.04, 0.56, 0.1, pal.any())


def chair(p: Pen, r, pal: Palette):
    c = pal.any()
    p.rect(0.25, 0.05, 0.32, 0.95, c)
    p.rect(0.25, 0.5, 0.75, 0.57, c)
    p.rect(0.68, 0.5, 0.75, 0.95, c)
    p.rect(0.27, 0.1, 0.33, 0.5, pal.any())


def table(p: Pen, r, pal: Palette):
    c, y = pal.any(), r.uniform(0.3, 0.45)
    p.rect(0.05, y, 0.95, y + 0.07, c)
    for x in (0.1, 0.84):
        p.rect(x, y + 0.07, x + 0.06, 0.95, c)


def umbrella(p: Pen, r, pal: Palette):
    c = pal.any()
    a = np.linspace(np.pi, 2 * np.pi, 12)
    p.poly(np.stack([0.5 + 0.45 * np.cos(a), 0.45 + 0.35 * np.sin(a)], 1), c)
    p.line(0.5, 0.45, 0.5, 0.88, 0.025, pal.dark())
    p.ellipse(0.55, 0.88, 0.05, 0.04, pal.dark(), thickness=0.02)


def clock(p: Pen, r, pal: Palette):
    p.circle(0.5, 0.5, 0.42, pal.any())
    p.circle(0.5, 0.5, 0.36, pal.light())
    dark = pal.dark()
    for a in np.arange(12) * np.pi / 6:
        p.line(0.5 + 0.3 * np.cos(a), 0.5 + 0.3 * np.sin(a), 0.5 + 0.34 * np.cos(a), 0.5 + 0.34 * np.sin(a), 0.02, dark)
    for ln, w in ((0.28, 0.02), (0.2, 0.035)):
        a = r.uniform(0, 2 * np.pi)
        p.line(0.5, 0.5, 0.5 + ln * np.cos(a), 0.5 + ln * np.sin(a), w, dark)


def boat(p: Pen, r, pal: Palette):
    p.poly([(0.05, 0.6), (0.95, 0.6), (0.8, 0.8), (0.2, 0.8)], pal.any())
    p.line(0.5, 0.6, 0.5, 0.1, 0.02, pal.brown())
    p.poly([(0.52, 0.12), (0.52, 0.55), (0.85, 0.55)], pal.light())
    p.poly([(0.48, 0.18), (0.48, 0.55), (0.25, 0.55)], pal.any())


def airplane(p: Pen, r, pal: Palette):
    c = pal.any()
    p.ellipse(0.5, 0.5, 0.45, 0.07, c)
    p.poly([(0.45, 0.5), (0.3, 0.15), (0.38, 0.15), (0.6, 0.5), (0.38, 0.85), (0.3, 0.85)], c)
    p.poly([(0.08, 0.5), (0.05, 0.3), (0.12, 0.3), (0.2, 0.5)], c)
    for x in np.arange(0.6, 0.88, 0.05):
        p.circle(x, 0.48, 0.012, pal.glass())


def fish(p: Pen, r, pal: Palette):
    c = pal.any()
    p.ellipse(0.45, 0.5, 0.32, r.uniform(0.14, 0.22), c)
    p.poly([(0.72, 0.5), (0.95, 0.3), (0.95, 0.7)], c)
    p.circle(0.25, 0.46, 0.03, pal.dark())
    p.poly([(0.4, 0.35), (0.55, 0.2), (0.6, 0.35)], pal.any())


def bird(p: Pen, r, pal: Palette):
    c = pal.any()
    p.ellipse(0.5, 0.55, 0.25, 0.15, c)
    p.circle(0.75, 0.38, 0.1, c)
    p.poly([(0.84, 0.36), (0.95, 0.4), (0.84, 0.42)], pal.lamp(0.12))
    p.poly([(0.3, 0.5), (0.05, 0.4), (0.1, 0.6)], c)
    p.poly([(0.4, 0.5), (0.55, 0.2), (0.62, 0.5)], pal.any())
    p.circle(0.77, 0.35, 0.02, pal.dark())
    for x in (0.45, 0.55):
        p.line(x, 0.68, x, 0.9, 0.015, pal.dark())


def flower(p: Pen, r, pal: Palette):
    p.line(0.5, 0.45, 0.5, 0.98, 0.03, pal.green())
    p.ellipse(0.6, 0.75, 0.1, 0.04, pal.green(), angle=-30)
    petal, n = pal.any(), int(r.integers(5, 9))
    for a in np.arange(n) * 2 * np.pi / n:
        p.ellipse(0.5 + 0.16 * np.cos(a), 0.3 + 0.16 * np.sin(a), 0.13, 0.06, petal, angle=np.degrees(a))
    p.circle(0.5, 0.3, 0.08, pal.any())


def mushroom(p: Pen, r, pal: Palette):
    p.rect(0.42, 0.45, 0.58, 0.95, pal.light())
    cap = pal.any()
    a = np.linspace(np.pi, 2 * np.pi, 14)
    p.poly(np.stack([0.5 + 0.42 * np.cos(a), 0.5 + 0.4 * np.sin(a)], 1), cap)
    for _ in range(int(r.integers(0, 6))):
        p.circle(r.uniform(0.25, 0.75), r.uniform(0.25, 0.45), 0.03, pal.light())


def kite(p: Pen, r, pal: Palette):
    p.poly([(0.5, 0.05), (0.78, 0.35), (0.5, 0.7), (0.22, 0.35)], pal.any())
    p.poly([(0.5, 0.05), (0.78, 0.35), (0.5, 0.35)], pal.any())
    p.polyline([(0.5, 0.7), (0.45, 0.8), (0.55, 0.88), (0.48, 0.97)], 0.012, pal.dark())


def hammer(p: Pen, r, pal: Palette):
    p.line(0.3, 0.9, 0.6, 0.25, 0.06, pal.brown())
    p.poly([(0.42, 0.12), (0.82, 0.3), (0.76, 0.42), (0.36, 0.24)], pal.grey())


STREET = {
    "car_side": car_side, "car_rear": car_rear, "truck": truck, "bus": bus, "tram": tram,
    "motorcycle": motorcycle, "bicycle": bicycle, "person": person, "rider": rider, "pole": pole,
    "street_lamp": street_lamp, "traffic_light": traffic_light, "sign_round": sign_round,
    "sign_triangle": sign_triangle, "sign_rect": sign_rect, "sign_octagon": sign_octagon,
    "tree": tree, "conifer": conifer, "palm": palm, "bush": bush, "building": building,
    "fence": fence, "brick_wall": brick_wall,
}
OTHER = {
    "cup": cup, "bottle": bottle, "chair": chair, "table": table, "umbrella": umbrella, "clock": clock,
    "boat": boat, "airplane": airplane, "fish": fish, "bird": bird, "flower": flower,
    "mushroom": mushroom, "kite": kite, "hammer": hammer,
}
