"""Object placement along the street, and painting each layer's objects far to near."""
from __future__ import annotations

import math

import numpy as np

from udaseg.benchmark.codes import TRAIN
from udaseg.benchmark.context import Scene
from udaseg.benchmark.layout import _free_intervals, _poisson
from udaseg.benchmark.objects import (paint_bus, paint_car, paint_lamp, paint_person, paint_sign, paint_static,
                                      paint_structure, paint_traffic_light, paint_tree, paint_truck, paint_two_wheeler)

# ------------------------------------------------------------------------------------ placement


def _vehicle_positions(sc: Scene, z_min, z_max, density, lengths):
    """Sorted non-overlapping Z positions along one lane."""
    zs = np.sort(sc.rng.uniform(z_min, z_max, _poisson(sc.rng, density * (z_max - z_min) / 100)))
    out, last = [], -1e9
    for z in zs:
        z = max(z, last)
        if z > z_max:
            break
        length = lengths()
        out.append((float(z), length))
        last = z + length + sc.u(1.5, 6)
    return out


def _vehicle_kind(sc: Scene) -> str:
    r, st = sc.p(), sc.style
    for kind, p in (("truck", st.truck_p), ("bus", st.bus_p), ("moto", st.moto_p)):
        if r < p:
            return kind
        r -= p
    return "car"


def place_vehicles(sc: Scene, add) -> None:
    """Moving vehicles in the lanes, parked cars along the parking strips, the odd tram."""
    st = sc.street
    n_lanes = st.n_onc + st.n_fwd
    tram_lane = sc.pick(n_lanes) if sc.p() < sc.style.tram_p else -1
    for i in range(n_lanes):
        xc = st.centre + (i - st.n_onc + 0.5) * st.lane_w
        facing = -1 if i < st.n_onc else 1
        if i == tram_lane:
            z = sc.u(12, 45)
            add(z, paint_bus, dict(xc=xc, z0=z, facing=facing, cls=TRAIN))
            continue
        z_min = 7.0 if abs(xc) < 0.5 else 2.0  # keep the ego lane clear in front of the camera
        for z, _ in _vehicle_positions(sc, z_min, st.z_far * 0.9, sc.style.cars_per_lane, lambda: 5.0):
            kind = _vehicle_kind(sc)
            x = xc + sc.u(-0.3, 0.3)
            if kind == "moto":
                heading = 0.0 if facing > 0 else math.pi
                add(z, paint_two_wheeler, dict(x=x, z=z + 1, heading=heading, motor=True, rider=True))
            elif kind == "car":
                add(z, paint_car, dict(xc=x, z0=z, facing=facing))
            elif kind == "truck":
                add(z, paint_truck, dict(xc=x, z0=z, facing=facing))
            else:
                add(z, paint_bus, dict(xc=x, z0=z, facing=facing))
    for s, width in ((-1, st.park_l), (1, st.park_r)):
        if not width:
            continue
        xc = st.edge(s) - s * 1.15
        z = sc.u(2.0, 8.0)
        while z < st.z_far * 0.85:
            length = sc.u(4.2, 5.0)
            if not st.in_crossing(z, 6) and not st.in_crossing(z + length, 6) and sc.p() < sc.style.parked:
                add(z, paint_car, dict(xc=xc + sc.u(-0.15, 0.15), z0=z, facing=s))  # parked with the traffic
            z += length + sc.u(0.6, 2.5)


def _on_sidewalk(sc: Scene, s, margin=0.3):
    """An X on the paved part of the sidewalk of side s."""
    st = sc.street
    a, b = sorted((st.walk_edge(s), st.prop(s)))
    return sc.u(a + margin, max(b - margin, a + margin))


def _sidewalk_z(sc: Scene, z_min=3.0, z_max=None):
    """A Z on the sidewalks (not across a cross street)."""
    st = sc.street
    z_max = min(st.z_far * 0.85, 90.0) if z_max is None else z_max
    for _ in range(10):
        z = sc.u(z_min, z_max)
        if not st.in_crossing(z, 0.5):
            return z
    return None


def place_people(sc: Scene, add) -> None:
    """Pedestrians on the sidewalks (some in pairs) and on zebra crossings, cyclists and
    motorcyclists on the road, parked bicycles on the sidewalks."""
    st, style = sc.street, sc.style
    length = min(st.z_far, 90.0)
    for s in (-1, 1):
        for _ in range(_poisson(sc.rng, style.persons * length / 100)):
            z = _sidewalk_z(sc)
            if z is None:
                continue
            x = _on_sidewalk(sc, s)
            h = sc.u(1.55, 1.95) if sc.p() > 0.1 else sc.u(1.05, 1.35)
            add(z, paint_person, dict(x=x, z=z, height=h))
            if sc.p() < 0.3:
                friend = dict(x=x + sc.u(0.5, 0.7) * sc.sign(), z=z + sc.u(-0.3, 0.8), height=sc.u(1.5, 1.9))
                add(friend["z"], paint_person, friend)
        for _ in range(_poisson(sc.rng, style.parked_bikes * length / 100)):
            z = _sidewalk_z(sc)
            if z is not None:
                add(z, paint_two_wheeler, dict(x=_on_sidewalk(sc, s, 0.6), z=z, heading=math.pi / 2 + sc.u(-0.5, 0.5),
                                               motor=sc.p() > style.bike_p, rider=False))
    for zz in st.zebras:  # people on the zebra
        for _ in range(_poisson(sc.rng, 2.0 if style.camera_like else 0.7)):
            z = sc.u(zz - 3.4, zz - 0.2)
            add(z, paint_person, dict(x=sc.u(st.xl + 0.5, st.xr - 0.5), z=z, height=sc.u(1.55, 1.95)))
    for _ in range(_poisson(sc.rng, style.riders)):
        motor = sc.p() > style.bike_p
        z = sc.u(5, 50)
        if st.crossings and sc.p() < 0.3:  # crossing the junction
            a, b = st.crossings[0]
            z = sc.u(a + 1, b - 1)
            add(z, paint_two_wheeler, dict(x=sc.u(st.xl, st.xr), z=z, heading=sc.sign() * math.pi / 2 + sc.u(-0.2, 0.2),
                                           motor=motor, rider=True))
            continue
        s = sc.sign() if st.n_onc else 1
        x = st.edge(s) - s * ((st.park_r if s > 0 else st.park_l) + 0.8)
        add(z, paint_two_wheeler, dict(x=x, z=z, heading=(0.0 if s > 0 else math.pi) + sc.u(-0.15, 0.15),
                                       motor=motor, rider=True))


def place_street_furniture(sc: Scene, add) -> None:
    """Lamps, signs, traffic lights at junctions, kerbside trees and bins."""
    st, style = sc.street, sc.style
    for s in (-1, 1):
        edge = st.edge(s)
        spacing = 100.0 / style.lamps
        z = sc.u(0, spacing)
        while z < st.z_far * 0.9:
            if not st.in_crossing(z, 1):
                add(z, paint_lamp, dict(x=edge + s * 0.45, z=z, s=s))
            z += spacing * sc.u(0.8, 1.2)
        for _ in range(_poisson(sc.rng, style.signs * st.z_far / 100)):
            z = _sidewalk_z(sc, 2.0, st.z_far * 0.8)
            if z is not None:
                add(z, paint_sign, dict(x=edge + s * sc.u(0.3, 0.7), z=z))
        spacing = 100.0 / style.trees
        z = sc.u(0, spacing)
        while z < st.z_far * 0.9:
            if not st.in_crossing(z, 2) and sc.p() < 0.8:
                x = edge + s * (st.verge[s > 0] / 2 if st.verge[s > 0] else sc.u(0.9, 1.3))
                add(z, paint_tree, dict(x=x, z=z, palm=sc.p() < style.palm_p))
            z += spacing * sc.u(0.6, 1.6)
        for _ in range(_poisson(sc.rng, style.statics * 0.9)):
            z = _sidewalk_z(sc)
            if z is not None:
                add(z, paint_static, dict(x=_on_sidewalk(sc, s, 0.5), z=z))
        for zz in st.zebras[len(st.crossings):]:  # pedestrian lights at a mid-block zebra
            if sc.p() < 0.8:
                add(zz - 4.2, paint_traffic_light, dict(x=edge + s * 0.5, z=zz - 4.2, s=s, overhead=False))
        for a, b in st.crossings:  # traffic lights on the junction's corners
            if sc.p() < 0.85:
                overhead = s > 0 and sc.p() < 0.5
                add(a - 1.0, paint_traffic_light, dict(x=edge + s * 0.5, z=a - 1.0, s=s, overhead=overhead))
            if sc.p() < 0.6:
                add(b + 1.0, paint_traffic_light, dict(x=edge + s * 0.5, z=b + 1.0, s=s, overhead=False))


def place_yard_trees(sc: Scene, add) -> None:
    """Trees in front yards (a layer of their own: always behind the property-line structures)."""
    st = sc.street
    for s in (-1, 1):
        yard = st.yard[s > 0]
        if yard <= 2.5:
            continue
        for _ in range(_poisson(sc.rng, sc.style.trees * (1.0 if st.suburb else 0.4) * st.z_far / 100)):
            z = _sidewalk_z(sc, 4.0, st.z_far * 0.9)
            if z is not None:
                add(z, paint_tree, dict(x=st.prop(s) + s * sc.u(1.5, yard - 0.5), z=z))


_STRUCTURES = ("none", "hedge", "wall", "fence")
_STRUCTURE_HEIGHT = {"hedge": (0.8, 1.6), "wall": (0.5, 2.0), "fence": (1.0, 2.0)}
_STRUCTURE_COLOUR = {"hedge": "leaf", "wall": "wall", "fence": "fence"}


def place_frontage(sc: Scene, add) -> None:
    """Hedges, walls and fences in runs along the property lines (or across building gaps when
    there is no yard), cut into 4 m pieces for the painter's order."""
    st = sc.street
    probs = np.cumsum(sc.style.structures) / sum(sc.style.structures)
    for s in (-1, 1):
        if st.yard[s > 0] > 0:
            x = st.prop(s)
            corners = [(a - max(st.sw), b + max(st.sw)) for a, b in st.crossings]
            runs = _free_intervals(sc.cam.near, st.z_far * 0.95, corners)
        else:
            x = st.facade(s)
            blocks = st.blocks[s > 0]
            runs = [(a[1], b[0]) for a, b in zip(blocks, blocks[1:]) if b[0] - a[1] > 1]
        for a, b in runs:
            z = a
            while z < b:
                run_end = min(b, z + sc.u(8, 30))
                kind = _STRUCTURES[int(np.searchsorted(probs, sc.p()))]
                if kind != "none":
                    height, rgb = sc.u(*_STRUCTURE_HEIGHT[kind]), sc.colour(_STRUCTURE_COLOUR[kind])
                    for i, p0 in enumerate(np.arange(z, run_end, 4.0)):
                        add(p0, paint_structure, dict(kind=kind, x=x, z0=p0, z1=min(p0 + 4.0, run_end), s=s,
                                                      height=height, rgb=rgb, first=i == 0))
                z = run_end


def place_street(sc: Scene, add) -> None:
    """Everything between the property lines: vehicles, people, street furniture."""
    place_vehicles(sc, add)
    place_people(sc, add)
    place_street_furniture(sc, add)


def paint_far_to_near(sc: Scene, place) -> None:
    """Collect one layer's objects with ``place(sc, add)``, then paint them far to near."""
    objects: list = []
    place(sc, lambda depth, fn, kw: objects.append((depth, len(objects), fn, kw)))
    for _, _, fn, kw in sorted(objects, key=lambda o: (-o[0], o[1])):
        fn(sc, **kw)
