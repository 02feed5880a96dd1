"""MACE through the shared physics suite, plus model-specific checks."""

import pytest
import torch

from mlip.models import build_model
from mlip.testing.suite import ModelPhysicsSuite


def small_mace(dtype: torch.dtype, **overrides):
    config = dict(
        name="mace",
        atomic_numbers=[1, 6, 8, 29, 79],
        atomic_energies=[-1.0, -2.0, -3.0, -4.0, -5.0],
        r_max=4.0,
        num_bessel=6,
        max_ell=3,
        channels=8,
        max_L=1,
        correlation=3,
        num_interactions=2,
        radial_mlp=[16, 16],
        avg_num_neighbors=20.0,
        scale=1.3,
        shift=0.1,
        dtype=str(dtype).replace("torch.", ""),
    )
    config.update(overrides)
    return build_model(config)


class TestMACEPhysics(ModelPhysicsSuite):
    def make_model(self, dtype):
        return small_mace(dtype)


def test_unknown_element_is_rejected():
    from ase import Atoms

    from mlip.testing.physics import predict

    model = small_mace(torch.float64)
    with pytest.raises(ValueError, match=r"unknown element\(s\) \['Fe'\]"):
        predict(model, [Atoms("Fe2", positions=[[0, 0, 0], [2, 0, 0]])])


def test_isolated_atom_energy_is_e0():
    from ase import Atoms

    from mlip.testing.physics import predict

    model = small_mace(torch.float64)
    [out] = predict(model, [Atoms("Au", positions=[[0, 0, 0]])])
    # no neighbours: interaction energy is the learned readout of the embedding alone, plus E0 and shift
    assert out["forces"].shape == (1, 3)
    assert abs(out["forces"]).max() == 0.0
