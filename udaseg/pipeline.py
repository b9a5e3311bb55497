"""Moved to :mod:`udaseg.apps.pipeline`; this re-export goes in the next release."""
from udaseg.apps.pipeline import *  # noqa: F401,F403

# explicitly, private helpers included: every name this module defined before the move
from udaseg.apps.pipeline import (  # noqa: F401
    CONFIG_DIR, demo_config, run_demo, _control_means, _evaluate_checkpoint, _write_report,
)
