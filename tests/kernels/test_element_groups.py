"""The two evaluations of element-dependent maps (grouped by element; every element then a gather) agree, in
values and gradients, for the skip connection and the symmetric contraction."""

import pytest
import torch

import mlip.kernels.symmetric_contraction as sc_module
import mlip.nn.element_linear as el_module
from mlip.kernels import Backend, Irreps, SymmetricContraction, SymmetricContractionDescriptor
from mlip.kernels.element_groups import pick_element, use_grouped
from mlip.nn.element_linear import ElementLinear


def test_pick_element_takes_each_nodes_own_slice():
    values = torch.arange(4 * 3 * 2 * 5, dtype=torch.float64).view(4, 3, 2, 5)  # [N, E=3 at dim 1, ...]
    species = torch.tensor([2, 0, 1, 2])
    out = pick_element(values, species, dim=1)
    assert out.shape == (4, 2, 5)
    for n, z in enumerate(species.tolist()):
        assert torch.equal(out[n], values[n, z])
    moved = values.movedim(1, 3)  # [N, 2, 5, E]: the element axis last
    assert torch.equal(pick_element(moved, species, dim=-1), out)


def test_use_grouped_only_for_eager_cpu_tensors():
    assert use_grouped(torch.zeros(2))
    assert not use_grouped(torch.zeros(2, device="meta"))


def _both(module, monkeypatched, args):
    """Output and input gradient of ``module(*args)`` grouped, then gathered (``use_grouped`` patched off)."""
    results = []
    for grouped in (True, False):
        x = args[0].clone().requires_grad_(True)
        with pytest.MonkeyPatch.context() as mp:
            if not grouped:
                mp.setattr(monkeypatched, "use_grouped", lambda t: False)
            out = module(x, *args[1:])
            (grad,) = torch.autograd.grad((out * torch.cos(out)).sum(), x)
        results.append((out.detach(), grad))
    return results


@pytest.mark.parametrize("species", [[0, 2, 1, 2, 0, 0, 1], [1, 1, 1, 1, 1, 1, 1]], ids=["mixed", "one"])
def test_element_linear_grouped_equals_gathered(species):
    torch.manual_seed(0)
    module = ElementLinear(Irreps("0e+1o+2e"), Irreps("0e+1o+1e"), channels_in=4, channels_out=5,
                           num_elements=3, dtype=torch.float64)  # fmt: skip
    x = torch.randn(7, 9, 4, dtype=torch.float64)
    (o1, g1), (o2, g2) = _both(module, el_module, (x, torch.tensor(species)))
    torch.testing.assert_close(o2, o1, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g2, g1, rtol=1e-12, atol=1e-12)


def test_symmetric_contraction_grouped_equals_gathered():
    torch.manual_seed(0)
    desc = SymmetricContractionDescriptor(Irreps.spherical_harmonics(2), Irreps("0e+1o"), 3)
    module = SymmetricContraction(
        desc, channels=3, num_elements=3, backend=Backend.TORCH, dtype=torch.float64
    )
    a = torch.randn(8, 9, 3, dtype=torch.float64)
    species = torch.tensor([0, 2, 1, 2, 0, 0, 1, 2])
    (o1, g1), (o2, g2) = _both(module, sc_module, (a, species))
    torch.testing.assert_close(o2, o1, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g2, g1, rtol=1e-12, atol=1e-12)
