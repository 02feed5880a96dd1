"""MACE import: mace-torch models exported by ``mlip/interop/mace_exporter.py`` (fixtures written by
``tests/fixtures/mace/make_fixtures.py`` in a mace-torch environment, with mace-torch's float64 outputs on a
molecule, a bulk cell and a slab) give the same energies, forces and stress in mlip, and what the importer cannot
convert is refused by name."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms

from mlip.errors import MLIPInputError
from mlip.inference.predict import predict
from mlip.interop.mace_import import model_from_export, read_export

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mace"
# MACE-MP-0 medium's and MACE-OFF small's hyperparameters, a tiny model, and a tiny one with MACE-MP-0b's ZBL and
# Agnesi transform and two heads, and the tiny one stored in float32 (as the foundation models ship), with generic
# (unrounded) float64 weights, and built in float32 then converted with .double() (issue 33)
CASES = [("mp0_medium", None), ("off_small", None), ("tiny", None), ("tiny_mp0b", "mp"), ("tiny_mp0b", "pbe"),
         ("tiny_f32", None), ("tiny_f64_generic", None), ("tiny_f32_doubled", None)]  # fmt: skip


def _reference(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.reference.json").read_text())


def _atoms(item: dict) -> Atoms:
    return Atoms(numbers=item["numbers"], positions=item["positions"], cell=item["cell"], pbc=item["pbc"])


@pytest.mark.parametrize(("name", "head"), CASES)
def test_imported_model_equals_mace_torch(name, head):
    model = model_from_export(FIXTURES / name, head=head)
    assert next(model.parameters()).dtype == torch.float64
    ref = {k: v for k, v in _reference(name).items() if head is None or k.endswith(f"@{head}")}
    assert len(ref) == 3
    frames = [_atoms(item) for item in ref.values()]
    results = predict(model, frames).results
    for (key, item), out in zip(ref.items(), results):
        # parity target 1e-6 relative; measured about 1e-15 (every conversion is exact up to rounding)
        assert abs(out["energy"] - item["energy"]) <= 1e-6 * abs(item["energy"]), key
        forces = np.asarray(item["forces"])
        assert np.abs(out["forces"] - forces).max() <= 1e-6 * np.abs(forces).max(), key
        if "stress" in item:
            stress = np.asarray(item["stress"])
            tol = 1e-6 * np.abs(stress).max()
            if name in ("tiny_f32", "tiny_f32_doubled"):
                # a float32 file holds mace-torch's Bessel frequencies n pi / r_max rounded to float32, and
                # mace-torch computes with those; mlip recomputes them exactly. Here the cell is near its equilibrium
                # (|stress| <= 7e-5 eV/A^3), so that rounding shows as 1.5e-10 eV/A^3 (measured): 2e-6 of the
                # stress, 2e-8 GPa. Energies and forces meet 1e-6 relative.
                tol = 1e-9
            assert np.abs(out["stress"] - stress).max() <= tol, key


def test_float64_parity_with_generic_weights_and_the_precision_of_float32_bases():
    """Issue 33 (14, 15): a model built in float32 and converted with .double() was refused (residual 3.3e-08 against
    1e-9); generic float64 weights meet float64 parity (the docs' claim, measured here); what float32-precision bases
    reach is reported and measured."""
    for name, precision, residual, e_tol, f_tol in (
        ("tiny_f64_generic", "float64", 1e-12, 1e-12, 1e-12),
        ("tiny_f32_doubled", "float32", 1e-6, 5e-8, 1e-6),
    ):
        report: dict = {}
        model = model_from_export(FIXTURES / name, report=report)
        assert report["basis_precision"] == precision
        assert report["basis_residual"] < residual
        ref = _reference(name)
        results = predict(model, [_atoms(item) for item in ref.values()]).results
        for item, out in zip(ref.values(), results):
            assert abs(out["energy"] - item["energy"]) < e_tol
            forces = np.asarray(item["forces"])
            assert np.abs(out["forces"] - forces).max() < f_tol * np.abs(forces).max()


def test_an_imported_model_saves_and_loads_as_any_mlip_model(tmp_path):
    from mlip.models import load_model, save_model

    model = model_from_export(FIXTURES / "tiny")
    save_model(model, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt", dtype="float64")
    frames = [_atoms(item) for item in _reference("tiny").values()]
    for a, b in zip(predict(model, frames).results, predict(loaded, frames).results):
        assert a["energy"] == b["energy"]
        np.testing.assert_array_equal(a["forces"], b["forces"])


def test_the_first_layer_is_mace_torch_s_non_residual_block():
    desc, _ = read_export(FIXTURES / "tiny")
    assert desc["interactions"][0]["class"] == "RealAgnosticInteractionBlock"
    assert json.loads((FIXTURES / "mp0_medium.json").read_text())["pair_repulsion"]
    model = model_from_export(FIXTURES / "tiny")
    assert model.config.first_interaction == "agnostic"
    assert not model.interactions[0].residual


def _copy(tmp_path, name="tiny"):
    for suffix in (".json", ".npz"):
        shutil.copy(FIXTURES / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    return tmp_path / name


def test_unsupported_blocks_are_named(tmp_path):
    prefix = _copy(tmp_path)
    desc = json.loads(prefix.with_suffix(".json").read_text())
    desc["interactions"][1]["class"] = "RealAgnosticDensityResidualInteractionBlock"
    prefix.with_suffix(".json").write_text(json.dumps(desc))
    with pytest.raises(MLIPInputError, match="RealAgnosticDensityResidualInteractionBlock"):
        model_from_export(prefix)
    desc["interactions"][1]["class"] = "RealAgnosticResidualInteractionBlock"
    desc["distance_transform"] = "SoftTransform"
    prefix.with_suffix(".json").write_text(json.dumps(desc))
    with pytest.raises(MLIPInputError, match="SoftTransform"):
        model_from_export(prefix)


def test_wrong_files_are_refused(tmp_path):
    with pytest.raises(MLIPInputError, match="not found"):
        model_from_export(tmp_path / "missing")
    prefix = _copy(tmp_path)
    desc = json.loads(prefix.with_suffix(".json").read_text())
    prefix.with_suffix(".json").write_text(json.dumps({**desc, "version": 99}))
    with pytest.raises(MLIPInputError, match="version 99"):
        model_from_export(prefix)
    prefix.with_suffix(".json").write_text(json.dumps(desc))
    with pytest.raises(MLIPInputError, match="no head 'pbe'"):
        model_from_export(prefix, head="pbe")
    prefix.with_suffix(".npz").write_bytes(b"not an npz")
    with pytest.raises(MLIPInputError, match="not a readable array file"):
        model_from_export(prefix)
