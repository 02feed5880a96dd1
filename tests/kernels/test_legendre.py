"""High-degree spherical harmonics (beyond e3nn's l = 12): normalisation, orthogonality, rotation behaviour, and
the Gaunt/CG identity through them."""

import pytest
import torch

from mlip.kernels import spherical_harmonics
from mlip.kernels.cg import E3NN_LMAX, wigner_d_l
from mlip.kernels.gaunt import SphereGrid
from mlip.kernels.legendre import high_degree_harmonics


def test_component_normalisation_and_orthogonality_up_to_degree_16():
    points, weights = SphereGrid.exact_for(32).points_and_weights()
    y = spherical_harmonics(16, points)
    assert y.shape == (points.shape[0], 17**2)
    gram = torch.einsum("g,gi,gj->ij", weights, y, y) / (4 * torch.pi)
    assert (gram - torch.eye(17**2, dtype=gram.dtype)).abs().max() < 1e-12


@pytest.mark.parametrize("l", [E3NN_LMAX + 1, 16])
def test_degree_l_block_rotates_with_an_orthogonal_wigner_matrix(l):
    g = torch.Generator().manual_seed(l)
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=g))
    q = q * torch.det(q)
    d = wigner_d_l(l, q)
    assert (d @ d.T - torch.eye(2 * l + 1, dtype=d.dtype)).abs().max() < 1e-10
    v = torch.randn(20, 3, dtype=torch.float64, generator=g)
    assert (high_degree_harmonics(l, v @ q.T) - high_degree_harmonics(l, v) @ d.T).abs().max() < 1e-9


def test_same_formula_reproduces_e3nn_norms_at_low_degree():
    v = torch.randn(7, 3, dtype=torch.float64)
    for l in (1, 5, 12):
        ours = high_degree_harmonics(l, v)
        assert (ours.pow(2).sum(-1) - (2 * l + 1)).abs().max() < 1e-10
        # same span as e3nn's degree-l harmonics: an orthogonal change of basis maps one onto the other
        theirs = spherical_harmonics(l, v)[:, l * l :]
        pts = torch.randn(4 * (2 * l + 1), 3, dtype=torch.float64)
        m = torch.linalg.lstsq(
            high_degree_harmonics(l, pts), spherical_harmonics(l, pts)[:, l * l :]
        ).solution
        assert (ours @ m - theirs).abs().max() < 1e-9
