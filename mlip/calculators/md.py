"""The old import path of :mod:`mlip.sim.md`, kept for users: every public name re-exported."""

from mlip.sim.md import *  # noqa: F403
from mlip.sim.md import __all__  # noqa: F401
