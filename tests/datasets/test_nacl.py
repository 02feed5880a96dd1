"""The built-in Tosi–Fumi NaCl data: consistent labels, a sensible crystal, every configuration kind."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from mlip.datasets.nacl import TosiFumiNaCl, generate_nacl_dataset
from mlip.longrange import K_E

MADELUNG_NACL = 1.747564594633182


def _energy(atoms):
    atoms = atoms.copy()
    atoms.calc = TosiFumiNaCl()
    return atoms.get_potential_energy()


def test_crystal_is_bound_near_the_experimental_lattice_constant():
    a_grid = np.linspace(5.4, 5.9, 11)
    energies = [_energy(bulk("NaCl", "rocksalt", a=a, cubic=True)) / 4 for a in a_grid]
    a_min = a_grid[int(np.argmin(energies))]
    assert 5.55 <= a_min <= 5.70  # experiment: 5.64 Å at room temperature
    madelung = -MADELUNG_NACL * K_E / (a_min / 2)
    assert madelung < min(energies) < 0.8 * madelung  # Coulomb dominates, repulsion takes off 10-20 %


def test_forces_and_stress_are_derivatives_of_the_energy():
    atoms = bulk("NaCl", "rocksalt", a=5.6, cubic=True)
    atoms.rattle(0.1, seed=1)
    atoms.calc = TosiFumiNaCl()
    forces, stress = atoms.get_forces(), atoms.get_stress(voigt=False)
    h = 1e-5
    for i, d in [(0, 0), (3, 2), (6, 1)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, d] += h
        minus.positions[i, d] -= h
        fd = -(_energy(plus) - _energy(minus)) / (2 * h)
        assert abs(fd - forces[i, d]) < 1e-6 * np.abs(forces).max()
    for a, b in [(0, 0), (0, 1), (2, 2)]:
        eps = np.zeros((3, 3))
        eps[a, b] = eps[b, a] = h / (2 if a != b else 1)
        fd = []
        for sign in (1, -1):
            strained = atoms.copy()
            strained.set_cell(atoms.cell.array @ (np.eye(3) + sign * eps), scale_atoms=True)
            fd.append(_energy(strained))
        expected = (fd[0] - fd[1]) / (2 * h) / atoms.get_volume()
        assert abs(expected - stress[a, b]) < 1e-6 * np.abs(stress).max() + 1e-9


def test_separated_clusters_attract_as_charges_plus_and_minus_one():
    frames = generate_nacl_dataset(4, seed=3, kinds=("clusters",))
    for f in frames:
        assert f.stress is None
        assert not f.atoms.pbc.any()
        z = f.atoms.numbers
        assert abs((f.charges).sum()) < 1e-12
        assert set(f.charges.tolist()) == {1.0, -1.0}
        assert (z == 11).sum() == 7
        assert (z == 17).sum() == 7
        d = np.linalg.norm(f.atoms.positions[:7, None] - f.atoms.positions[None, 7:], axis=-1)
        assert 7.0 - 1e-6 <= d.min() <= 12.0 + 1e-6
    # pulling the fragments apart changes the energy by the Coulomb energy of the +-1 charges (plus a little
    # dispersion across the 7-12 Å gap)
    f = frames[0]
    shift = f.atoms.positions[7:].mean(0) - f.atoms.positions[:7].mean(0)
    far = Atoms(numbers=f.atoms.numbers, positions=f.atoms.positions.copy())
    far.positions[7:] += 50 * shift / np.linalg.norm(shift)

    def coulomb(positions):
        d = np.linalg.norm(positions[:7, None] - positions[None, 7:], axis=-1)
        return K_E * (np.outer(f.charges[:7], f.charges[7:]) / d).sum()

    expected = coulomb(far.positions) - coulomb(f.atoms.positions)
    assert abs(expected) > 0.3
    assert _energy(far) - f.energy == pytest.approx(expected, rel=0.05)


def test_every_kind_is_generated_and_labelled():
    frames = generate_nacl_dataset(8, seed=0)
    assert [f.config_type for f in frames] == ["crystal", "melt", "slab", "clusters"] * 2
    for f in frames:
        assert np.isfinite(f.energy)
        assert np.isfinite(f.forces).all()
        assert (f.stress is not None) == bool(f.atoms.pbc.all())
    with pytest.raises(ValueError, match="unknown NaCl configuration"):
        generate_nacl_dataset(2, kinds=("gas",))


def test_the_old_import_paths_work_and_mlip_data_stays_below_long_range():
    """Issue 34 (first step): the NaCl generator moved to mlip.datasets; mlip.data.nacl and mlip.data.TosiFumiNaCl
    still work, and importing mlip.data does not import mlip.longrange."""
    import subprocess
    import sys

    import mlip.data
    import mlip.datasets
    from mlip.data.nacl import generate_nacl_dataset as old

    assert old is mlip.datasets.generate_nacl_dataset
    assert mlip.data.TosiFumiNaCl is mlip.datasets.TosiFumiNaCl
    code = "import mlip.data, sys; print([m for m in sys.modules if m.startswith('mlip.longrange')])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
