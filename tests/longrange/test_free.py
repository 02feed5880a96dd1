"""Free structures: the range split, Chebyshev–Tucker against the direct erf sum, forces, and the public API."""

import math

import pytest
import torch

from mlip.longrange import K_E, coulomb_energy, electrostatic_potential
from mlip.longrange.chebyshev_tucker import chebyshev_tucker_potential, gaussian_sum
from mlip.longrange.direct import coulomb_potential_direct, erf_potential_direct


def _cloud(n: int, box: float, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, generator=g, dtype=torch.float64) * box
    q = torch.randn(n, generator=g, dtype=torch.float64)
    return x.to(dtype), (q - q.mean()).to(dtype)


def _rel_rms(a, b):
    return ((a - b).norm() / b.norm()).item()


def test_erfc_plus_erf_minus_self_is_the_coulomb_sum():
    x, q = _cloud(300, 15.0)
    sigma = 1.7
    d = (x[:, None] - x[None]).norm(dim=-1)
    off = ~torch.eye(300, dtype=torch.bool)
    short = torch.where(off, torch.erfc(d / sigma) / torch.where(off, d, 1.0), 0.0) @ q
    split = short + erf_potential_direct(x, q, sigma) - 2 * q / (sigma * math.sqrt(math.pi))
    torch.testing.assert_close(
        split, coulomb_potential_direct(x, q), rtol=0, atol=1e-12 * q.abs().max().item()
    )


@pytest.mark.parametrize(
    ("sigma", "r_max", "accuracy"), [(2.0, 60.0, 1e-9), (4.0, 52.0, 1e-12), (1.0, 10.0, 1e-6)]
)
def test_gaussian_sum_reaches_its_accuracy(sigma, r_max, accuracy):
    from scipy.special import erf

    w, a = gaussian_sum(sigma, r_max, accuracy)
    r = torch.linspace(1e-6, r_max, 20001, dtype=torch.float64).numpy()
    approx = (w[None] * torch.exp(-torch.tensor(r[:, None] ** 2 * a[None])).numpy()).sum(1)
    assert abs(approx - erf(r / sigma) / r).max() <= accuracy * 2 / (sigma * math.sqrt(math.pi)) * 1.01


@pytest.mark.parametrize(("sigma", "accuracy", "bound"), [(2.0, 1e-5, 1e-5), (4.0, 1e-8, 1e-8)])
def test_chebyshev_tucker_meets_the_target_on_1000_charges_in_a_30A_cube(sigma, accuracy, bound):
    x, q = _cloud(1000, 30.0)
    phi, plan = chebyshev_tucker_potential(x, q, sigma, accuracy=accuracy)
    assert _rel_rms(phi, erf_potential_direct(x, q, sigma)) <= bound, plan


def test_error_falls_monotonically_with_rank():
    x, q = _cloud(400, 30.0, seed=1)
    ref = erf_potential_direct(x, q, 4.0)
    errors = [
        _rel_rms(chebyshev_tucker_potential(x, q, 4.0, accuracy=1e-12, degree=36, rank=r)[0], ref)
        for r in (4, 8, 12, 16, 20, 24, 30)
    ]
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-8


def test_chebyshev_tucker_forces_match_central_differences_of_the_exact_energy():
    # The difference quotient of the approximate energy amplifies its 1e-9 error by 1/h (the bounding box and the
    # bases move with the atoms), so the autograd forces are checked against differences of the exact erf energy.
    x, q = _cloud(40, 12.0, seed=2)
    x.requires_grad_(True)
    approx = 0.5 * (q * chebyshev_tucker_potential(x, q, 2.0, accuracy=1e-10)[0]).sum()
    forces = -torch.autograd.grad(approx, x)[0]

    def exact(p):
        return 0.5 * (q * erf_potential_direct(p, q, 2.0)).sum()

    h = 1e-5
    fd = torch.zeros_like(forces)
    with torch.no_grad():
        for i in range(40):
            for d in range(3):
                dx = torch.zeros_like(x)
                dx[i, d] = h
                fd[i, d] = -(exact(x + dx) - exact(x - dx)) / (2 * h)
    assert (forces - fd).abs().max() / fd.abs().max() < 1e-6


@pytest.mark.parametrize("method", ["direct", "chebyshev_tucker", "auto"])
def test_free_methods_agree_with_the_exact_coulomb_sum(method):
    x, q = _cloud(500, 20.0, seed=3)
    exact = K_E * coulomb_potential_direct(x, q)
    phi = electrostatic_potential(x, q, method=method, sigma=2.0, accuracy=1e-8)
    assert _rel_rms(phi, exact) < 1e-7


def test_charged_free_structure_and_float32():
    x, q = _cloud(50, 10.0, seed=4)
    q = q + 0.1
    e64 = coulomb_energy(x, q, method="chebyshev_tucker", sigma=1.5, accuracy=1e-8)
    exact = 0.5 * K_E * (q * coulomb_potential_direct(x, q)).sum()
    assert abs((e64 - exact) / exact).item() < 1e-7
    e32 = coulomb_energy(x.float(), q.float(), method="chebyshev_tucker", sigma=1.5, accuracy=1e-5)
    assert abs((e32.double() - exact) / exact).item() < 1e-5


def test_rotation_changes_the_energy_by_less_than_the_accuracy():
    x, q = _cloud(300, 20.0, seed=5)
    rot, _ = torch.linalg.qr(
        torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    )
    e = coulomb_energy(x, q, method="chebyshev_tucker", accuracy=1e-7)
    e_rot = coulomb_energy(x @ rot.T, q, method="chebyshev_tucker", accuracy=1e-7)
    assert abs((e - e_rot) / e).item() < 1e-6


def test_chebyshev_tucker_double_backward_matches_the_direct_sum():
    # training on forces differentiates the forces again (here: with respect to the charges)
    x, q = _cloud(30, 10.0, seed=6)
    x.requires_grad_(True)
    q.requires_grad_(True)

    def grad_of_force_norm(potential):
        energy = 0.5 * (q * potential(x, q)).sum()
        forces = torch.autograd.grad(energy, x, create_graph=True)[0]
        return torch.autograd.grad(forces.square().sum(), q)[0]

    approx = grad_of_force_norm(lambda p, c: chebyshev_tucker_potential(p, c, 2.0, accuracy=1e-10)[0])
    exact = grad_of_force_norm(lambda p, c: erf_potential_direct(p, c, 2.0))
    assert _rel_rms(approx, exact) < 1e-6
