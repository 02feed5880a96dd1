"""The old import path of :mod:`mlip.sim.torchsim`, kept for users: every public name re-exported."""

from mlip.sim.torchsim import *  # noqa: F403
from mlip.sim.torchsim import __all__  # noqa: F401
