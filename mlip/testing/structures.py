"""Tiny structures with known symmetry for the physics checks (deterministic)."""

from __future__ import annotations

import ase
import numpy as np
from ase.build import bulk, fcc111, molecule

__all__ = ["methanol_like", "cu_au_bulk", "cu_small_cell", "cu_slab"]


def methanol_like(seed: int = 0) -> ase.Atoms:
    """A rattled CH3OH molecule, no cell (free boundary conditions)."""
    atoms = molecule("CH3OH")
    atoms.rattle(0.05, seed=seed)
    return atoms


def cu_au_bulk(seed: int = 0, repeat: int = 1) -> ase.Atoms:
    """A rattled, slightly sheared fcc Cu–Au cubic cell (``4 * repeat**3`` atoms), fully periodic."""
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat(repeat)
    atoms.numbers[::3] = 79
    cell = atoms.cell.array @ np.array([[1.0, 0.02, 0.0], [0.0, 1.01, 0.03], [0.0, 0.0, 0.99]])
    atoms.set_cell(cell, scale_atoms=True)
    atoms.rattle(0.08, seed=seed)
    return atoms


def cu_small_cell(seed: int = 0) -> ase.Atoms:
    """A one-atom primitive fcc cell: much smaller than any cutoff, so many periodic images."""
    atoms = bulk("Cu", "fcc", a=3.6)
    atoms.rattle(0.0, seed=seed)
    return atoms


def cu_slab(seed: int = 0) -> ase.Atoms:
    """A rattled Cu(111) slab with Au adatom site, periodic in x and y only (mixed pbc)."""
    atoms = fcc111("Cu", size=(2, 2, 3), vacuum=6.0)
    atoms.numbers[-1] = 79
    atoms.pbc = (True, True, False)
    atoms.rattle(0.05, seed=seed)
    return atoms
