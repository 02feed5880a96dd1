"""TorchSim interface: TorchSim's own interface checks, consistency with the ASE calculator, batched = single."""

import numpy as np
import pytest
import torch

ts = pytest.importorskip("torch_sim", reason="the TorchSim extra (pip install 'mlip[sim]')")

from torch_sim.models.interface import validate_model_outputs  # noqa: E402

from mlip.calculators import MLIPCalculator  # noqa: E402
from mlip.errors import MLIPInputError  # noqa: E402
from mlip.models import build_model  # noqa: E402
from mlip.sim.torchsim import MLIPModel  # noqa: E402
from mlip.testing import torchsim as kit  # noqa: E402

try:  # TorchSim's own kit where its release ships one (not 0.3.0, the newest on our index)
    from torch_sim.testing import SIMSTATE_BULK_GENERATORS, assert_model_calculator_consistency

    BULK = {name.removesuffix("_sim_state"): gen for name, gen in SIMSTATE_BULK_GENERATORS.items()}
except ImportError:
    assert_model_calculator_consistency = kit.assert_model_calculator_consistency
    BULK = {
        name: (lambda device, dtype, a=atoms: ts.io.atoms_to_state(a, device, dtype))
        for name, atoms in kit.bulk_structures().items()
    }


def _model(dtype: torch.dtype):
    torch.manual_seed(0)
    z = list(kit.BULK_ELEMENTS)
    return build_model(dict(
        name="mace", atomic_numbers=z, atomic_energies=[-0.1 * k for k in range(len(z))], r_max=4.0, channels=8,
        max_ell=2, max_L=1, correlation=2, radial_mlp=[16], avg_num_neighbors=12.0,
        dtype=str(dtype).replace("torch.", ""),
    ))  # fmt: skip


@pytest.fixture(scope="module", params=[torch.float64, torch.float32], ids=["f64", "f32"])
def pair(request):
    net = _model(request.param)
    return request.param, MLIPModel(net), MLIPCalculator(net)


def test_torchsim_validate_model_outputs(pair):
    dtype, model, _ = pair
    validate_model_outputs(model, torch.device("cpu"), dtype)


@pytest.mark.parametrize("name", sorted(BULK))
def test_consistent_with_the_ase_calculator(pair, name):
    dtype, model, calc = pair
    state = BULK[name](torch.device("cpu"), dtype)
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    assert_model_calculator_consistency(model, calc, state, rtol=tol, atol=tol)


def test_molecule_has_no_stress(pair):
    dtype, model, calc = pair
    state = ts.io.atoms_to_state(kit.benzene(), torch.device("cpu"), dtype)
    out = model(state)
    assert "stress" not in out
    atoms = kit.benzene()
    atoms.calc = calc
    np.testing.assert_allclose(out["forces"].double().numpy(), atoms.get_forces(), rtol=1e-5, atol=1e-5)


def test_batched_equals_single_float64():
    net = _model(torch.float64)
    model = MLIPModel(net)
    structures = list(kit.bulk_structures().values())
    state = ts.io.atoms_to_state(structures, torch.device("cpu"), torch.float64)
    out = model(state)
    assert out["energy"].shape == (len(structures),)
    start = 0
    for b, atoms in enumerate(structures):
        one = model(ts.io.atoms_to_state(atoms, torch.device("cpu"), torch.float64))
        n = len(atoms)
        torch.testing.assert_close(out["energy"][b : b + 1], one["energy"], rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(out["forces"][start : start + n], one["forces"], rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(out["stress"][b : b + 1], one["stress"], rtol=1e-10, atol=1e-10)
        start += n


def test_bad_system_is_named():
    model = MLIPModel(_model(torch.float64))
    good = kit.bulk_structures()["si"]
    unknown = good.copy()
    unknown.numbers[:] = 79  # Au: not in the model
    state = ts.io.atoms_to_state([good, unknown], torch.device("cpu"), torch.float64)
    with pytest.raises(MLIPInputError, match="system 1 of the TorchSim state"):
        model(state)
    overlapping = good.copy()
    overlapping.positions[1] = overlapping.positions[0] + 0.01
    state = ts.io.atoms_to_state([overlapping, good], torch.device("cpu"), torch.float64)
    with pytest.raises(MLIPInputError, match="system 0 of the TorchSim state: atoms"):
        model(state)
