"""Train an mlip potential. ``python train.py`` alone trains a small MACE on a built-in EMT dataset.

See ``python train.py --help`` and mlip/training/cli.py.
"""

import sys

from mlip.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
