"""CP-factored product: the analytic full-rank CP is exact, fitted factors are reproducible and cached, and the
equivariance error stays below the bound the fit implies."""

import pytest
import torch

from mlip.kernels import Irreps, wigner_d
from mlip.kernels.cp import (
    CPTensorProduct,
    coupling_tensor,
    cp_factors,
    default_rank,
    dense_product,
    exact_cp_factors,
)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MLIP_CACHE", str(tmp_path))


def _xy(lmax, batch=5, channels=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    d = (lmax + 1) ** 2
    return (
        torch.randn(batch, d, channels, dtype=torch.float64, generator=g),
        torch.randn(batch, d, channels, dtype=torch.float64, generator=g),
    )


@pytest.mark.parametrize("lmax", [1, 2, 3])
def test_analytic_full_rank_cp_is_exact(lmax):
    x, y = _xy(lmax)
    assert (
        CPTensorProduct(lmax, exact_cp_factors(lmax))(x, y) - dense_product(x, y, lmax)
    ).abs().max() < 1e-12


def test_dense_reference_is_equivariant():
    x, y = _xy(2)
    rot = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))[
        0
    ]
    d = wigner_d(Irreps([(l, 1) for l in range(3)]), rot * torch.det(rot))
    out = dense_product(torch.einsum("ij,bjc->bic", d, x), torch.einsum("ij,bjc->bic", d, y), 2)
    assert (out - torch.einsum("ij,bjc->bic", d, dense_product(x, y, 2))).abs().max() < 1e-12


def test_fitted_factors_are_reproducible_and_cached(tmp_path):
    first = cp_factors(2)
    assert any(tmp_path.iterdir())
    second = cp_factors(2)
    assert torch.equal(first.A, second.A)
    assert first.relative_error == second.relative_error
    assert first.A.shape == (9, default_rank(2))
    approx = torch.einsum("ir,jr,kr->ijk", first.A, first.B, first.C)
    m = coupling_tensor(2)
    assert abs(float((approx - m).norm() / m.norm()) - first.relative_error) < 1e-12


@pytest.mark.parametrize("lmax", [1, 2])
def test_equivariance_error_within_fit_bound(lmax):
    factors = cp_factors(lmax)
    tp = CPTensorProduct(lmax, factors)
    approx = torch.einsum("ir,jr,kr->ijk", factors.A, factors.B, factors.C)
    err_norm = float((approx - coupling_tensor(lmax)).norm())  # Frobenius >= operator norm
    x, y = _xy(lmax, batch=20, channels=1)
    rot = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)))[
        0
    ]
    d = wigner_d(Irreps([(l, 1) for l in range(lmax + 1)]), rot * torch.det(rot))
    out = tp(torch.einsum("ij,bjc->bic", d, x), torch.einsum("ij,bjc->bic", d, y))
    diff = (out - torch.einsum("ij,bjc->bic", d, tp(x, y)))[:, :, 0].norm(dim=1)
    bound = 2 * err_norm * x[:, :, 0].norm(dim=1) * y[:, :, 0].norm(dim=1)
    assert (diff <= bound).all()
    assert diff.max() > 0  # an approximate factorisation is not exactly equivariant


def test_gradcheck():
    x, y = _xy(1, batch=2, channels=2)
    x.requires_grad_(True)
    y.requires_grad_(True)
    assert torch.autograd.gradcheck(CPTensorProduct(1, exact_cp_factors(1)), (x, y))
