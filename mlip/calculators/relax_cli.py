"""The old import path of :mod:`mlip.cli.relax`, kept for users: every public name re-exported."""

from mlip.cli.relax import *  # noqa: F403
from mlip.cli.relax import __all__  # noqa: F401

if __name__ == "__main__":
    raise SystemExit(main())  # noqa: F405
