"""The old import path of :mod:`mlip.deploy.lammps_mliap`, kept for users: every public name re-exported.


ML-IAP files written before the move pickle the class under this path
(``mlip.calculators.lammps_mliap.MLIPMLIAPUnified``); it stays importable here for good, so that they load.
"""

from mlip.deploy.lammps_mliap import *  # noqa: F403
from mlip.deploy.lammps_mliap import __all__  # noqa: F401
