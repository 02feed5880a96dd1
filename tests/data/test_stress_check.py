"""Stress labels against the energies of strained copies (mlip.data.stress_check): EMT families with known answers
(consistent as computed, each transform found when applied), and the real Zuo et al. files."""

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from mlip.data import LabelKeys, read_frames
from mlip.data.graph import Frame
from mlip.data.stress_check import (
    StressTransform,
    apply_stress_transform,
    check_stress_labels,
    require_consistent_stress,
)
from mlip.errors import MLIPInputError
from mlip.training.config import DataConfig
from mlip.training.run import load_frames

_STRAINS = [
    (i, j, e) for i, j in ((0, 0), (2, 2), (0, 1), (0, 2), (1, 2)) for e in (-0.04, -0.02, 0.02, 0.04)
]


def _emt_family(rattle_seed: int | None = 0) -> list[Frame]:
    """A rattled Cu cell (one rattle for all) under uniaxial and shear strains, labelled by EMT."""
    base = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    if rattle_seed is not None:
        base.rattle(0.03, seed=rattle_seed)
    frames = []
    for i, j, e in [(0, 0, 0.0), *_STRAINS]:
        atoms = base.copy()
        grad = np.eye(3)
        grad[i, j] += e
        atoms.set_cell(base.cell.array @ grad.T, scale_atoms=True)
        if rattle_seed is None:
            atoms.rattle(0.1, seed=len(frames))  # a different rattle per frame: no strained pairs
        atoms.calc = EMT()
        frames.append(
            Frame(
                atoms=atoms,
                energy=atoms.get_potential_energy(),
                forces=atoms.get_forces(),
                stress=atoms.get_stress(voigt=False),
            )
        )
    return frames


def _transformed(frames: list[Frame], transform: str) -> list[Frame]:
    return [
        Frame(
            atoms=f.atoms,
            energy=f.energy,
            forces=f.forces,
            stress=apply_stress_transform(f.stress, transform),
        )
        for f in frames
    ]


def test_apply_stress_transform_known_values():
    s = np.array([[1.0, 6.0, 5.0], [6.0, 2.0, 4.0], [5.0, 4.0, 3.0]])  # xy 6, xz 5, yz 4
    swapped = apply_stress_transform(s, "swap_xz_yz")
    np.testing.assert_array_equal(swapped, [[1.0, 6.0, 4.0], [6.0, 2.0, 5.0], [4.0, 5.0, 3.0]])
    np.testing.assert_array_equal(apply_stress_transform(s, "negate"), -s)
    np.testing.assert_array_equal(apply_stress_transform(s, "none"), s)
    for t in StressTransform:
        out = apply_stress_transform(s, t)
        np.testing.assert_array_equal(out, out.T)
        np.testing.assert_array_equal(apply_stress_transform(out, t), s)  # each is its own inverse
    np.testing.assert_array_equal(s[0, 2], 5.0)  # the input is left alone


def test_consistent_labels_pass_and_every_transform_is_found():
    frames = _emt_family()
    result = check_stress_labels(frames)
    assert result.pairs >= len(_STRAINS) // 2
    assert result.rms["none"] < 0.05  # meV/atom: trapezoid error of 2% steps on an analytic potential
    assert result.work_rms > 20 * result.rms["none"]  # the pairs do carry stress information
    assert result.mismatch() is None
    require_consistent_stress(frames, where="emt")
    for t in ("swap_xz_yz", "swap_xy_xz", "swap_xy_yz", "negate"):
        broken = check_stress_labels(_transformed(frames, t))
        assert broken.mismatch() == t, (t, broken.rms)  # each swap (and the sign) is its own inverse
        with pytest.raises(MLIPInputError, match=f"emt.xyz: .*data.stress_transform: {t}"):
            require_consistent_stress(_transformed(frames, t), where="emt.xyz")


def test_no_pairs_without_strained_copies():
    assert check_stress_labels(_emt_family(rattle_seed=None)).pairs == 0
    molecule = [
        Frame(atoms=f.atoms.copy(), energy=f.energy, forces=f.forces, stress=f.stress) for f in _emt_family()
    ]
    for f in molecule:
        f.atoms.pbc = False
    assert check_stress_labels(molecule).pairs == 0
    assert check_stress_labels(molecule).mismatch() is None


def test_zuo_mo_has_xz_and_yz_exchanged_and_si_does_not(shared_data):
    """The shared extxyz of Mo carries its xz and yz stresses in each other's place (checked by finite differences
    of energy against strain); Si's are right."""
    root = shared_data / "zuo2020_elemental"
    mo = check_stress_labels(read_frames(root / "Mo_training.extxyz"))
    assert mo.pairs >= 20
    assert mo.mismatch() == "swap_xz_yz", mo.rms
    fixed = read_frames(root / "Mo_training.extxyz", LabelKeys(stress_transform=StressTransform.SWAP_XZ_YZ))
    assert check_stress_labels(fixed).rms["none"] < 1.0
    si = check_stress_labels(read_frames(root / "Si_training.extxyz"))
    assert si.pairs >= 20
    assert si.mismatch() is None, si.rms
    assert si.rms["none"] < 1.0, si.rms


def test_training_data_refuses_then_accepts_with_the_transform(shared_data):
    path = str(shared_data / "zuo2020_elemental" / "Mo_training.extxyz")
    with pytest.raises(MLIPInputError, match="Mo_training.extxyz: the stress labels .*swap_xz_yz"):
        load_frames(DataConfig(train_file=path, valid_last=20))
    train, valid, _, _ = load_frames(
        DataConfig(train_file=path, valid_last=20, stress_transform="swap_xz_yz")
    )
    assert len(train) == 174
    assert len(valid) == 20
    assert check_stress_labels(train + valid).mismatch() is None
    load_frames(DataConfig(train_file=path, valid_last=20, check_stress=False))  # the user's explicit choice


def _write_family(path) -> list[Frame]:
    """The EMT family as an extxyz file with REF_ labels; returns the frames."""
    from ase.io import write

    frames = _emt_family()
    atoms = []
    for f in frames:
        a = f.atoms.copy()
        a.info.update(REF_energy=f.energy, REF_stress=f.stress)
        a.arrays["REF_forces"] = f.forces
        atoms.append(a)
    write(path, atoms)
    return frames


def test_a_transform_applied_to_a_right_file_is_named(tmp_path):
    """A file already fixed, read with the fix again (the fix applied twice): the message says to remove it."""
    _write_family(tmp_path / "emt.xyz")
    cfg = DataConfig(train_file=str(tmp_path / "emt.xyz"), valid_last=2, stress_transform="negate")
    with pytest.raises(
        MLIPInputError, match="emt.xyz: .*the file is right as it is: remove data.stress_transform"
    ):
        load_frames(cfg)
    load_frames(DataConfig(train_file=str(tmp_path / "emt.xyz"), valid_last=2))


def test_preprocess_applies_and_records_the_transform(tmp_path):
    from mlip import keys as K
    from mlip.data.preprocess import preprocess
    from mlip.testing.models import tiny_run_config
    from mlip.training.config import RunConfig
    from mlip.training.run import prepare_data

    frames = _write_family(tmp_path / "emt.xyz")
    preprocess(
        [tmp_path / "emt.xyz"], tmp_path / "out", shard_size=8, keys=LabelKeys(stress_transform="negate")
    )

    def config(**data):
        data = {"train_file": str(tmp_path / "out"), "valid_last": 2, "batch_size": 4, **data}
        return RunConfig.from_dict({**tiny_run_config(), "data": data})

    with pytest.raises(MLIPInputError, match="data.stress_transform is 'none' but .*--stress-transform"):
        prepare_data(config())
    # the labels were right as written, so negating them makes them wrong: the stress check runs on a store's
    # training frames as on a file's (issue 34, defect 1: it was skipped for a store, and this test trained on them)
    with pytest.raises(MLIPInputError, match="the file is right as it is: remove data.stress_transform"):
        prepare_data(config(stress_transform="negate"))
    prepared = prepare_data(config(stress_transform="negate", check_stress=False))
    graphs = [d[i] for d in (prepared.train, prepared.valid) for i in range(len(d))]
    stored = sorted(float(g[K.STRESS].reshape(-1)[0]) for g in graphs)
    np.testing.assert_allclose(stored, sorted(-float(f.stress[0, 0]) for f in frames), rtol=1e-5, atol=1e-8)


def test_config_refuses_an_unknown_transform():
    with pytest.raises(MLIPInputError, match="stress_transform"):
        DataConfig(stress_transform="swap_xx_yy")
