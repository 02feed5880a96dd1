"""Readers on the real data in ../shared/data: every label variant, units and stress sign."""

import numpy as np
import pytest
from ase import units

from mlip.data import LabelKeys, read_frames, read_mptrj_json, split_isolated_atoms


def test_extxyz_attached_calculator_labels(shared_data):
    frames = read_frames(shared_data / "3bpa" / "train_300K.xyz")
    assert len(frames) == 500
    f = frames[0]
    assert len(f.atoms) == 27
    assert f.energy is not None
    assert f.forces.shape == (27, 3)
    assert f.stress is None


def test_isolated_atoms_and_e0(shared_data):
    frames = read_frames(shared_data / "acac" / "isolated_atoms.xyz")
    rest, e0 = split_isolated_atoms(frames)
    assert rest == []
    assert sorted(e0) == [1, 6, 8]


def test_extxyz_stress_in_ase_convention(shared_data):
    frames = read_frames(shared_data / "zuo2020_elemental" / "Si_training.extxyz")
    assert all(f.stress is not None and f.stress.shape == (3, 3) for f in frames)


def test_zuo_json_stress_sign_matches_extxyz(shared_data):
    """The maml JSON holds VASP-sign kBar virial stress (xx, yy, zz, xy, yz, zx); our extxyz reader must agree
    with -0.1 GPa * that."""
    import json

    records = json.loads((shared_data / "zuo2020_elemental" / "Si_training.json").read_text())
    frames = read_frames(shared_data / "zuo2020_elemental" / "Si_training.extxyz")
    xx, yy, zz, xy, yz, zx = records[0]["outputs"]["virial_stress"]
    vasp = np.array([[xx, xy, zx], [xy, yy, yz], [zx, yz, zz]])
    assert np.allclose(frames[0].stress, -0.1 * units.GPa * vasp, atol=1e-8)


def test_mptrj_json_matches_ase_db(shared_data):
    """MPtrj JSON (kBar, VASP sign) and the orb ASE db (eV/Å³, ASE sign) hold the same frames."""
    js = read_mptrj_json(shared_data / "mptrj_sample" / "orb_mptrj_reconstructed.json")
    db = read_frames(shared_data / "mptrj_sample" / "orb_10_thin_mp_traj_systems.db")
    assert len(js) == len(db) == 11
    by_energy = {round(f.energy, 4): f for f in db}
    for f in js:
        other = by_energy[round(f.energy, 4)]
        assert np.allclose(f.stress, other.stress, atol=1e-6)
        assert np.allclose(f.forces, other.forces, atol=1e-6)


def test_mptrj_extxyz_and_oc20_traj(shared_data):
    xyz = read_frames(shared_data / "mptrj_sample" / "orb_mptrj_frames.extxyz")
    assert len(xyz) == 21
    assert all(f.stress is not None for f in xyz)
    traj = read_frames(shared_data / "oc20_s2ef_sample" / "traj" / "random1000163.traj")
    assert len(traj) == 27
    assert traj[0].forces is not None
    assert traj[0].stress is None


def test_oc20_fixed_atoms_keep_unconstrained_forces(shared_data):
    frames = read_frames(shared_data / "oc20_s2ef_sample" / "oc20_traj_subsample.extxyz", index=":5")
    assert len(frames) == 5
    assert all(np.abs(f.forces).sum(axis=1).min() > 0 for f in frames)


def test_custom_keys_and_ref_prefix(tmp_path):
    from ase import Atoms
    from ase.io import write

    a = Atoms("H2", positions=[[0, 0, 0], [0.7, 0, 0]], cell=[5, 5, 5], pbc=True)
    a.info["REF_energy"] = -1.5
    a.info["my_e"] = -2.5
    a.info["REF_virials"] = np.eye(3).ravel()
    a.arrays["REF_forces"] = np.ones((2, 3))
    a.info["config_weight"] = 3.0
    write(tmp_path / "x.xyz", a)
    [f] = read_frames(tmp_path / "x.xyz")
    assert f.energy == -1.5
    assert f.weight == 3.0
    assert np.allclose(f.forces, 1.0)
    assert np.allclose(f.stress, -np.eye(3) / 125.0)
    [g] = read_frames(tmp_path / "x.xyz", LabelKeys(energy_key="my_e"))
    assert g.energy == -2.5


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such data file"):
        read_frames(tmp_path / "nope.xyz")
