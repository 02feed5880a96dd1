"""The old import path of :mod:`mlip.deploy.export`, kept for users: every public name re-exported."""

from mlip.deploy.export import *  # noqa: F403
from mlip.deploy.export import __all__  # noqa: F401
