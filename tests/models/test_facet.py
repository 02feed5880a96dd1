"""Facet through the shared physics suite (at a grid fine enough to be exact to 1e-10), plus its measured
equivariance error at the default grid and how it falls with resolution."""

import numpy as np
import pytest
import torch

from mlip.testing.models import tiny_facet
from mlip.testing.physics import predict, rotation_error
from mlip.testing.structures import cu_au_bulk
from mlip.testing.suite import ModelPhysicsSuite


class TestFacetPhysics(ModelPhysicsSuite):
    def make_model(self, dtype):
        return tiny_facet(dtype, grid_resolution=32)


class TestFacetBesselMLPPhysics(ModelPhysicsSuite):
    def make_model(self, dtype):
        return tiny_facet(dtype, grid_resolution=32, radial="mlp")


def test_rotation_error_at_default_grid_is_measured_and_falls_with_resolution():
    errors = {}
    for res in (4, 6, None, 10):
        torch.manual_seed(0)
        errors[res] = rotation_error(tiny_facet(torch.float64, grid_resolution=res), cu_au_bulk())
    # measured: 8.2e-6 at n_β = 4, 1.9e-7 at 6, 2.3e-9 at the default 2 max_L + 4 = 8, 2.4e-11 at 10
    assert 1e-12 < errors[None] < 1e-7
    assert errors[4] > errors[6] > errors[None] > errors[10]
    assert errors[10] < 1e-4 * errors[4]


def test_residual_scale_starts_at_zero_in_a_fresh_model():
    from mlip.models import build_model

    model = build_model(dict(name="facet", atomic_numbers=[29], atomic_energies=[0.0], channels=4,
                             grid_channels=4, grid_hidden=8))  # fmt: skip
    assert all(float(g.abs().max()) == 0.0 for g in model.gammas)


def test_inversion_is_exact_at_the_default_grid():
    """The grid is symmetric under r -> -r, so parity is exact at any resolution (rotations are not)."""
    from mlip.testing.physics import _transform_error

    torch.manual_seed(0)
    assert _transform_error(tiny_facet(torch.float64), cu_au_bulk(), -np.eye(3)) < 1e-10


def test_energy_changes_when_the_grid_mlp_acts():
    torch.manual_seed(0)
    a = predict(tiny_facet(torch.float64, gamma=0.0), [cu_au_bulk()])[0]["energy"]
    torch.manual_seed(0)
    b = predict(tiny_facet(torch.float64, gamma=0.7), [cu_au_bulk()])[0]["energy"]
    assert not np.isclose(a, b)


def test_unknown_option_is_rejected():
    with pytest.raises(ValueError, match="unknown facet option"):
        tiny_facet(torch.float64, correlation=3)


@pytest.mark.parametrize("mode", ["post", "none"])
def test_other_residual_norm_placements_are_exactly_equivariant_on_a_fine_grid(mode):
    torch.manual_seed(0)
    model = tiny_facet(torch.float64, grid_resolution=16, residual_norm=mode)
    assert rotation_error(model, cu_au_bulk()) < 1e-10


def test_unknown_residual_norm_is_rejected():
    with pytest.raises(ValueError, match="residual_norm must be"):
        tiny_facet(torch.float64, residual_norm="layer")
