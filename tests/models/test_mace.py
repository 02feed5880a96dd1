"""MACE through the shared physics suite, plus model-specific checks."""

import pytest
import torch

from mlip.testing.models import tiny_mace
from mlip.testing.suite import ModelPhysicsSuite

small_mace = tiny_mace


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


class TestMACEGauntGridPhysics(ModelPhysicsSuite):
    def make_model(self, dtype):
        return small_mace(dtype, tensor_product="gaunt_grid")


class TestMACEGauntFFTPhysics(ModelPhysicsSuite):
    def make_model(self, dtype):
        return small_mace(dtype, tensor_product="gaunt_fft")


class TestMACEVectorGridPhysics(ModelPhysicsSuite):
    def make_model(self, dtype):
        return small_mace(dtype, tensor_product="vector_grid")


class TestMACEExactCPPhysics(ModelPhysicsSuite):
    """CP at a rank that reaches every non-zero fibre: the exact decomposition, so exactly equivariant."""

    def make_model(self, dtype):
        return small_mace(dtype, tensor_product="cp", cp_rank=10_000)


class TestMACEGauntProductBasisPhysics(ModelPhysicsSuite):
    def make_model(self, dtype):
        return small_mace(dtype, product_basis="gaunt")
