"""Moved to :mod:`udaseg.apps.cli_eval`; this re-export goes in the next release."""
from udaseg.apps.cli_eval import *  # noqa: F401,F403

# explicitly, private helpers included: every name this module defined before the move
from udaseg.apps.cli_eval import (  # noqa: F401
    IntermixedParser, override_arg, _split_targets, _progress, _cmd_evaluate, _input_size, _cmd_predict, _cmd_report,
    add_commands, build_parser,
)
