"""``python -m madang``: the ``madang`` command without the console script."""

from __future__ import annotations

import sys

from madang.cli import main

if __name__ == "__main__":
    sys.exit(main())
