"""ASE calculator and relaxation."""

from mlip.calculators.ase_calculator import MLIPCalculator
from mlip.sim.relax import relax

__all__ = ["MLIPCalculator", "relax"]
