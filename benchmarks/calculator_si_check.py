"""Acceptance check of the ASE calculator on silicon.

Usage (after training a model on ../shared/data/zuo2020_elemental/Si_training.extxyz)::

    python benchmarks/calculator_si_check.py --model runs/si/model.pt

1. Relaxes a rattled (0.05 Å), 3 %-strained 64-atom diamond Si cell with cell relaxation (FIRE on ASE's
   FrechetCellFilter) and reports the final max force (target: < 0.01 eV/Å).
2. In float64, compares the calculator's forces and stress with central finite differences of its energy
   (ASE's ``calculate_numerical_forces`` / ``calculate_numerical_stress``) and prints the relative errors
   (target: < 1e-6).
"""

from __future__ import annotations

import argparse

import numpy as np
from ase.build import bulk
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

from mlip.calculators import MLIPCalculator, relax


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--fmax", type=float, default=0.01)
    p.add_argument("--steps", type=int, default=3000)
    args = p.parse_args()

    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    atoms.set_cell(atoms.cell.array * 1.03, scale_atoms=True)
    atoms.rattle(0.05, seed=0)
    relaxed, converged = relax(
        atoms, MLIPCalculator(args.model), fmax=args.fmax, steps=args.steps, relax_cell=True
    )
    fmax = np.abs(relaxed.get_forces()).max()
    print(
        f"relaxation: converged={converged}, max |F| = {fmax:.2e} eV/Å, a = {relaxed.cell.lengths()[0] / 2:.4f} Å"
    )

    probe = atoms.copy()
    probe.calc = MLIPCalculator(args.model, dtype="float64")
    forces, stress = probe.get_forces(), probe.get_stress()
    fd_f = calculate_numerical_forces(probe, eps=1e-4)
    fd_s = calculate_numerical_stress(probe, eps=1e-5)
    print(
        f"float64 forces vs central differences: rel. error {np.abs(forces - fd_f).max() / np.abs(forces).max():.2e}"
    )
    print(
        f"float64 stress vs central differences: rel. error {np.abs(stress - fd_s).max() / np.abs(stress).max():.2e}"
    )


if __name__ == "__main__":
    main()
