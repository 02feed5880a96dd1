"""TDN through the shared physics suite (at a rank where the CP factors are exact), its measured equivariance
at the default rank, and its config."""

import pytest
import torch

from mlip.testing.models import tiny_mace
from mlip.testing.physics import rotation_error
from mlip.testing.structures import cu_au_bulk
from mlip.testing.suite import ModelPhysicsSuite


def tiny_tdn(dtype, **overrides):
    return tiny_mace(dtype, name="tdn", **overrides)


class TestTDNPhysics(ModelPhysicsSuite):
    def make_model(self, dtype):
        return tiny_tdn(dtype, cp_rank=10_000)  # reaches every non-zero fibre: exact factors


def test_default_rank_is_equivariant_to_the_fit():
    torch.manual_seed(0)
    model = tiny_tdn(torch.float64)
    err = rotation_error(model, cu_au_bulk())
    assert 0 < err < 1e-5  # fit error 5.5e-7 on this coupling (benchmarks/cp_rank.py)
    assert type(model).__name__ == "TDN"


def test_tensor_product_is_fixed_to_cp():
    with pytest.raises(ValueError, match="a TDN's tensor_product is 'cp'"):
        tiny_tdn(torch.float64, tensor_product="cg")


def test_round_trip_keeps_the_type_and_factors(tmp_path):
    import mlip
    from mlip.models import save_model
    from mlip.testing.physics import predict

    torch.manual_seed(0)
    model = tiny_tdn(torch.float64, cp_rank=20)
    save_model(model, tmp_path / "tdn.pt")
    loaded = mlip.load_model(tmp_path / "tdn.pt")
    assert type(loaded).__name__ == "TDN"
    assert predict(loaded, [cu_au_bulk()])[0]["energy"] == predict(model, [cu_au_bulk()])[0]["energy"]
