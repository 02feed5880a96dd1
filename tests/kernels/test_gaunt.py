"""Gaunt products: coefficients, grid and Fourier routes against the Gaunt-weighted CG product, aliasing guard,
equivariance and gradients."""

import pytest
import torch

from mlip.kernels import Irreps, clebsch_gordan, wigner_d
from mlip.kernels.gaunt import SphereGrid, gaunt_alpha, gaunt_coefficients
from mlip.kernels.gaunt_fft import GauntFFTTP
from mlip.kernels.gaunt_grid import DegreeWeights, GauntGridTP, gaunt_product_reference


@pytest.mark.parametrize(
    ("l1", "l2", "l3"),
    [(0, 0, 0), (1, 1, 0), (1, 1, 2), (1, 2, 3), (2, 2, 2), (3, 3, 4), (1, 1, 1), (2, 3, 4), (3, 4, 5)],
)
def test_gaunt_is_alpha_times_cg(l1, l2, l3):
    g = gaunt_coefficients(l1, l2, l3)
    assert (g - gaunt_alpha(l1, l2, l3) * clebsch_gordan(l1, l2, l3)).abs().max() < 1e-12
    if (l1 + l2 + l3) % 2:
        assert gaunt_alpha(l1, l2, l3) == 0.0
        assert g.abs().max() < 1e-12


def _inputs(l1, l2, dtype=torch.float64, batch=4, channels=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, (l1 + 1) ** 2, channels, dtype=dtype, generator=gen)
    y = torch.randn(batch, (l2 + 1) ** 2, channels, dtype=dtype, generator=gen)
    return x, y


@pytest.mark.parametrize(("l1", "l2", "lo"), [(1, 1, 2), (2, 3, 4), (3, 3, 6), (4, 2, 3)])
def test_grid_and_fft_equal_reference(l1, l2, lo):
    x, y = _inputs(l1, l2)
    ref = gaunt_product_reference(x, y, l1, l2, lo)
    assert (GauntGridTP(l1, l2, lo)(x, y) - ref).abs().max() < 1e-10
    assert (GauntFFTTP(l1, l2, lo)(x, y) - ref).abs().max() < 1e-10


@pytest.mark.parametrize("coarser", ["beta", "alpha"])
def test_grid_below_exactness_rule_fails(coarser):
    l1, l2, lo = 3, 3, 6
    exact = SphereGrid.exact_for(l1 + l2 + lo)
    grid = (
        SphereGrid(exact.n_beta - 1, exact.n_alpha)
        if coarser == "beta"
        else SphereGrid(exact.n_beta, exact.n_alpha - 1)
    )
    x, y = _inputs(l1, l2)
    err = (GauntGridTP(l1, l2, lo, grid=grid)(x, y) - gaunt_product_reference(x, y, l1, l2, lo)).abs().max()
    assert err > 1e-3, f"a grid one node below the exactness rule should alias, error {err:.1e}"


@pytest.mark.parametrize("route", [GauntGridTP, GauntFFTTP])
def test_equivariance(route):
    l1, l2, lo = 2, 2, 4
    x, y = _inputs(l1, l2)
    rot = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))[
        0
    ]
    d1, d2, do = (wigner_d(Irreps.spherical_harmonics(l), rot) for l in (l1, l2, lo))
    tp = route(l1, l2, lo)
    out = tp(torch.einsum("ij,bjc->bic", d1, x), torch.einsum("ij,bjc->bic", d2, y))
    assert (out - torch.einsum("ij,bjc->bic", do, tp(x, y))).abs().max() < 1e-10


@pytest.mark.parametrize("route", [GauntGridTP, GauntFFTTP])
def test_gradcheck(route):
    x, y = _inputs(1, 2, batch=2, channels=2)
    x.requires_grad_(True)
    y.requires_grad_(True)
    assert torch.autograd.gradcheck(route(1, 2, 2), (x, y))


def test_float32_close_to_float64():
    x, y = _inputs(3, 3)
    tp = GauntGridTP(3, 3, 3)
    assert (tp(x.float(), y.float()).double() - tp(x, y)).abs().max() < 1e-4
    assert (GauntFFTTP(3, 3, 3)(x.float(), y.float()).double() - tp(x, y)).abs().max() < 1e-4


def test_degree_weights():
    w = DegreeWeights(2, 3, dtype=torch.float64)
    with torch.no_grad():
        w.weight[1] = 2.0
    x = torch.ones(1, 9, 3, dtype=torch.float64)
    out = w(x)
    assert out[0, 0].tolist() == [1.0] * 3
    assert out[0, 1:4].eq(2.0).all()
    assert out[0, 4:].eq(1.0).all()
