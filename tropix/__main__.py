"""``python -m tropix`` and the ``tropix`` console script (see :mod:`tropix.cli`)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
