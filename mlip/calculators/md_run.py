"""The old import path of :mod:`mlip.sim.md_run`, kept for users: every public name re-exported."""

from mlip.sim.md_run import *  # noqa: F403
from mlip.sim.md_run import __all__  # noqa: F401
