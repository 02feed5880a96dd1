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


class TestMACEAgnosticFirstPhysics(ModelPhysicsSuite):
    """mace-torch's default first layer (RealAgnosticInteractionBlock): element-dependent messages, no skip."""

    def make_model(self, dtype):
        return small_mace(dtype, first_interaction="agnostic")


class TestMACEZBLAgnesiPhysics(ModelPhysicsSuite):
    """MACE-MP-0b's additions: ZBL pair repulsion and the Agnesi distance transform."""

    def make_model(self, dtype):
        return small_mace(
            dtype, first_interaction="agnostic", pair_repulsion=True, distance_transform="agnesi"
        )


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


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tensor_product": "gaunt"}, "tensor_product must be one of"),
        ({"product_basis": "tensor"}, "product_basis must be one of"),
        ({"tensor_product": "vector_grid", "product_basis": "gaunt"}, "needs natural-parity messages"),
        ({"tensor_product": "cg", "cp_rank": 10}, "cp_rank=10 needs tensor_product 'cp'"),
    ],
)
def test_bad_product_options_are_rejected(overrides, message):
    with pytest.raises(ValueError, match=message):
        small_mace(torch.float64, **overrides)


def test_cp_default_rank_is_nearly_equivariant():
    """At the default rank 7L² the CP fit of MACE's second-layer coupling is not exact; its error is measured
    (benchmarks/cp_rank.py) and bounded here: a rotation changes forces by < 1e-5 of their size."""
    import numpy as np

    from mlip.testing.physics import predict
    from mlip.testing.structures import cu_au_bulk

    model = small_mace(torch.float64, tensor_product="cp")
    atoms = cu_au_bulk()
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    q *= np.linalg.det(q)
    moved = atoms.copy()
    moved.positions = atoms.positions @ q.T
    moved.set_cell(atoms.cell.array @ q.T, scale_atoms=False)
    a, b = predict(model, [atoms, moved])
    err = np.abs(b["forces"] - a["forces"] @ q.T).max() / np.abs(a["forces"]).max()
    assert 0 < err < 1e-5


class TestMACESplineRadialPhysics(ModelPhysicsSuite):
    def make_model(self, dtype):
        return small_mace(dtype, radial="spline", num_spline_knots=12)


def test_bad_radial_options_are_rejected():
    with pytest.raises(ValueError, match="radial must be"):
        small_mace(torch.float64, radial="bessel")
    with pytest.raises(ValueError, match="num_spline_knots"):
        small_mace(torch.float64, radial="spline", num_spline_knots=3)


@pytest.mark.parametrize(
    ("fields", "named"),
    [({"tensor_product": "gaunt_fft"}, "tensor_product"), ({"product_basis": "gaunt"}, "product_basis")],
)
def test_a_backend_a_kernel_lacks_is_refused_in_the_config(fields, named):
    from mlip.errors import MLIPInputError

    with pytest.raises(MLIPInputError, match=f"model.{named} .* runs with backend 'auto' or 'torch'"):
        tiny_mace(torch.float64, backend="native", **fields)
