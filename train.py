"""Train an mlip potential. ``python train.py`` alone trains a small MACE on a built-in EMT dataset.

See ``python train.py --help`` and mlip/cli/train.py.
"""

import sys

from mlip.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
