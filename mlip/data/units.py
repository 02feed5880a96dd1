"""Plausibility of label magnitudes: labels in the wrong unit are refused when they are read, not trained on.

mlip's units are ASE's: eV, eV/Å, eV/Å³ (:mod:`mlip.keys`). A dataset in another unit trains without complaint and
gives a useless model (stress in kBar read as eV/Å³ is 1602 times too large). The bounds below are far outside
what any DFT calculation in the right unit gives, and inside what the common wrong units give:

* **stress**: ``|σ_αβ| <= 1 eV/Å³`` (160 GPa). The largest stress in the shared DFT sets is 0.39 eV/Å³ (strained
  Mo cells, 62 GPa). In kBar (1 eV/Å³ = 1602.18 kBar) or GPa (160.22 GPa) the same cells read 620 or 62.
* **forces**: ``|F_iα| <= 500 eV/Å``. The largest force in the shared sets is 26 eV/Å (OC20); forces in meV/Å
  exceed the bound for any frame with a force above 0.5 eV/Å.
* **energies**: ``|E| <= 1.5 Σ_i E_TF(Z_i)`` with ``E_TF(Z) = 0.7687 Z^{7/3}`` Hartree, the Thomas–Fermi
  estimate of a neutral atom's total electronic energy, which exceeds every atom's all-electron energy in
  magnitude (Au: 20,700 Ha against 19,000). No electronic-structure code's total energy per atom comes near it
  in eV (the all-electron molecular sets reach 0.51 of the bound), while kcal/mol (23.06 per eV), kJ/mol (96.49)
  or meV exceed it for all-electron data. Hartree energies (smaller) cannot be told from eV this way.

``check_units: false`` (``data.check_units`` in a training config, ``--no-unit-check`` on the command lines) turns
the checks off for data that really lie outside the bounds (e.g. compressions beyond 160 GPa).
"""

from __future__ import annotations

import numpy as np

from mlip.errors import MLIPInputError

__all__ = [
    "MAX_FORCE",
    "MAX_STRESS",
    "bound_per_atom",
    "check_energy",
    "check_forces",
    "check_stress",
    "energy_bound",
    "largest",
]

MAX_STRESS = 1.0
"""eV/Å³ (160.2 GPa): the largest stress component accepted."""
MAX_FORCE = 500.0
"""eV/Å: the largest force component accepted."""
_HARTREE_EV = 27.211386
_TF = 0.7687  # Hartree; E_TF(Z) = 0.7687 Z^(7/3)
_KBAR_PER_EV_A3 = 1602.1766
_GPA_PER_EV_A3 = 160.21766

_OFF = "set data.check_units: false (or --no-unit-check) if the values are right"


_BOUND_PER_Z = 1.5 * _HARTREE_EV * _TF * np.arange(119, dtype=np.float64) ** (7.0 / 3.0)  # eV, Z = 0..118


def bound_per_atom(numbers: np.ndarray) -> np.ndarray:
    """``1.5 E_TF(Z_i)`` in eV for each of ``numbers [N]`` (atomic numbers in 0..118): ``[N]`` float64."""
    return _BOUND_PER_Z[numbers]


def energy_bound(numbers: np.ndarray) -> float:
    """``1.5 Σ_i E_TF(Z_i)`` in eV: the largest total energy magnitude accepted for atoms ``numbers [N]``
    (atomic numbers in 0..118)."""
    return float(_BOUND_PER_Z[numbers].sum())


def largest(a: np.ndarray) -> float:
    """``max |a|`` with two reductions and no temporary array (0 for an empty array); NaN if ``a`` holds a NaN,
    inf if it holds an infinity (so one call serves both the finiteness and the magnitude checks)."""
    return max(float(a.max()), -float(a.min())) if a.size else 0.0


def check_stress(largest_component: float, *, where: str) -> None:
    """Refuse a stress whose largest ``|σ_αβ|`` (eV/Å³) exceeds :data:`MAX_STRESS`, naming the likely unit."""
    s = largest_component
    if s > MAX_STRESS:
        raise MLIPInputError(
            f"{where}: a stress component is {s:.4g}, implausible in eV/Å³ ({s * _GPA_PER_EV_A3:.4g} GPa); "
            f"stress must be eV/Å³ with ASE's sign: if these are kBar divide by {_KBAR_PER_EV_A3:.2f}, if GPa "
            f"by {_GPA_PER_EV_A3:.3f}; {_OFF}"
        )


def check_forces(largest_component: float, *, where: str) -> None:
    """Refuse forces whose largest ``|F_iα|`` (eV/Å) exceeds :data:`MAX_FORCE`, naming the likely unit."""
    f = largest_component
    if f > MAX_FORCE:
        raise MLIPInputError(
            f"{where}: a force component is {f:.4g}, implausible in eV/Å (bound {MAX_FORCE:g}); forces must be "
            f"eV/Å: if these are meV/Å divide by 1000, if kcal/mol/Å by 23.06; {_OFF}"
        )


def check_energy(energy: float, numbers: np.ndarray, *, where: str) -> None:
    """Refuse a total energy (eV) larger in magnitude than :func:`energy_bound` of its atoms."""
    bound = energy_bound(numbers)
    if abs(energy) > bound:
        n = max(len(numbers), 1)
        raise MLIPInputError(
            f"{where}: the energy {energy:.6g} ({energy / n:.4g} per atom) exceeds in magnitude the total "
            f"electronic energy its atoms can have in eV ({bound:.4g}); energies must be eV: if these are "
            f"kcal/mol divide by 23.06, if kJ/mol by 96.49, if meV by 1000; {_OFF}"
        )
