"""``python -m udaseg``: the ``udaseg`` command (the console script's entry point,
:func:`udaseg.cli.main`), also for ``torchrun -m udaseg train ...``."""
import sys

from udaseg.cli import main

if __name__ == "__main__":
    sys.exit(main())
