import pytest
import torch

from mlip.kernels import Irreps, clebsch_gordan, spherical_harmonics, wigner_d
from mlip.kernels.cg import wigner_d_l


@pytest.mark.parametrize(
    ("l1", "l2", "l3"), [(0, 0, 0), (1, 1, 0), (1, 1, 2), (1, 2, 3), (2, 2, 2), (3, 3, 6)]
)
def test_cg_is_invariant_and_normalised(l1, l2, l3):
    c = clebsch_gordan(l1, l2, l3)
    assert torch.allclose(c.norm(), torch.tensor(1.0, dtype=torch.float64), atol=1e-14)
    rot = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3)))[
        0
    ]
    rot = rot * torch.det(rot)
    d1, d2, d3 = (wigner_d_l(l, rot) for l in (l1, l2, l3))
    assert (torch.einsum("ijk,ai,bj,ck->abc", c, d1, d2, d3) - c).abs().max() < 1e-13


def test_cg_rejects_forbidden_coupling():
    with pytest.raises(ValueError, match="no coupling"):
        clebsch_gordan(1, 1, 3)


def test_cg_matches_e3nn_sign_convention():
    from e3nn import o3

    for l1, l2, l3 in [(1, 1, 1), (1, 2, 2), (2, 3, 4)]:
        assert (clebsch_gordan(l1, l2, l3) - o3.wigner_3j(l1, l2, l3, dtype=torch.float64)).abs().max() < 1e-6


@pytest.mark.parametrize("improper", [False, True])
def test_spherical_harmonics_transform_with_wigner_d(improper):
    g = torch.Generator().manual_seed(0)
    rot = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=g))[0]
    rot = rot * torch.det(rot) * (-1 if improper else 1)
    x = torch.randn(20, 3, dtype=torch.float64, generator=g)
    irreps = Irreps.spherical_harmonics(4)
    y, y_rot = spherical_harmonics(4, x), spherical_harmonics(4, x @ rot.T)
    assert (y_rot - y @ wigner_d(irreps, rot).T).abs().max() < 1e-12
    assert torch.allclose((y**2)[:, 1:4].sum(-1), torch.full((20,), 3.0, dtype=torch.float64))
