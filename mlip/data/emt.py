"""A built-in training set labelled by ASE's EMT calculator (Cu–Au fcc alloy), for the default job and tests.

Structures (all periodic): rattled bulk supercells with random Au substitution, strained cells (±4 % normal and
shear), cells with a vacancy, and (100)/(111) slabs with vacuum. Labels: energy, forces, stress (EMT's).
"""

from __future__ import annotations

import numpy as np
from ase.build import bulk, fcc100, fcc111
from ase.calculators.emt import EMT

from mlip.data.graph import Frame

__all__ = ["generate_emt_dataset"]


def _label(atoms, kind: str) -> Frame:
    atoms.calc = EMT()
    frame = Frame(
        atoms=atoms.copy(),
        energy=float(atoms.get_potential_energy()),
        forces=atoms.get_forces().copy(),
        stress=atoms.get_stress(voigt=False).copy(),
        config_type=kind,
    )
    frame.atoms.calc = None
    return frame


def generate_emt_dataset(n_frames: int = 120, *, seed: int = 0, au_fraction: float = 0.25) -> list[Frame]:
    """``n_frames`` labelled structures (8–32 atoms each), reproducible for a given ``seed``."""
    rng = np.random.default_rng(seed)
    frames: list[Frame] = []
    kinds = ["rattled", "strained", "vacancy", "surface"]
    for i in range(n_frames):
        kind = kinds[i % len(kinds)]
        a = 3.61 * (1 + au_fraction * 0.13) * rng.uniform(0.98, 1.02)
        if kind == "surface":
            builder = fcc100 if rng.random() < 0.5 else fcc111
            atoms = builder("Cu", size=(2, 2, 4), a=a, vacuum=5.0, periodic=True)
        else:
            atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat((2, 2, 2))
        sub = rng.random(len(atoms)) < au_fraction
        atoms.numbers[sub] = 79
        if kind == "strained":
            eps = rng.uniform(-0.04, 0.04, size=(3, 3))
            eps = 0.5 * (eps + eps.T)
            atoms.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
        if kind == "vacancy":
            del atoms[int(rng.integers(len(atoms)))]
        atoms.positions += rng.normal(scale=rng.uniform(0.02, 0.12), size=atoms.positions.shape)
        frames.append(_label(atoms, kind))
    return frames
