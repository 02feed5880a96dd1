"""Cubic B-spline radial functions: C² at the knots, zero value and slope at r_max, the four-value evaluation
against the dense basis, and input checks."""

import pytest
import torch

from mlip.nn.spline import SplineRadial, cubic_bspline_weights


def _spline(num_knots=12, r_max=5.0, seed=0):
    torch.manual_seed(seed)
    return SplineRadial(r_max=r_max, num_out=3, num_knots=num_knots, dtype=torch.float64)


def _derivatives(f, r: torch.Tensor, order: int) -> list[torch.Tensor]:
    r = r.clone().requires_grad_(True)
    out = [f(r).sum(-1)]
    for _ in range(order):
        out.append(torch.autograd.grad(out[-1].sum(), r, create_graph=True)[0])
    return [o.detach() for o in out]


def test_partition_of_unity_and_shape():
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert (cubic_bspline_weights(t).sum(-1) - 1).abs().max() < 1e-15
    assert _spline()(torch.rand(7, dtype=torch.float64) * 5).shape == (7, 3)


def test_c2_continuity_at_every_knot_and_a_jump_in_the_third_derivative():
    sp = _spline()
    knots = torch.arange(1, sp.segments, dtype=torch.float64) * sp.h
    eps = 1e-7
    left = _derivatives(sp, knots - eps, 3)
    right = _derivatives(sp, knots + eps, 3)
    scale = [max(1.0, float(d.abs().max())) for d in left]
    for order in range(3):  # value, first and second derivative continuous
        assert (left[order] - right[order]).abs().max() < 1e-5 * scale[order]
    # the third derivative of a cubic spline jumps at knots: the check above can fail
    assert (left[3] - right[3]).abs().max() > 1e-2


def test_zero_value_and_slope_at_r_max_and_beyond():
    sp = _spline()
    r = torch.tensor([sp.r_max - 1e-9, sp.r_max, sp.r_max + 0.3], dtype=torch.float64)
    value, slope = _derivatives(sp, r, 1)
    assert value.abs().max() < 1e-12
    assert slope.abs().max() < 1e-8


def test_four_value_evaluation_equals_the_dense_basis():
    sp = _spline(num_knots=9)
    r = torch.linspace(0.01, sp.r_max, 301, dtype=torch.float64)
    idx, beta = sp.basis(r)
    dense = torch.zeros(len(r), sp.num_knots, dtype=torch.float64).scatter_add_(1, idx, beta)
    expected = (dense @ sp.coefficients) * sp.envelope(r)[:, None]
    assert (sp(r) - expected).abs().max() < 1e-13
    assert (dense.sum(-1) - 1).abs().max() < 1e-13


def test_least_squares_fit_of_a_smooth_radial_function_improves_with_knots():
    r = torch.linspace(0.8, 5.0, 800, dtype=torch.float64)
    target = ((torch.sin(2.1 * r) / r + 0.3 * torch.cos(0.7 * r)) * (1 - r / 5.0) ** 3)[:, None]
    errors = []
    for k in (8, 16, 32):
        sp = _spline(num_knots=k)
        idx, beta = sp.basis(r)
        a = torch.zeros(len(r), k, dtype=torch.float64).scatter_add_(1, idx, beta) * sp.envelope(r)[:, None]
        w = torch.linalg.lstsq(a, target, driver="gelsd").solution
        errors.append(float((a @ w - target).abs().max() / target.abs().max()))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-3


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="num_knots"):
        SplineRadial(r_max=5.0, num_out=2, num_knots=3)
    with pytest.raises(ValueError, match="envelope_p"):
        SplineRadial(r_max=5.0, num_out=2, envelope_p=1)
    with pytest.raises(ValueError, match=r"r must be \[E\]"):
        _spline()(torch.rand(3, 1, dtype=torch.float64))


def _trained_mlp_radial(r: torch.Tensor, r_max: float) -> torch.Tensor:
    """Outputs ``[E, 16]`` of MACE's radial MLP (8 Bessel functions, 3x64 SiLU layers) after 200 Adam steps
    towards Gaussian shells at 1.0-4.5 Å (width 0.5 Å) times the cutoff: a trained, not a random, MLP."""
    from mlip.nn import BesselBasis, PolynomialCutoff, RadialMLP

    torch.manual_seed(0)
    cutoff = PolynomialCutoff(r_max=r_max, p=5)
    x = BesselBasis(r_max=r_max, num_basis=8, dtype=torch.float64)(r) * cutoff(r)[:, None]
    centres = torch.linspace(1.0, 4.5, 16, dtype=torch.float64)
    target = torch.exp(-(((r[:, None] - centres) / 0.5) ** 2)) * cutoff(r)[:, None]
    mlp = RadialMLP([8, 64, 64, 64, 16], dtype=torch.float64)
    opt = torch.optim.Adam(mlp.parameters(), lr=3e-3)
    first = None
    for _ in range(200):
        opt.zero_grad()
        loss = (mlp(x) - target).pow(2).mean()
        first = float(loss) if first is None else first
        loss.backward()
        opt.step()
    assert float(loss) < 0.05 * first  # it did train
    with torch.no_grad():
        return mlp(x)


def test_spline_fitted_to_a_trained_mlp_radial_function_reproduces_it():
    r_max = 5.0
    r = torch.linspace(0.8, r_max, 1000, dtype=torch.float64)
    y = _trained_mlp_radial(r, r_max)
    errors = {}
    for k in (16, 32, 48):
        sp = SplineRadial(r_max=r_max, num_out=16, num_knots=k, dtype=torch.float64)
        errors[k] = sp.fit_(r, y)
        assert float((sp(r) - y).abs().max() / y.abs().max()) == pytest.approx(errors[k], rel=1e-6)
    assert errors[16] > errors[32] > errors[48]
    assert errors[48] < 1e-3  # max |error| / max |R| over 0.8-5 Å and all 16 outputs


def test_fit_rejects_a_mis_shaped_target():
    with pytest.raises(ValueError, match=r"target must be \[E, num_out\]"):
        _spline().fit_(torch.rand(5, dtype=torch.float64), torch.rand(5, 4, dtype=torch.float64))
