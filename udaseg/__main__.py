"""``python -m udaseg``: the ``udaseg`` command (the console script's entry point,
:func:`udaseg.apps.cli.main`), also for ``torchrun -m udaseg train ...``."""
import sys

from udaseg.apps.cli import main

if __name__ == "__main__":
    sys.exit(main())
