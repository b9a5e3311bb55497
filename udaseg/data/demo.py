"""Moved to :mod:`udaseg.benchmark.writer`; this re-export goes in the next release."""
from udaseg.benchmark import scene  # noqa: F401  (``demo.scene``, as before)
from udaseg.benchmark.writer import *  # noqa: F401,F403

# explicitly, private helpers included: every name this module defined before the move
from udaseg.benchmark.writer import (  # noqa: F401
    DEMO_VERSION, DOMAINS, CITYSCAPES_SPLITS, CITIES, CITYSCAPES_FRAME, _MARKER, _DATASET_DIRS, _PNG, _code_luts, TO_LABELID, TO_SYNTHIA,
    _labelid_palette, LABELID_PALETTE, _write_rgb, _write_gta5_label, _write_synthia_label, _write_cityscapes_labels,
    _gta5_name, _synthia_name, _cityscapes_stem, _render_one, count_objects, _init_worker, _prepare, _make_dirs, _run, _frequencies,
    write_demo, _manifest, _DOMAIN_TEXT, _data_md, demo_is_complete,
)
