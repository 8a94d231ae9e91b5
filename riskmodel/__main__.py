"""``python -m riskmodel``: the command line, as the ``riskmodel`` entry point runs it."""

import sys

from .cli import main

if __name__ == "__main__":  # pragma: no cover - run as a module
    sys.exit(main())
