"""Moved to :mod:`udaseg.reporting.viz`; this re-export goes in the next release."""
from udaseg.reporting.viz import *  # noqa: F401,F403

# explicitly, private helpers included: every name this module defined before the move
from udaseg.reporting.viz import (  # noqa: F401
    colormap_lut, scalar_rgb, entropy_rgb, normalized_entropy, overlay, resize_nearest, resize_smooth, _resize,
    png_bytes,
)
from udaseg.reporting.viz import colorize  # noqa: F401  (re-exported there from udaseg.data.labels)
