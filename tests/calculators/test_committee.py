"""Committees: ``MLIPCalculator([m1, m2, ...])`` returns the members' mean and population variance, and the same
neighbour-list reuse and dispersion as a single model."""

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule

from mlip.calculators import MLIPCalculator
from mlip.errors import MLIPInputError
from mlip.testing.models import tiny_mace


@pytest.fixture(scope="module")
def members():
    out = []
    for seed in range(3):
        torch.manual_seed(seed)
        out.append(tiny_mace(torch.float64))
    return out


def _single(model, atoms):
    a = atoms.copy()
    a.calc = MLIPCalculator(model)
    return a.get_potential_energy(), a.get_forces(), a.get_stress() if a.pbc.all() else None


def test_mean_and_variance_over_members(members):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.numbers[::3] = 79
    atoms.rattle(0.05, seed=0)
    singles = [_single(m, atoms) for m in members]
    atoms.calc = MLIPCalculator(members)
    energies = np.array([e for e, _, _ in singles])
    forces = np.stack([f for _, f, _ in singles])
    stresses = np.stack([s for _, _, s in singles])
    assert abs(atoms.get_potential_energy() - energies.mean()) < 1e-12
    np.testing.assert_allclose(atoms.get_forces(), forces.mean(0), atol=1e-12)
    np.testing.assert_allclose(atoms.get_stress(), stresses.mean(0), atol=1e-12)
    calc = atoms.calc
    assert abs(calc.get_property("energy_var", atoms) - energies.var()) < 1e-12
    np.testing.assert_allclose(calc.get_property("forces_var", atoms), forces.var(0), atol=1e-12)
    np.testing.assert_allclose(calc.get_property("stress_var", atoms), stresses.var(0), atol=1e-14)
    np.testing.assert_allclose(calc.get_property("energies", atoms), energies, atol=1e-12)
    assert calc.get_property("energy_var", atoms) > 0


def test_identical_members_have_zero_variance(members):
    atoms = molecule("CH3CH2OH")
    atoms.calc = MLIPCalculator([members[0], members[0]])
    assert atoms.calc.get_property("energy_var", atoms) == 0.0
    assert np.abs(atoms.calc.get_property("forces_var", atoms)).max() == 0.0
    assert atoms.calc.nl_builds == 2


def test_a_committee_of_one_and_its_hessian_are_refused(members):
    with pytest.raises(MLIPInputError, match="at least 2"):
        MLIPCalculator([members[0]])
    calc = MLIPCalculator(members[:2])
    with pytest.raises(MLIPInputError, match="committee"):
        calc.get_hessian(molecule("H2O"))


def test_a_committee_file_in_a_list_brings_all_its_members(tmp_path):
    """Issue 33 (noticed): a committee file inside a list counted as one member."""
    import torch

    from mlip.calculators import MLIPCalculator
    from mlip.models import save_model
    from mlip.models.committee import save_committee
    from mlip.testing.models import tiny_mace

    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(tiny_mace(torch.float64, channels=4, max_ell=1, correlation=2))
    save_committee(models[:2], tmp_path / "committee.pt")
    save_model(models[2], tmp_path / "third.pt")
    calc = MLIPCalculator([tmp_path / "committee.pt", tmp_path / "third.pt"])
    assert len(calc.members) == 3
