"""``mlip.predict``: batched results equal the ASE calculator's frame by frame (1e-10 in float64), in input order,
under any budget; a bad frame is reported by its index and nothing else is lost."""

import numpy as np
import pytest
import torch
from ase import Atoms

import mlip
from mlip.calculators import MLIPCalculator
from mlip.errors import MLIPInputError
from mlip.inference.predict import PredictionError, predict
from mlip.testing.models import tiny_mace
from mlip.testing.structures import cu_au_bulk, cu_slab, cu_small_cell, methanol_like


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return tiny_mace(torch.float64).eval()


def _frames():
    return [
        methanol_like(),
        cu_au_bulk(repeat=2),
        cu_slab(),
        cu_small_cell(),
        methanol_like(seed=1),
        cu_au_bulk(seed=4),
    ]


def _reference(model, atoms):
    atoms = atoms.copy()
    atoms.calc = MLIPCalculator(model)
    ref = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
    if atoms.pbc.any():
        ref["stress"] = atoms.get_stress(voigt=False)
    return ref


@pytest.mark.parametrize("max_atoms", [1, 20, 4096])
def test_batched_results_equal_single_calls_in_input_order(model, max_atoms):
    frames = _frames()
    out = mlip.predict(model, iter(frames), max_atoms=max_atoms)
    assert len(out) == len(frames)
    assert not out.failures
    for atoms, got in zip(frames, out.results):
        ref = _reference(model, atoms)
        assert got["energy"] == pytest.approx(ref["energy"], rel=1e-10)
        assert np.abs(got["forces"] - ref["forces"]).max() <= 1e-10 * max(1.0, np.abs(ref["forces"]).max())
        assert ("stress" in got) == ("stress" in ref)
        if "stress" in ref:
            assert np.abs(got["stress"] - ref["stress"]).max() <= 1e-10 * max(
                1e-3, np.abs(ref["stress"]).max()
            )


def test_edge_budget_splits_batches_and_agrees(model):
    frames = _frames()
    a = predict(model, frames, max_edges=300)
    b = predict(model, frames)
    for x, y in zip(a.results, b.results):
        assert x["energy"] == pytest.approx(y["energy"], rel=1e-12)


def _bad_frames():
    fe = cu_au_bulk()
    fe.numbers[0] = 26  # iron: unknown to the model
    overlap = Atoms("CuAu", positions=[[0, 0, 0], [0.05, 0, 0]])
    return [methanol_like(), fe, cu_au_bulk(seed=2), overlap, cu_slab(), fe.copy()]


def test_bad_frames_are_skipped_by_index_and_the_others_kept(model):
    out = predict(model, _bad_frames(), on_error="skip", max_atoms=10)
    assert [i for i, _ in out.failures] == [1, 3, 5]
    assert "Fe" in out.failures[0][1]
    assert "overlap" in out.failures[1][1]
    assert len(out) == 6
    assert [r is None for r in out.results] == [False, True, False, True, False, True]
    ref = _reference(model, cu_au_bulk(seed=2))
    assert out[2]["energy"] == pytest.approx(ref["energy"], rel=1e-10)


def test_raise_names_the_frame_and_keeps_what_was_computed(model):
    with pytest.raises(PredictionError, match=r"^frame 1: unknown element\(s\) \['Fe'\]") as info:
        predict(model, _bad_frames(), max_atoms=1)
    assert info.value.results[0] is not None
    assert isinstance(info.value, MLIPInputError)


def test_bad_arguments_are_clear_errors(model):
    with pytest.raises(MLIPInputError, match="on_error"):
        predict(model, _frames(), on_error="ignore")
    with pytest.raises(MLIPInputError, match="max_atoms"):
        predict(model, _frames(), max_atoms=0)
    with pytest.raises(MLIPInputError, match="frame 0: expected ase.Atoms"):
        predict(model, ["not atoms"])


def test_charges_of_a_long_range_model_and_float32(model):
    torch.manual_seed(1)
    lr = tiny_mace(torch.float64, long_range={"kind": "auto"}).eval()
    out = predict(lr, [methanol_like(), cu_au_bulk()])
    assert all(abs(r["charges"].sum()) < 1e-10 for r in out.results)
    f32 = predict(model, _frames()[:2], dtype="float32")
    f64 = predict(model, _frames()[:2])
    assert f32[1]["energy"] == pytest.approx(f64[1]["energy"], rel=1e-5)
    assert next(model.parameters()).dtype == torch.float64  # the module passed in is not converted


@pytest.mark.parametrize("max_atoms", [8, 4096])
def test_a_frame_the_model_refuses_is_skipped_by_its_input_index(max_atoms):
    """Issue 33 (6): a slab given to a long-range model stopped predict(on_error='skip'), and with max_atoms=8 the
    message named the index inside the batch ("structure 0") instead of the input index (2)."""
    torch.manual_seed(1)
    lr = tiny_mace(torch.float64, long_range={"kind": "auto"}).eval()
    frames = [methanol_like(), cu_au_bulk(), _wire(), methanol_like(seed=1)]  # a wire: long range refuses it
    out = predict(lr, frames, on_error="skip", max_atoms=max_atoms)
    assert [i for i, _ in out.failures] == [2]
    assert "pbc=[True, False, False]" in out.failures[0][1]
    assert out.results[2] is None
    for i in (0, 1, 3):
        alone = predict(lr, [frames[i]])[0]
        assert out.results[i]["energy"] == pytest.approx(alone["energy"], rel=1e-10)
        np.testing.assert_allclose(out.results[i]["forces"], alone["forces"], atol=1e-10)
    with pytest.raises(PredictionError, match=r"^frame 2: it has pbc=\[True, False, False\]") as err:
        predict(lr, frames, max_atoms=max_atoms)
    assert err.value.results[0] is not None  # what came before is kept


def _wire():
    """A structure periodic in one direction: the long-range term refuses it (slabs and bulk it takes)."""
    wire = cu_slab()
    wire.pbc = (True, False, False)
    return wire


def test_mlip_eval_skips_a_frame_the_model_refuses(tmp_path, capsys):
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    from mlip.cli.eval import main as eval_main
    from mlip.models import save_model

    torch.manual_seed(1)
    save_model(tiny_mace(torch.float64, long_range={"kind": "auto"}), tmp_path / "lr.pt")
    frames = [methanol_like(), cu_au_bulk(), _wire(), methanol_like(seed=1)]
    for a in frames:
        a.calc = SinglePointCalculator(a, energy=-1.0, forces=np.zeros((len(a), 3)))
    write(tmp_path / "x.extxyz", frames)
    rc = eval_main(["--model", str(tmp_path / "lr.pt"), str(tmp_path / "x.extxyz"), "--max-atoms", "8",
                    "--out", str(tmp_path / "m.json")])  # fmt: skip
    assert rc == 1
    assert "x.extxyz[2] left out" in capsys.readouterr().err
    import json

    metrics = json.loads((tmp_path / "m.json").read_text())["x.extxyz"]
    assert metrics["failed"] == [2]
    assert metrics["n_frames"] == 3


def test_a_data_file_is_predicted_through_its_frame_source(tmp_path):
    from ase.io import write

    from mlip.data import generate_emt_dataset
    from mlip.inference.predict import predict
    from mlip.testing.models import tiny_mace

    model = tiny_mace()
    atoms = [f.atoms for f in generate_emt_dataset(3, seed=2)]
    write(tmp_path / "set.extxyz", atoms)
    from ase.io import read

    from_file = predict(model, tmp_path / "set.extxyz").results
    from_atoms = predict(model, read(tmp_path / "set.extxyz", ":")).results  # extxyz rounds the positions
    assert len(from_file) == 3
    for a, b in zip(from_file, from_atoms):
        assert a["energy"] == b["energy"]
