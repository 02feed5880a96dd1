"""Slabs (two periodic directions): 3D Ewald in a padded cell with the Yeh–Berkowitz correction
(:mod:`mlip.longrange.slab`), against independent references, in float64."""

import math

import pytest
import torch

from mlip.longrange.api import coulomb_energy
from mlip.longrange.constants import K_E
from mlip.longrange.ewald import ewald_potential
from mlip.longrange.slab import slab_cell, slab_potential

F64 = torch.float64
PBC = torch.tensor([True, True, False])


def _slab(n=12, a=6.0, thickness=5.0, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(n, 3, generator=g, dtype=dtype) * torch.tensor([a, a, thickness], dtype=dtype)
    q = torch.randn(n, generator=g, dtype=dtype)
    q = q - q.mean()
    cell = torch.diag(torch.tensor([a, a, 30.0], dtype=dtype))
    return pos, q, cell


def _energy(pos, q, cell, **kw):
    return 0.5 * K_E * (q * slab_potential(pos, q, cell, PBC, accuracy=1e-10, **kw)).sum()


def test_the_correction_is_the_infinite_gap_limit_of_plain_3d_ewald():
    """Plain 3D Ewald of the padded cell is the 2D sum minus ``2π k_e M_z²/V`` (and exponentially small terms),
    so ``E(L) = E_2D + c/L`` for a tall cell of height ``L``: the extrapolation of two heights, which never uses the
    correction, is the 2D sum."""
    pos, q, cell = _slab()

    def plain(height):
        padded = torch.diag(torch.tensor([6.0, 6.0, height], dtype=F64))
        return float(0.5 * K_E * (q * ewald_potential(pos, q, padded, accuracy=1e-10)).sum())

    e1, e2 = plain(400.0), plain(800.0)
    reference = (400.0 * e1 - 800.0 * e2) / (400.0 - 800.0)
    assert abs(e1 - reference) > 1e-3  # the uncorrected sum is off by the replicas' dipoles
    assert float(_energy(pos, q, cell, gap=100.0)) == pytest.approx(reference, rel=1e-10)
    assert float(_energy(pos, q, cell)) == pytest.approx(reference, rel=1e-5)  # the default gap


def test_default_gap_forces_agree_with_a_four_times_taller_cell():
    pos, q, cell = _slab(seed=1)
    padded, _ = slab_cell(pos, cell, PBC)
    gap = float(padded[2, 2]) - float(pos[:, 2].max() - pos[:, 2].min())
    forces = []
    for g in (None, 4.0 * gap):
        x = pos.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(_energy(x, q, cell, gap=g), x)
        forces.append(-grad)
    scale = forces[1].abs().max()
    assert (forces[0] - forces[1]).abs().max() <= 1e-5 * scale


def test_a_slab_is_invariant_under_translation_and_where_its_cell_vector_points():
    pos, q, cell = _slab(seed=2)
    e0 = _energy(pos, q, cell)
    shifted = pos + torch.tensor([1.3, -2.1, 7.5], dtype=F64)  # along the normal too: no wall to cross
    torch.testing.assert_close(_energy(shifted, q, cell), e0, rtol=1e-9, atol=0)
    tilted = cell.clone()
    tilted[2] = torch.tensor([3.0, -2.0, 9.0], dtype=F64)  # the free vector only names the free direction
    torch.testing.assert_close(_energy(pos, q, tilted), e0, rtol=1e-12, atol=0)


def test_a_rotated_slab_has_the_same_energy_and_rotated_forces():
    pos, q, cell = _slab(seed=3)
    angle = 0.7
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=F64)  # tilts the periodic plane
    x0, x1 = pos.clone().requires_grad_(True), (pos @ rot.T).clone().requires_grad_(True)
    e0 = _energy(x0, q, cell)
    e1 = _energy(x1, q, cell @ rot.T)
    torch.testing.assert_close(e1, e0, rtol=1e-9, atol=0)
    (g0,) = torch.autograd.grad(e0, x0)
    (g1,) = torch.autograd.grad(e1, x1)
    torch.testing.assert_close(g1, g0 @ rot.T, rtol=1e-7, atol=1e-9)


def test_the_public_entry_point_takes_slabs_and_refuses_charged_ones_and_wires():
    pos, q, cell = _slab(seed=4)
    torch.testing.assert_close(coulomb_energy(pos, q, cell, PBC, accuracy=1e-10), _energy(pos, q, cell))
    with pytest.raises(ValueError, match="charged slab"):
        coulomb_energy(pos, q + 0.1, cell, PBC)
    with pytest.raises(ValueError, match="a wire"):
        coulomb_energy(pos, q, cell, torch.tensor([False, False, True]))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_float32_follows_float64(dtype):
    pos, q, cell = _slab(seed=5)
    ref = coulomb_energy(pos, q, cell, PBC, accuracy=1e-6)
    got = coulomb_energy(pos.to(dtype), q.to(dtype), cell.to(dtype), PBC, accuracy=1e-6)
    assert float(got) == pytest.approx(float(ref), rel=1e-5 if dtype == torch.float32 else 1e-12)
