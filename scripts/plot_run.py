#!/usr/bin/env python
"""Plot a training run's learning curve: now ``speech plot`` (this script only forwards to it).

  python scripts/plot_run.py runs/cpu-small/version_0 --out curve.png [--label NAME] [more runs ...]
"""

from __future__ import annotations

import sys

from speech.cli import main

if __name__ == "__main__":
    sys.exit(main(["plot", *sys.argv[1:]]))
