"""The model file: round trip, dtype conversion, and refusal of a file whose stored basis differs."""

import pytest
import torch

import mlip
from mlip.models import save_model
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
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="differs from the one this version of mlip computes"):
        mlip.load_model(tmp_path / "bad.pt")
