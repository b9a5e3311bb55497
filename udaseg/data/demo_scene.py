"""Moved to :mod:`udaseg.benchmark.scene` (split into the modules of :mod:`udaseg.benchmark`);
this re-export goes in the next release."""
from udaseg.benchmark.codes import *  # noqa: F401,F403
from udaseg.benchmark.styles import *  # noqa: F401,F403
from udaseg.benchmark.camera import *  # noqa: F401,F403
from udaseg.benchmark.layout import *  # noqa: F401,F403
from udaseg.benchmark.context import *  # noqa: F401,F403
from udaseg.benchmark.background import *  # noqa: F401,F403
from udaseg.benchmark.objects import *  # noqa: F401,F403
from udaseg.benchmark.placement import *  # noqa: F401,F403
from udaseg.benchmark.shading import *  # noqa: F401,F403
from udaseg.benchmark.sensor import *  # noqa: F401,F403
from udaseg.benchmark.scene import *  # noqa: F401,F403

# explicitly, private helpers included: every name this module defined before the move
from udaseg.benchmark.codes import (  # noqa: F401
    ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEGETATION, TERRAIN, SKY, PERSON, RIDER, CAR, TRUCK,
    BUS, TRAIN, MOTORCYCLE, BICYCLE, STATIC, EGO, VOID, THINGS, FLAT, SKYGRAD, GROUND, FACADE, LEAF, GLASS, EMIT,
    GRASS, ASPHALT, PAVING, KERB_H,
)
from udaseg.benchmark.styles import (  # noqa: F401
    Box, Style, _SOURCE_COLOURS, _TARGET_COLOURS, SOURCE, TARGET, STYLES, _hsv, Look, sample_look,
)
from udaseg.benchmark.camera import (  # noqa: F401
    Camera, _clip_near, Canvas, vquad_x, vquad_z, hquad, _UNIT_CIRCLES, ellipse2d, segment_quad,
)
from udaseg.benchmark.layout import (  # noqa: F401
    Street, sample_camera, _poisson, sample_street, _sample_blocks, _lane_lines, _free_intervals,
)
from udaseg.benchmark.context import Scene  # noqa: F401
from udaseg.benchmark.background import (  # noqa: F401
    paint_sky, _facade_mat, paint_backdrop, paint_ground, paint_back_rows, paint_buildings,
)
from udaseg.benchmark.objects import (  # noqa: F401
    paint_box, _CIRCLE, _wheels_on_side, _visible_side, paint_car, paint_truck, paint_bus, _limb, _head, paint_person,
    paint_two_wheeler, _bar, paint_lamp, _light_housing, paint_traffic_light, paint_sign, paint_tree, paint_static,
    paint_structure, paint_hood,
)
from udaseg.benchmark.placement import (  # noqa: F401
    _vehicle_positions, _vehicle_kind, place_vehicles, _on_sidewalk, _sidewalk_z, place_people,
    place_street_furniture, place_yard_trees, _STRUCTURES, _STRUCTURE_HEIGHT, _STRUCTURE_COLOUR, place_frontage,
    place_street, paint_far_to_near,
)
from udaseg.benchmark.shading import (  # noqa: F401
    _Pixels, _noise_fields, _world_noise, _frac, _coverage, _rgb, _shade_sky, _lane_marks, _shade_ground,
    _shade_facade, _shade_leaf, _shade_glass, _SHADERS, shade,
)
from udaseg.benchmark.sensor import camera_post  # noqa: F401
from udaseg.benchmark.scene import (  # noqa: F401
    RenderedScene, render_scene,
)
