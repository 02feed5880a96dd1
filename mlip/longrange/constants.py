"""Physical constants of the long-range terms, in mlip's units (Å, eV, e)."""

from __future__ import annotations

from typing import Final

__all__ = ["K_E"]


K_E: Final[float] = 14.399645478425668
"""Coulomb constant ``e² / (4π ε₀)`` in eV·Å/e² (CODATA 2018: e = 1.602176634e-19 C, ε₀ = 8.8541878128e-12 F/m;
the same value as pymatgen's ``EwaldSummation.CONV_FACT``)."""
