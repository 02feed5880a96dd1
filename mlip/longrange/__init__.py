"""Long-range electrostatics: Coulomb energies and potentials (direct, Ewald, Chebyshev–Tucker) and charge heads.

Units: positions Å, charges e, energies eV, potentials V (eV/e); ``k_e`` = :data:`~mlip.longrange.constants.K_E` eV·Å/e².
"""

from mlip.longrange.api import Method, coulomb_energy, electrostatic_potential
from mlip.longrange.constants import K_E

__all__ = ["K_E", "Method", "coulomb_energy", "electrostatic_potential"]
