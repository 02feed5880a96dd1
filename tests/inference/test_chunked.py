"""Chunked evaluation of large structures equals the whole-structure evaluation (float64, MACE and Facet)."""

import numpy as np
import pytest
import torch
from ase.build import bulk, fcc111, molecule

from mlip.calculators import MLIPCalculator
from mlip.errors import MLIPInputError
from mlip.inference.chunked import chunked_evaluate
from mlip.testing.models import tiny_facet, tiny_mace


def structures():
    cells = {
        "bulk": bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 2, 2),  # 32 atoms, blocks across periodic faces
        "small_cell": bulk("Cu", "fcc", a=3.6)
        * (2, 1, 1),  # smaller than the cutoff: many images of each atom
        "slab": fcc111("Cu", size=(2, 2, 3), vacuum=5.0),
        "molecule": molecule("C6H6"),
    }
    for k, atoms in enumerate(cells.values()):
        atoms.rattle(0.05, seed=k)
    return cells


@pytest.mark.parametrize("make", [tiny_mace, tiny_facet], ids=["mace", "facet"])
def test_chunked_equals_whole(make):
    torch.manual_seed(0)
    model = make(torch.float64)
    whole = MLIPCalculator(model, skin=0.0)
    chunked = MLIPCalculator(model, chunk_atoms=10)
    for name, atoms in structures().items():
        ref, got = atoms.copy(), atoms.copy()
        ref.calc, got.calc = whole, chunked
        assert got.get_potential_energy() == pytest.approx(
            ref.get_potential_energy(), rel=1e-12, abs=1e-10
        ), name
        np.testing.assert_allclose(got.get_forces(), ref.get_forces(), rtol=0, atol=1e-11, err_msg=name)
        if atoms.pbc.all():
            np.testing.assert_allclose(got.get_stress(), ref.get_stress(), rtol=0, atol=1e-12, err_msg=name)


def test_chunked_refuses_bad_settings():
    model = tiny_mace(torch.float64)
    with pytest.raises(MLIPInputError, match="chunk_atoms"):
        chunked_evaluate(model, molecule("CH4"), chunk_atoms=0)
    with pytest.raises(MLIPInputError, match="unknown element"):
        chunked_evaluate(model, bulk("Si", "diamond", a=5.43), chunk_atoms=4)
