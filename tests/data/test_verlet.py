"""The Verlet-skin neighbour list gives exactly the fresh list's edges while it reuses its candidates."""

import numpy as np
import pytest
from ase.build import bulk, fcc111, molecule

from mlip.data import VerletNeighborList, neighbor_list

R_MAX = 3.0


def edge_set(edge_index, shifts):
    return set(zip(edge_index[0].tolist(), edge_index[1].tolist(), *shifts.T.astype(int).tolist()))


def check_same(nl, atoms):
    args = (atoms.positions, atoms.cell.array, atoms.pbc)
    got = nl(*args, R_MAX)
    want = neighbor_list(*args, R_MAX)
    assert edge_set(*got) == edge_set(*want)
    vectors = atoms.positions[got[0][0]] - atoms.positions[got[0][1]] + got[1] @ atoms.cell.array
    assert (np.linalg.norm(vectors, axis=1) < R_MAX).all()


def test_bulk_moves_wraps_and_strain():
    rng = np.random.default_rng(0)
    atoms = bulk("Cu", "fcc", a=3.6) * (3, 3, 3)
    atoms.rattle(0.05, seed=1)
    nl = VerletNeighborList(skin=0.6)
    check_same(nl, atoms)
    for step in range(40):
        atoms.positions += rng.normal(scale=0.03, size=atoms.positions.shape)
        if step % 5 == 0:
            atoms.wrap()  # atoms cross the faces of the cell
        if step % 7 == 0:  # NPT-like: the cell deforms with the atoms, a little shear included
            strain = np.eye(3) + rng.normal(scale=0.002, size=(3, 3))
            atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
        check_same(nl, atoms)
    assert nl.calls == 41
    assert 1 < nl.builds < 20, nl.builds  # reused most of the time, rebuilt when it had to be


def test_wrapping_alone_does_not_rebuild():
    atoms = bulk("Cu", "fcc", a=3.6) * (2, 2, 2)
    atoms.positions += 0.3  # some atoms now lie outside the cell
    nl = VerletNeighborList(skin=0.5)
    check_same(nl, atoms)
    atoms.wrap()
    check_same(nl, atoms)
    assert nl.builds == 1


def test_large_move_and_large_strain_rebuild():
    atoms = bulk("Cu", "fcc", a=3.6) * (2, 2, 2)
    nl = VerletNeighborList(skin=0.4)
    check_same(nl, atoms)
    atoms.positions[3] += [0.25, 0.0, 0.0]  # more than skin / 2
    check_same(nl, atoms)
    assert nl.builds == 2
    atoms.set_cell(atoms.cell.array * 0.85, scale_atoms=True)  # 15 % compression: pairs come in from outside
    check_same(nl, atoms)
    assert nl.builds == 3


def test_slab_and_molecule():
    slab = fcc111("Cu", size=(3, 3, 3), vacuum=5.0)
    mol = molecule("C6H6")
    for atoms in (slab, mol):
        nl = VerletNeighborList(skin=0.5)
        rng = np.random.default_rng(2)
        for _ in range(10):
            atoms.positions += rng.normal(scale=0.02, size=atoms.positions.shape)
            check_same(nl, atoms)
        assert nl.builds < 10
    slab.set_cell(slab.cell.array * [1.01, 1.0, 1.0], scale_atoms=True)  # periodic vectors changed: rebuild
    before = nl.builds
    nl = VerletNeighborList(skin=0.5)
    check_same(nl, slab)
    slab.set_cell(slab.cell.array * 1.001, scale_atoms=True)
    check_same(nl, slab)
    assert nl.builds == 2
    assert before >= 1


def test_changed_atom_count_rebuilds_and_bad_skin():
    nl = VerletNeighborList(skin=0.5)
    check_same(nl, bulk("Cu", "fcc", a=3.6) * (2, 2, 2))
    check_same(nl, bulk("Cu", "fcc", a=3.6) * (2, 2, 1))
    assert nl.builds == 2
    with pytest.raises(ValueError, match="skin"):
        VerletNeighborList(skin=-1.0)
