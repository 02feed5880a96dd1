"""The old import path of :mod:`mlip.deploy.exported`, kept for users: every public name re-exported."""

from mlip.deploy.exported import *  # noqa: F403
from mlip.deploy.exported import __all__  # noqa: F401
