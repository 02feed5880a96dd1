"""Spherical-grid MLP mixing: exact inversion, rotation error that falls with the grid resolution, shapes and
checks."""

import pytest
import torch

from mlip.kernels import Irreps, wigner_d
from mlip.nn.grid_mlp import GridMLP

IRREPS = Irreps("0e+1o+2e")


def _layer(resolution=None, irreps_in=IRREPS):
    torch.manual_seed(0)
    return GridMLP(irreps_in=irreps_in, irreps_out=IRREPS, channels_in=6, channels_out=5, grid_channels=8,
                   hidden=16, heads=2, resolution=resolution, dtype=torch.float64)  # fmt: skip


def _error(layer, rot, irreps_in=IRREPS):
    h = torch.randn(10, irreps_in.dim, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    d_in, d_out = wigner_d(irreps_in, rot), wigner_d(IRREPS, rot)
    lhs = layer(torch.einsum("ij,njc->nic", d_in, h))
    rhs = torch.einsum("ij,njc->nic", d_out, layer(h))
    return float(((lhs - rhs).abs().max() / rhs.abs().max()).detach())


def _rotation(seed=3):
    q, _ = torch.linalg.qr(
        torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    )
    return q * torch.det(q)


def test_inversion_is_exact():
    assert _error(_layer(), -torch.eye(3, dtype=torch.float64)) < 1e-12


def test_rotation_error_falls_as_the_grid_is_refined():
    rot = _rotation()
    errors = [_error(_layer(resolution=r), rot) for r in (4, 8, 16, 32)]
    assert errors[0] > 1e-6  # approximate, not exact: the check can fail
    assert all(a > b for a, b in zip(errors, errors[1:]))
    assert errors[-1] < 1e-3 * errors[0]


def test_pseudotensors_bypass_the_grid_and_stay_equivariant():
    irreps_in = Irreps("0e+1o+1e")
    layer = GridMLP(irreps_in=irreps_in, irreps_out=Irreps("0e+1o+1e"), channels_in=6, channels_out=5,
                    grid_channels=8, resolution=24, dtype=torch.float64)  # fmt: skip
    h = torch.randn(4, irreps_in.dim, 6, dtype=torch.float64)
    inv = -torch.eye(3, dtype=torch.float64)
    d = wigner_d(irreps_in, inv)
    out = layer(torch.einsum("ij,njc->nic", d, h))
    assert (out - torch.einsum("ij,njc->nic", d, layer(h))).abs().max() < 1e-12


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="natural-parity"):
        GridMLP(irreps_in=Irreps("1e"), irreps_out=IRREPS, channels_in=2, channels_out=2)
    with pytest.raises(ValueError, match="divisible"):
        GridMLP(irreps_in=IRREPS, irreps_out=IRREPS, channels_in=2, channels_out=2, grid_channels=9, heads=2)
    with pytest.raises(ValueError, match="cannot represent"):
        GridMLP(irreps_in=IRREPS, irreps_out=IRREPS, channels_in=2, channels_out=2, resolution=2)
