"""Vector (cross-product) grid product: exactly the odd-sum paths, each proportional to its CG coupling."""

import pytest
import torch

from mlip.kernels import Irreps, clebsch_gordan, wigner_d
from mlip.kernels.vector_grid import VectorGridTP


def _single_degree(lmax, l, gen, channels=2):
    x = torch.zeros(3, (lmax + 1) ** 2, channels, dtype=torch.float64)
    x[:, l * l : (l + 1) ** 2] = torch.randn(3, 2 * l + 1, channels, dtype=torch.float64, generator=gen)
    return x


@pytest.mark.parametrize(("l1", "l2"), [(1, 1), (1, 2), (2, 2), (2, 3), (3, 3)])
def test_paths_are_odd_and_proportional_to_cg(l1, l2):
    gen = torch.Generator().manual_seed(l1 * 10 + l2)
    lo = l1 + l2
    tp = VectorGridTP(l1, l2, lo)
    x, y = _single_degree(l1, l1, gen), _single_degree(l2, l2, gen)
    out = tp(x, y)
    for l3 in range(lo + 1):
        block = out[:, l3 * l3 : (l3 + 1) ** 2]
        if not abs(l1 - l2) <= l3 <= l1 + l2 or (l1 + l2 + l3) % 2 == 0:
            assert block.abs().max() < 1e-12, f"{l1}x{l2}->{l3} must vanish"
            continue
        cg = torch.einsum("ijk,bic,bjc->bkc", clebsch_gordan(l1, l2, l3), x[:, l1 * l1 :], y[:, l2 * l2 :])
        beta = (block * cg).sum() / (cg * cg).sum()
        assert beta.abs() > 1e-3, f"{l1}x{l2}->{l3} should be produced"
        assert (block - beta * cg).abs().max() < 1e-10


def test_cross_product():
    gen = torch.Generator().manual_seed(0)
    x, y = _single_degree(1, 1, gen, channels=1), _single_degree(1, 1, gen, channels=1)
    out = VectorGridTP(1, 1, 1)(x, y)[:, 1:4, 0]
    cross = torch.linalg.cross(
        x[:, 1:4, 0], y[:, 1:4, 0], dim=-1
    )  # e3nn's (y, z, x) basis is a rotation of xyz
    ratio = (out * cross).sum() / (cross * cross).sum()
    assert (out - ratio * cross).abs().max() < 1e-12


def test_rotation_equivariance_and_odd_parity():
    gen = torch.Generator().manual_seed(3)
    tp = VectorGridTP(2, 2, 3)
    x = torch.randn(3, 9, 2, dtype=torch.float64, generator=gen)
    y = torch.randn(3, 9, 2, dtype=torch.float64, generator=gen)
    rot = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=gen))[0]
    rot = rot * torch.det(rot)
    d_in, d_out = wigner_d(Irreps.spherical_harmonics(2), rot), wigner_d(Irreps.spherical_harmonics(3), rot)
    out = tp(torch.einsum("ij,bjc->bic", d_in, x), torch.einsum("ij,bjc->bic", d_in, y))
    assert (out - torch.einsum("ij,bjc->bic", d_out, tp(x, y))).abs().max() < 1e-10
    parity = lambda lmax: torch.cat([torch.full((2 * l + 1,), (-1.0) ** l) for l in range(lmax + 1)])  # noqa: E731
    inverted = tp(x * parity(2)[:, None], y * parity(2)[:, None])
    assert (inverted + parity(3)[:, None] * tp(x, y)).abs().max() < 1e-10  # outputs have parity (-1)^(l+1)


def test_gradcheck():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 4, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    y = torch.randn(2, 9, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(VectorGridTP(1, 2, 2), (x, y))
