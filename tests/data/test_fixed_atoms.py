"""Fixed atoms (OC20's frozen slab layers) are read from the sample and left out of the force loss and metrics."""

from pathlib import Path

import numpy as np
import pytest
import torch

from mlip import keys as K
from mlip.data import collate
from mlip.data.graph import frame_to_graph
from mlip.data.readers import read_frames
from mlip.training.losses import loss_terms
from mlip.training.metrics import ErrorAccumulator

OC20 = Path(__file__).resolve().parents[3] / "shared" / "data" / "oc20_s2ef_sample"

pytestmark = pytest.mark.skipif(not OC20.exists(), reason="../shared/data/oc20_s2ef_sample is not available")


def test_move_mask_and_fixatoms_become_the_fixed_mask():
    import ase.io

    frames = read_frames(OC20 / "oc20_traj_subsample.extxyz", index=":5")
    raw = ase.io.read(OC20 / "oc20_traj_subsample.extxyz", index=":5")
    for f, a in zip(frames, raw):
        # ASE turns the file's move_mask column into a FixAtoms constraint on reading
        expected = np.zeros(len(a), dtype=bool)
        expected[a.constraints[0].get_indices()] = True
        np.testing.assert_array_equal(f.fixed, expected)
        assert 0 < f.fixed.sum() < len(f.atoms)
        # the labels are the unconstrained DFT forces, not ASE's zeroed constrained ones
        np.testing.assert_allclose(f.forces, a.get_forces(apply_constraint=False))
    traj = read_frames(OC20 / "traj" / "random1000156.traj", index=":2")
    assert all(f.fixed is not None and f.fixed.any() for f in traj)


def test_fixed_atoms_leave_the_force_loss_and_the_metrics():
    frame = read_frames(OC20 / "oc20_traj_subsample.extxyz", index="0")[0]
    batch = collate([frame_to_graph(frame, 4.0)])
    free = batch[K.FORCES_MASK] > 0
    pred = {K.ENERGY: batch[K.ENERGY].clone(), K.FORCES: batch[K.FORCES].clone()}
    pred[K.FORCES][~free] += 10.0  # wrong only on fixed atoms: no loss, no error
    terms = loss_terms(pred, batch)
    assert terms["forces"].item() == 0.0
    acc = ErrorAccumulator()
    acc.add(pred, batch)
    assert acc.metrics()["forces_rmse_mev_per_A"] == 0.0
    pred[K.FORCES][free] += 0.1  # wrong on free atoms: counted, normalised by the free atoms only
    assert loss_terms(pred, batch)["forces"].item() == pytest.approx(0.01)
    assert torch.equal(batch[K.FORCES_MASK], torch.from_numpy((~frame.fixed).astype(np.float64)))


def test_every_source_of_the_mask_is_read():
    from ase import Atoms
    from ase.constraints import FixAtoms

    from mlip.data.readers import fixed_atoms

    atoms = Atoms("H4", positions=np.arange(12.0).reshape(4, 3))
    assert not fixed_atoms(atoms).any()
    atoms.set_constraint(FixAtoms(indices=[0]))
    atoms.arrays["move_mask"] = np.array([True, False, True, True])
    atoms.arrays["fixed"] = np.array([0, 0, 1, 0])
    np.testing.assert_array_equal(fixed_atoms(atoms), [True, True, True, False])
