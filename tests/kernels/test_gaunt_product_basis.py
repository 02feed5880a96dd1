"""The Gaunt product basis: its formula, equivariance, element dependence, gradients and input checks."""

import pytest
import torch

from mlip.kernels import Irreps, wigner_d
from mlip.kernels.gaunt_grid import gaunt_product_reference
from mlip.kernels.gaunt_product_basis import GauntProductBasis


def _basis(route="grid", correlation=3, lmax_in=3, lmax_out=1, seed=0):
    torch.manual_seed(seed)
    basis = GauntProductBasis(lmax_in=lmax_in, lmax_out=lmax_out, correlation=correlation, channels=4,
                              num_elements=2, route=route, dtype=torch.float64)  # fmt: skip
    with torch.no_grad():
        basis.u.normal_()
        basis.v.normal_()
    return basis


def test_matches_chained_reference_products():
    basis = _basis()
    a = torch.randn(5, 16, 4, dtype=torch.float64)
    species = torch.tensor([0, 1, 1, 0, 1])
    deg_in = torch.repeat_interleave(torch.arange(4), torch.arange(4) * 2 + 1)
    deg_out = deg_in[:4]
    expected = basis.w[0][species][:, deg_out] * a[:, :4]
    power = a
    for k in range(2):
        left = basis.u[k][species][:, deg_in] * power
        right = basis.v[k][species][:, deg_in] * a
        power = gaunt_product_reference(left, right, 3, 3, 3)
        expected = expected + basis.w[k + 1][species][:, deg_out] * power[:, :4]
    assert (basis(a, species) - expected).abs().max() < 1e-12


@pytest.mark.parametrize("route", ["grid", "fft"])
def test_equivariant_and_routes_agree(route):
    basis = _basis(route)
    a = torch.randn(6, 16, 4, dtype=torch.float64)
    species = torch.tensor([0, 1, 0, 1, 1, 0])
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
    for rot in (q * torch.det(q), -q * torch.det(q)):
        d_in, d_out = (
            wigner_d(Irreps.spherical_harmonics(3), rot),
            wigner_d(Irreps.spherical_harmonics(1), rot),
        )
        lhs = basis(torch.einsum("ij,njc->nic", d_in, a), species)
        rhs = torch.einsum("ij,njc->nic", d_out, basis(a, species))
        assert (lhs - rhs).abs().max() < 1e-10
    assert (basis(a, species) - _basis("grid")(a, species)).abs().max() < 1e-10


def test_elements_have_their_own_weights_and_gradcheck():
    basis = _basis(correlation=2, lmax_in=2, lmax_out=2)
    a = torch.randn(3, 9, 4, dtype=torch.float64, requires_grad=True)
    out0 = basis(a, torch.tensor([0, 0, 0]))
    out1 = basis(a, torch.tensor([1, 1, 1]))
    assert (out0 - out1).abs().max() > 1e-3
    assert torch.autograd.gradcheck(lambda x: basis(x, torch.tensor([0, 1, 0])), (a,))


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="lmax_out <= lmax_in"):
        GauntProductBasis(lmax_in=1, lmax_out=2, correlation=2, channels=2, num_elements=1)
    with pytest.raises(ValueError, match="correlation"):
        GauntProductBasis(lmax_in=1, lmax_out=1, correlation=5, channels=2, num_elements=1)
    with pytest.raises(ValueError, match="route"):
        GauntProductBasis(lmax_in=1, lmax_out=1, correlation=2, channels=2, num_elements=1, route="fast")
    with pytest.raises(ValueError, match="A must be"):
        _basis()(torch.randn(2, 9, 4, dtype=torch.float64), torch.tensor([0, 1]))
