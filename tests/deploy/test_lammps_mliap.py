"""The ML-IAP unified model (``pair_style mliap unified``) against a stand-in of LAMMPS's data object.

The stand-in (:mod:`mlip.testing.lammps_mliap`) is itself checked with LAMMPS's own example unified model
(``lammps.mliap.mliap_unified_lj``) against an independent Lennard-Jones sum; then mlip's model, given LAMMPS's
pairs with ghost atoms, must give the ASE calculator's energy, per-atom energies, forces and virial (float64,
1e-10 relative) for a triclinic two-element cell smaller than twice the cutoff and a slab."""

import pickle

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.lj import LennardJones
from lammps.mliap.mliap_unified_abc import MLIAPUnified
from lammps.mliap.mliap_unified_lj import MLIAPUnifiedLJ

from mlip.calculators import MLIPCalculator
from mlip.cli.export import main as export_main
from mlip.deploy.lammps_mliap import MLIPMLIAPUnified
from mlip.errors import MLIPInputError
from mlip.models import save_model
from mlip.testing.lammps_mliap import FakeMLIAPData
from mlip.testing.models import tiny_mace
from mlip.testing.structures import cu_au_bulk, cu_slab


def _voigt_lammps(stress: np.ndarray) -> np.ndarray:
    return np.array([stress[0, 0], stress[1, 1], stress[2, 2], stress[0, 1], stress[0, 2], stress[1, 2]])


def test_stand_in_reproduces_lennard_jones_with_lammps_own_example():
    atoms = bulk("Ar", "fcc", a=1.6, cubic=True)
    atoms.rattle(0.05, seed=1)
    lj = MLIAPUnifiedLJ(["Ar"], epsilon=1.0, sigma=1.0, rcutfac=1.25)
    data = FakeMLIAPData.from_atoms(atoms, ["Ar"], cutoff=2 * lj.rcutfac, ghost_cutoff=2.6, ghostneigh=False)
    lj.compute_forces(data)
    ref = atoms.copy()
    ref.calc = LennardJones(sigma=1.0, epsilon=1.0, rc=2.5, smooth=False)
    forces = data.reverse()
    assert np.abs(forces - ref.get_forces()).max() < 1e-10 * np.abs(ref.get_forces()).max()
    virial = -atoms.get_volume() * _voigt_lammps(ref.get_stress(voigt=False))
    assert np.abs(data.virial - virial).max() < 1e-10 * np.abs(virial).max()
    shift = 4.0 * (2.5**-12 - 2.5**-6)  # ASE shifts each pair's energy to zero at rc; the example does not
    assert data.energy == pytest.approx(ref.get_potential_energy() + shift * len(data.pair_i) / 2, rel=1e-10)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return tiny_mace(torch.float64).eval()


@pytest.mark.parametrize("structure", ["triclinic", "slab"])
def test_unified_model_matches_the_ase_calculator(model, structure):
    atoms = cu_au_bulk() if structure == "triclinic" else cu_slab()
    unified = MLIPMLIAPUnified(model)
    assert isinstance(unified, MLIAPUnified)
    assert unified.element_types == ["H", "C", "O", "Cu", "Au"]
    assert 2 * unified.rcutfac == model.r_max
    ghost = model.config.num_interactions * model.r_max + 0.5
    data = FakeMLIAPData.from_atoms(atoms, unified.element_types, cutoff=model.r_max, ghost_cutoff=ghost)
    assert data.ntotal > 10 * len(atoms)  # a cell much smaller than the ghost shell: many images
    unified.compute_forces(data)

    ref = atoms.copy()
    ref.wrap()
    ref.calc = MLIPCalculator(model)
    energy, forces = ref.get_potential_energy(), ref.get_forces()
    assert data.energy == pytest.approx(energy, rel=1e-10)
    assert data.eatoms.sum() == pytest.approx(energy, rel=1e-10)
    assert np.abs(data.reverse() - forces).max() < 1e-10 * np.abs(forces).max()
    if structure == "triclinic":
        virial = -atoms.get_volume() * _voigt_lammps(ref.get_stress(voigt=False))
        assert np.abs(data.virial - virial).max() < 1e-10 * np.abs(virial).max()


def test_pickle_written_by_mlip_export_round_trips(model, tmp_path):
    save_model(model, tmp_path / "model.pt")
    assert export_main([str(tmp_path / "model.pt"), str(tmp_path / "m.pkl"), "--target", "lammps-mliap"]) == 0
    with open(tmp_path / "m.pkl", "rb") as fh:
        unified = pickle.load(fh)
    atoms = cu_au_bulk(seed=3)
    data = FakeMLIAPData.from_atoms(atoms, unified.element_types, cutoff=model.r_max, ghost_cutoff=8.5)
    unified.compute_forces(data)
    ref = atoms.copy()
    ref.wrap()
    ref.calc = MLIPCalculator(model)
    assert data.energy == pytest.approx(ref.get_potential_energy(), rel=1e-10)


def test_missing_ghost_neighbours_are_refused_for_message_passing(model):
    atoms = cu_au_bulk()
    data = FakeMLIAPData.from_atoms(
        atoms, MLIPMLIAPUnified(model).element_types, cutoff=4.0, ghost_cutoff=8.5, ghostneigh=False
    )
    with pytest.raises(
        MLIPInputError, match=r"2 message-passing layers .* 'pair_style mliap unified FILE 1'"
    ):
        MLIPMLIAPUnified(model).compute_forces(data)


def test_one_layer_model_needs_no_ghost_neighbours():
    torch.manual_seed(1)
    model = tiny_mace(torch.float64, num_interactions=1).eval()
    atoms = cu_au_bulk()
    unified = MLIPMLIAPUnified(model)
    data = FakeMLIAPData.from_atoms(
        atoms, unified.element_types, cutoff=4.0, ghost_cutoff=4.5, ghostneigh=False
    )
    unified.compute_forces(data)
    ref = atoms.copy()
    ref.wrap()
    ref.calc = MLIPCalculator(model)
    assert data.energy == pytest.approx(ref.get_potential_energy(), rel=1e-10)
    assert np.abs(data.reverse() - ref.get_forces()).max() < 1e-10 * np.abs(ref.get_forces()).max()
