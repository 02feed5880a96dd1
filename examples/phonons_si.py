"""Phonons of diamond Si from an mlip model: phonopy's finite displacements against the autograd Hessian.

Usage::

    pip install 'mlip[phonons]'
    python examples/phonons_si.py MODEL.pt [--supercell 2] [--a 5.43] [--dtype float64]

The primitive diamond cell (lattice constant ``--a`` Å) is repeated ``--supercell`` times along each primitive
vector. Force constants come two ways: (1) phonopy's finite displacements (``--distance``, plus and minus, forces
from :class:`mlip.MLIPCalculator`, phonopy's symmetrisation); (2) the supercell's Hessian by autograd
(:func:`mlip.hessian`), ``H.reshape(N, 3, N, 3).transpose(0, 2, 1, 3)``, phonopy's layout. Prints the six branch
frequencies (THz) at Γ, X, L and W for both and the largest difference. With a trained model, relax the lattice
constant first (``mlip-relax``) so that the supercell has no residual forces. The two differ by the finite
differences' truncation error, ``O(distance²)`` times the anharmonicity: about 4e-4 of a frequency at phonopy's
0.01 Å, hence the default 0.003 Å here.
"""

from __future__ import annotations

import argparse

import numpy as np

QPOINTS = {"Γ": (0.0, 0.0, 0.0), "X": (0.5, 0.0, 0.5), "L": (0.5, 0.5, 0.5), "W": (0.5, 0.25, 0.75)}
"""Reduced coordinates in the reciprocal basis of the fcc primitive cell."""


def phonons(
    model, *, supercell: int = 2, a: float = 5.43, distance: float = 0.003, dtype: str = "float64"
) -> dict[str, dict]:
    """``{"finite differences": {q: freqs}, "autograd": {q: freqs}}``, THz, six branches per q-point."""
    from ase import Atoms
    from ase.build import bulk
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    import mlip
    from mlip.calculators import MLIPCalculator

    prim = bulk("Si", "diamond", a=a)
    unit = PhonopyAtoms(symbols=prim.get_chemical_symbols(), cell=prim.cell.array, positions=prim.positions)
    phonon = Phonopy(unit, supercell_matrix=np.eye(3, dtype=int) * supercell)
    calc = MLIPCalculator(model, dtype=dtype, skin=0.0)

    def as_atoms(cell) -> Atoms:
        return Atoms(cell.symbols, positions=cell.positions, cell=cell.cell, pbc=True)

    phonon.generate_displacements(distance=distance, is_plusminus=True)
    forces = []
    for displaced in phonon.supercells_with_displacements:
        atoms = as_atoms(displaced)
        atoms.calc = calc
        forces.append(atoms.get_forces())
    phonon.forces = np.array(forces)
    phonon.produce_force_constants()
    result = {"finite differences": _frequencies(phonon)}
    sc = as_atoms(phonon.supercell)
    n = len(sc)
    h = mlip.hessian(sc, calc.model)
    phonon.force_constants = h.reshape(n, 3, n, 3).transpose(0, 2, 1, 3)
    result["autograd"] = _frequencies(phonon)
    return result


def _frequencies(phonon) -> dict[str, np.ndarray]:
    return {q: np.asarray(phonon.run_qpoints([k]).frequencies[0]) for q, k in QPOINTS.items()}


def main(argv: list[str] | None = None) -> float:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--supercell", type=int, default=2)
    p.add_argument("--a", type=float, default=5.43)
    p.add_argument("--distance", type=float, default=0.003, help="finite displacement, Å (phonopy: 0.01)")
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    args = p.parse_args(argv)
    result = phonons(args.model, supercell=args.supercell, a=args.a, distance=args.distance, dtype=args.dtype)
    fd, ag = result["finite differences"], result["autograd"]
    worst = 0.0
    print(f"{'q':2s} {'finite differences (THz)':>54s} | autograd Hessian (THz)")
    for q in QPOINTS:
        worst = max(worst, float(np.abs(fd[q] - ag[q]).max()))
        print(f"{q:2s} {' '.join(f'{f:8.4f}' for f in fd[q])} | {' '.join(f'{f:8.4f}' for f in ag[q])}")
    print(f"largest difference: {worst:.2e} THz")
    return worst


if __name__ == "__main__":
    main()
