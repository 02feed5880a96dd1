"""Labels in a wrong unit are refused when read (mlip.data.units), naming the frame, the value and the likely unit;
labels that are NaN, of the wrong shape or missing altogether name their file and frame."""

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from mlip.data import LabelKeys, read_frames
from mlip.training.config import RunConfig
from mlip.training.run import run_training

KBAR_PER_EV_A3 = 1602.1766


@pytest.fixture(scope="module")
def mo(shared_data):
    return read(shared_data / "zuo2020_elemental" / "Mo_training.extxyz", ":")


def _rescaled(frames, path, *, stress=1.0, forces=1.0, energy=1.0):
    out = []
    for a in frames:
        b = a.copy()
        b.info["REF_energy"] = a.get_potential_energy() * energy
        b.arrays["REF_forces"] = a.get_forces() * forces
        b.info["REF_stress"] = a.get_stress(voigt=False) * stress
        out.append(b)
    write(path, out)
    return path


def test_the_bounds_hold_for_the_shared_dft_sets(shared_data):
    """Every label in the shared real data passes (the bounds sit far outside real DFT values)."""
    for rel in ("zuo2020_elemental/Mo_training.extxyz", "3bpa/train_300K.xyz", "oc20_s2ef_sample/oc20_traj_subsample.extxyz",
                "mptrj_sample/orb_mptrj_reconstructed.json", "acac/train_600K.xyz"):  # fmt: skip
        assert read_frames(shared_data / rel)


def test_stress_in_kbar_is_refused_naming_frame_value_and_unit(mo, tmp_path):
    path = _rescaled(mo[:20], tmp_path / "mo_kbar.xyz", stress=KBAR_PER_EV_A3)
    with pytest.raises(ValueError, match="implausible in eV/Å³") as info:
        read_frames(path)
    msg = str(info.value)
    assert msg.startswith("mo_kbar.xyz[")
    assert "implausible in eV/Å³" in msg
    assert "kBar divide by 1602.18" in msg
    assert "data.check_units: false" in msg


def test_stress_in_gpa_and_forces_in_mev_and_energies_in_kcal_are_refused(mo, tmp_path):
    with pytest.raises(ValueError, match="GPa by 160.218"):
        read_frames(_rescaled(mo[:20], tmp_path / "gpa.xyz", stress=160.21766))
    with pytest.raises(ValueError, match="meV/Å divide by 1000"):
        read_frames(_rescaled(mo[:5], tmp_path / "mev.xyz", forces=1000.0))


def test_energies_in_kcal_per_mol_are_refused(shared_data, tmp_path):
    frames = read(shared_data / "3bpa" / "train_300K.xyz", ":5")
    for a in frames:
        a.calc.results["energy"] *= 23.0605
    write(tmp_path / "kcal.xyz", frames)
    with pytest.raises(ValueError, match=r"kcal.xyz\[0\].*kcal/mol divide by 23.06"):
        read_frames(tmp_path / "kcal.xyz")


def test_the_check_can_be_turned_off(mo, tmp_path):
    from mlip.data.units import MAX_STRESS

    path = _rescaled(mo[:3], tmp_path / "big.xyz", stress=2.0 / np.abs(mo[0].get_stress()).max())
    frames = read_frames(path, LabelKeys(check_units=False))
    assert np.abs(frames[0].stress).max() > MAX_STRESS


def test_energy_bound_exceeds_all_electron_energies():
    from mlip.data.units import energy_bound

    # all-electron total energies (Hartree): H -0.5, C -37.85, O -75.07, Au -19035 (relativistic)
    for z, e_ha in ((1, 0.5), (6, 37.85), (8, 75.07), (79, 19035.0)):
        assert energy_bound(np.array([z])) > 27.2114 * e_ha


def test_training_refuses_stress_in_kbar_before_training(mo, tmp_path):
    """Before the fix this trained without complaint (stress RMSE in the tens of thousands of meV/Å³)."""
    path = _rescaled(mo[:30], tmp_path / "mo_kbar.xyz", stress=KBAR_PER_EV_A3)
    cfg = RunConfig.from_dict(
        {
            "data": {"train_file": str(path), "valid_last": 5},
            "train": {"max_epochs": 1, "progress_bar": False},
        }
    )
    with pytest.raises(ValueError, match=r"mo_kbar.xyz\[\d+\]: a stress component is"):
        run_training(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "model.pt").exists()


def test_a_nan_label_of_a_validation_frame_names_its_file_and_frame(tmp_path, shared_data):
    frames = read(shared_data / "3bpa" / "train_300K.xyz", ":30")
    frames[27].calc.results["forces"][3, 1] = np.nan
    write(tmp_path / "nan.xyz", frames)
    cfg = RunConfig.from_dict(
        {"data": {"train_file": str(tmp_path / "nan.xyz"), "valid_last": 5, "e0s": "average"},
         "train": {"max_epochs": 1, "progress_bar": False}}
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"nan.xyz\[27\]: the forces label contains NaN") as info:
        run_training(cfg, tmp_path / "run")
    assert "valid[" not in str(info.value)


def test_a_misspelt_energy_key_is_named_even_with_e0s_zero(tmp_path, shared_data):
    cfg = RunConfig.from_dict(
        {"data": {"train_file": str(shared_data / "3bpa" / "train_300K.xyz"), "valid_last": 10,
                  "energy_key": "REF_enrgy", "e0s": "zero"},
         "train": {"max_epochs": 1, "progress_bar": False}}
    )  # fmt: skip
    with pytest.raises(ValueError, match="the energy key 'REF_enrgy' is in no frame") as info:
        run_training(cfg, tmp_path / "run")
    assert "energy" in str(info.value)  # the keys the file does hold are listed
    assert not (tmp_path / "run" / "model.pt").exists()


def test_a_training_set_without_energies_needs_energy_weight_zero(tmp_path, shared_data):
    frames = read(shared_data / "3bpa" / "train_300K.xyz", ":20")
    for a in frames:
        a.calc = SinglePointCalculator(a, forces=a.get_forces())
    write(tmp_path / "forces_only.xyz", frames)
    raw = {"data": {"train_file": str(tmp_path / "forces_only.xyz"), "valid_last": 4, "e0s": "zero"},
           "model": {"name": "mace", "r_max": 4.0, "channels": 4, "max_ell": 1, "correlation": 2, "radial_mlp": [8]},
           "train": {"max_epochs": 1, "progress_bar": False}}  # fmt: skip
    with pytest.raises(
        ValueError, match="none of the 16 training frames has an energy label.*energy_weight: 0"
    ):
        run_training(RunConfig.from_dict(raw), tmp_path / "run")
    raw["train"]["energy_weight"] = 0.0
    assert run_training(RunConfig.from_dict(raw), tmp_path / "run2") is not None  # asked for: trains
