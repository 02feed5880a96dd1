"""DFT-D3 in MLIPCalculator: the dispersion part equals torch-dftd's own calculator (periodic cells, stress
included) and, on molecules, tad-dftd3's independent implementation to 1e-6 eV; forces are -dE/dx; a cell relaxation
with D3 converges; unknown names are one-line errors."""

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule

from mlip.calculators.ase_calculator import MLIPCalculator
from mlip.errors import MLIPInputError
from mlip.sim.relax import relax
from mlip.testing.models import tiny_mace

pytest.importorskip("torch_dftd")
# PBE-D3(BJ): Grimme, Ehrlich, Goerigk, J. Comput. Chem. 32, 1456 (2011), a2 in Bohr
PBE_BJ = {"a1": 0.4289, "s8": 0.7875, "a2": 4.4407}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return tiny_mace(torch.float64)


def _both(model, atoms, **kw):
    """Results without and with D3 at ``atoms``."""
    out = []
    for calc in (MLIPCalculator(model), MLIPCalculator(model, dispersion="d3bj", xc="pbe", **kw)):
        a = atoms.copy()
        a.calc = calc
        res = {"energy": a.get_potential_energy(), "forces": a.get_forces()}
        if a.pbc.all():
            res["stress"] = a.get_stress()
        out.append(res)
    return out


@pytest.mark.parametrize("name", ["CH3CH2OH", "H2O", "CH3COOH"])
def test_molecular_d3_equals_tad_dftd3(model, name):
    tad = pytest.importorskip("tad_dftd3")
    from ase.units import Bohr, Hartree

    atoms = molecule(name)
    plain, with_d3 = _both(model, atoms)
    param = {k: torch.tensor(v, dtype=torch.float64) for k, v in PBE_BJ.items()}
    pos = torch.tensor(atoms.positions / Bohr, dtype=torch.float64)
    e_tad = tad.dftd3(torch.tensor(atoms.numbers), pos, param).sum().item() * Hartree
    assert abs((with_d3["energy"] - plain["energy"]) - e_tad) < 1e-6


def test_periodic_d3_is_torch_dftd_s_and_forces_are_minus_the_gradient(model):
    from torch_dftd.torch_dftd3_calculator import TorchDFTD3Calculator

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.numbers[::3] = 79
    atoms.rattle(0.05, seed=1)
    plain, with_d3 = _both(model, atoms)
    ref = atoms.copy()
    ref.calc = TorchDFTD3Calculator(damping="bj", xc="pbe", dtype=torch.float64, cutoff_smoothing="poly")
    assert abs(with_d3["energy"] - plain["energy"] - ref.get_potential_energy()) < 1e-10
    np.testing.assert_allclose(with_d3["forces"] - plain["forces"], ref.get_forces(), atol=1e-10)
    np.testing.assert_allclose(with_d3["stress"] - plain["stress"], ref.get_stress(), atol=1e-10)
    calc = MLIPCalculator(model, dispersion="d3bj", xc="pbe")
    work = atoms.copy()
    work.calc = calc
    h, i = 1e-4, 2
    work.positions[i, 0] += h
    e_plus = work.get_potential_energy()
    work.positions[i, 0] -= 2 * h
    e_minus = work.get_potential_energy()
    assert abs(-(e_plus - e_minus) / (2 * h) - with_d3["forces"][i, 0]) < 1e-6


def test_cell_relaxation_with_d3_converges():
    from mlip.models import build_model

    torch.manual_seed(0)  # the model of tests/calculators/test_calculator.py's cell relaxation
    si = build_model(dict(name="mace", atomic_numbers=[1, 6, 8, 14], atomic_energies=[0, 0, 0, 0], r_max=4.0,
                          channels=8, max_ell=2, max_L=1, correlation=2, radial_mlp=[8], avg_num_neighbors=10.0,
                          dtype="float64"))  # fmt: skip
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.rattle(0.05, seed=2)
    calc = MLIPCalculator(si, dispersion="d3bj", xc="pbe", dispersion_cutoff=15.0)  # 15 Å: fast on 2 atoms
    relaxed, converged = relax(atoms, calc, fmax=0.01, steps=500, relax_cell=True)
    assert converged
    assert np.abs(relaxed.get_forces()).max() < 0.01
    plain, _ = relax(atoms, MLIPCalculator(si), fmax=0.01, steps=2000, relax_cell=True)
    assert relaxed.get_volume() < plain.get_volume()  # dispersion is attractive: a denser cell


def test_unknown_dispersion_or_functional_is_refused(model):
    with pytest.raises(MLIPInputError, match="dispersion must be one of"):
        MLIPCalculator(model, dispersion="d4")
    with pytest.raises(MLIPInputError, match="xc='not-a-functional'"):
        MLIPCalculator(model, dispersion="d3bj", xc="not-a-functional")
