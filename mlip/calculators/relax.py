"""The old import path of :mod:`mlip.sim.relax`, kept for users: every public name re-exported."""

from mlip.sim.relax import *  # noqa: F403
from mlip.sim.relax import __all__  # noqa: F401
