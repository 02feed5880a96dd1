"""The old import path of :mod:`mlip.sim.batch_relax`, kept for users: every public name re-exported."""

from mlip.sim.batch_relax import *  # noqa: F403
from mlip.sim.batch_relax import __all__  # noqa: F401
