"""The old import path of :mod:`mlip.deploy.lammps`, kept for users: every public name re-exported."""

from mlip.deploy.lammps import *  # noqa: F403
from mlip.deploy.lammps import __all__  # noqa: F401
