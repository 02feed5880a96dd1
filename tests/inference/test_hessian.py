"""Hessian by autograd equals central finite differences of the forces (float64), for MACE and Facet."""

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule

import mlip
from mlip.calculators import MLIPCalculator
from mlip.errors import MLIPInputError
from mlip.testing.models import tiny_facet, tiny_mace


def fd_hessian(atoms, calc, h=1e-4):
    n = 3 * len(atoms)
    out = np.zeros((n, n))
    for k in range(n):
        for sign in (1.0, -1.0):
            probe = atoms.copy()
            probe.positions[k // 3, k % 3] += sign * h
            probe.calc = calc
            out[:, k] -= sign * probe.get_forces().reshape(-1) / (2 * h)
    return out


@pytest.mark.parametrize("make", [tiny_mace, tiny_facet], ids=["mace", "facet"])
@pytest.mark.parametrize("kind", ["bulk", "molecule"])
def test_hessian_matches_finite_differences(make, kind):
    torch.manual_seed(0)
    model = make(torch.float64)
    atoms = bulk("Cu", "fcc", a=3.6) * (2, 1, 1) if kind == "bulk" else molecule("CH3OH")
    atoms.rattle(0.05, seed=1)
    calc = MLIPCalculator(model, skin=0.0)
    h = mlip.hessian(atoms, model)
    assert h.shape == (3 * len(atoms), 3 * len(atoms))
    np.testing.assert_allclose(h, h.T, atol=1e-12 * np.abs(h).max())
    reference = fd_hessian(atoms, calc)
    assert np.abs(h - reference).max() <= 1e-6 * np.abs(h).max()
    np.testing.assert_allclose(calc.get_hessian(atoms), h, rtol=0, atol=1e-14 * np.abs(h).max())


def test_hessian_bad_input():
    model = tiny_mace(torch.float64)
    with pytest.raises(MLIPInputError, match="expected ase.Atoms"):
        mlip.hessian([1, 2], model)
    with pytest.raises(MLIPInputError, match="unknown element"):
        mlip.hessian(bulk("Si", "diamond", a=5.43), model)  # Si is not one of the model's elements
