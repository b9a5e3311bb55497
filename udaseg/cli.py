"""Moved to :mod:`udaseg.apps.cli`; this re-export goes in the next release."""
import sys

from udaseg.apps.cli import *  # noqa: F401,F403

# explicitly, private helpers included: every name this module defined before the move
from udaseg.apps.cli import (  # noqa: F401
    _cmd_data_demo, _cmd_data_summary, _cmd_data_check, _cmd_demo, _cmd_pretrain, _cmd_train, build_parser, main,
    error_message,
    _VersionAction, resume_command, version_line,
)

if __name__ == "__main__":  # python -m udaseg.cli, torchrun -m udaseg.cli
    sys.exit(main())
