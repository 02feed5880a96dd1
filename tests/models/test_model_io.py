"""The model file: round trip, dtype conversion, and refusal of a file whose stored basis differs."""

import pytest
import torch

import mlip
from mlip.models import save_model
from mlip.models.io import payload_checksum
from mlip.testing.models import tiny_mace as small_mace
from mlip.testing.physics import predict
from mlip.testing.structures import cu_au_bulk


def test_round_trip_and_dtype(tmp_path):
    torch.manual_seed(1)
    model = small_mace(torch.float64)
    save_model(model, tmp_path / "m.pt", provenance={"note": "test"})
    loaded = mlip.load_model(tmp_path / "m.pt")
    a, b = predict(model, [cu_au_bulk()])[0], predict(loaded, [cu_au_bulk()])[0]
    assert a["energy"] == b["energy"]
    assert loaded.atomic_numbers == [1, 6, 8, 29, 79]
    assert loaded.r_max == 4.0
    as32 = mlip.load_model(tmp_path / "m.pt", dtype="float32")
    assert next(as32.parameters()).dtype == torch.float32
    assert abs(predict(as32, [cu_au_bulk()])[0]["energy"] - a["energy"]) < 1e-4 * abs(a["energy"])
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    assert payload["provenance"]["note"] == "test"
    assert payload["format"] == "mlip-model"


def test_stored_basis_mismatch_is_refused(tmp_path):
    model = small_mace(torch.float64)
    save_model(model, tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    key = next(k for k in payload["state_dict"] if k.endswith("contraction.U4"))
    payload["state_dict"][key] = payload["state_dict"][key] * 1.1
    payload["checksum"] = payload_checksum(payload["config"], payload["state_dict"])  # a consistent file
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="differs from the one this version of mlip computes"):
        mlip.load_model(tmp_path / "bad.pt")


@pytest.mark.parametrize(
    "overrides",
    [{"tensor_product": "gaunt_fft"}, {"tensor_product": "vector_grid"}, {"tensor_product": "cp", "cp_rank": 20},
     {"product_basis": "gaunt"}],
)  # fmt: skip
def test_round_trip_of_every_product_variant(tmp_path, overrides):
    torch.manual_seed(2)
    model = small_mace(torch.float64, **overrides)
    save_model(model, tmp_path / "m.pt")
    loaded = mlip.load_model(tmp_path / "m.pt")
    assert loaded.config.to_dict() == model.config.to_dict()
    a, b = predict(model, [cu_au_bulk()])[0], predict(loaded, [cu_au_bulk()])[0]
    assert a["energy"] == b["energy"]


def test_cp_factors_are_stored_with_the_model(tmp_path):
    model = small_mace(torch.float64, tensor_product="cp", cp_rank=20)
    save_model(model, tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    key = next(k for k in payload["state_dict"] if k.endswith("tp.A"))
    payload["state_dict"][key] = payload["state_dict"][key] * 1.01
    payload["checksum"] = payload_checksum(payload["config"], payload["state_dict"])  # a consistent file
    torch.save(payload, tmp_path / "edited.pt")
    edited = mlip.load_model(tmp_path / "edited.pt")
    a, b = predict(model, [cu_au_bulk()])[0], predict(edited, [cu_au_bulk()])[0]
    assert a["energy"] != b["energy"]  # the stored factors are used, not a refit
