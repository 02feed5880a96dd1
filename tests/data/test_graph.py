"""Graphs, neighbour lists, batching and bad-input errors."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list as ase_neighbor_list

from mlip import keys as K
from mlip.data import Frame, atoms_to_graph, collate, frame_to_graph
from mlip.testing.structures import cu_slab


def _edge_set(g, cell):
    snd, rcv = g[K.EDGE_INDEX].numpy()
    vec = g[K.POSITIONS].numpy()[snd] - g[K.POSITIONS].numpy()[rcv] + g[K.EDGE_SHIFTS].numpy() @ cell
    return sorted(zip(rcv.tolist(), snd.tolist(), np.round(vec, 6).tolist()))


@pytest.mark.parametrize(
    "atoms", [bulk("Cu", "fcc", a=3.6), bulk("Si", "diamond", a=5.43) * (2, 1, 1), cu_slab()]
)
def test_neighbor_list_matches_ase(atoms):
    r = 5.0
    g = atoms_to_graph(atoms, r)
    i, j, d = ase_neighbor_list("ijD", atoms, r)
    ref = sorted(zip(i.tolist(), j.tolist(), np.round(d, 6).tolist()))
    assert _edge_set(g, atoms.cell.array) == ref


def test_small_cell_has_many_images():
    g = atoms_to_graph(bulk("Cu", "fcc", a=3.6), 6.0)
    assert g[K.EDGE_INDEX].shape[1] > 50  # one atom, dozens of periodic images


def test_molecule_without_cell():
    g = atoms_to_graph(Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]), 3.0)
    assert g[K.EDGE_INDEX].shape[1] == 6
    assert (g[K.EDGE_SHIFTS] == 0).all()


def test_batch_offsets():
    a, b = bulk("Cu", "fcc", a=3.6), Atoms("H2", positions=[[0, 0, 0], [0.7, 0, 0]])
    ga, gb = atoms_to_graph(a, 4.0), atoms_to_graph(b, 4.0)
    batch = collate([ga, gb])
    assert batch[K.BATCH].tolist() == [0, 1, 1]
    assert batch[K.EDGE_INDEX][:, ga[K.EDGE_INDEX].shape[1] :].min() == 1


@pytest.mark.parametrize(
    ("atoms", "message"),
    [
        (Atoms("H2", positions=[[0, 0, 0], [np.nan, 0, 0]]), "NaN"),
        (Atoms("H2", positions=[[0, 0, 0], [0.01, 0, 0]]), "overlapping atoms"),
        (
            Atoms("H2", positions=[[0, 0, 0], [1, 0, 0]], cell=[[1, 0, 0], [2, 0, 0], [0, 0, 1]], pbc=True),
            "singular",
        ),
        (Atoms(), "no atoms"),
    ],
)
def test_bad_structures_raise(atoms, message):
    with pytest.raises(ValueError, match=message):
        atoms_to_graph(atoms, 3.0)


def test_missing_labels_are_masked():
    g = frame_to_graph(Frame(atoms=bulk("Cu", "fcc", a=3.6), energy=-3.0), 4.0)
    assert g[K.ENERGY_WEIGHT].item() == 1
    assert g[K.FORCES_WEIGHT].item() == 0
    assert g[K.STRESS_WEIGHT].item() == 0


def test_nan_label_raises():
    with pytest.raises(ValueError, match="energy label"):
        frame_to_graph(Frame(atoms=bulk("Cu", "fcc", a=3.6), energy=float("nan")), 4.0)


def test_geometry_stays_float64():
    g = atoms_to_graph(bulk("Cu", "fcc", a=3.6), 4.0)
    assert g[K.POSITIONS].dtype == torch.float64
    assert g[K.CELL].dtype == torch.float64
