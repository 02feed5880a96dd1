"""The old import path of :mod:`mlip.sim.md_torchsim`, kept for users: every public name re-exported."""

from mlip.sim.md_torchsim import *  # noqa: F403
from mlip.sim.md_torchsim import __all__  # noqa: F401
