"""``mlip-export``: a torch-only artefact with the eager model's energies, forces and stress (1e-10 relative in
float64; in float32 1e-6, or twice the eager float32 model's own distance from float64 where that is larger), on
a molecule, a periodic bulk cell and a slab; it runs in a virtual environment with torch and without mlip; bad
inputs are clear errors."""

import json
import os
import subprocess
import textwrap
import venv

import numpy as np
import pytest
import torch

from mlip.cli.export import main as export_main
from mlip.deploy.export import contract_inputs, export_model
from mlip.deploy.exported import ExportedModel, read_metadata
from mlip.errors import MLIPInputError
from mlip.models import convert_model, save_model
from mlip.testing.models import tiny_facet, tiny_mace
from mlip.testing.physics import predict
from mlip.testing.structures import cu_au_bulk, cu_slab, methanol_like

STRUCTURES = (methanol_like, lambda: cu_au_bulk(repeat=2), cu_slab)


def _exported(atoms_list, art: ExportedModel) -> list[dict]:
    outs = [art.compute(a) for a in atoms_list]
    return [
        {"energy": float(o["energy"]), "forces": o["forces"].numpy(), "stress": o["stress"].numpy()}
        for o in outs
    ]


def _max_rel(a, b, key) -> float:
    scale = max(float(np.max(np.abs(r[key]))) for r in a)
    return max(float(np.max(np.abs(np.asarray(x[key]) - np.asarray(y[key])))) for x, y in zip(a, b)) / scale


# MACE in float64 is checked by test_artefact_runs_with_torch_only (the same structures, outside mlip).
BACKBONES = {
    ("mace", torch.float32): lambda dtype: tiny_mace(dtype),
    ("facet", torch.float32): lambda dtype: tiny_facet(dtype),
    ("tdn", torch.float64): lambda dtype: tiny_mace(dtype, name="tdn"),
}


@pytest.mark.parametrize(
    ("name", "dtype"), sorted(BACKBONES, key=str), ids=lambda v: str(v).replace("torch.", "")
)
def test_exported_program_matches_eager(tmp_path, name, dtype):
    atoms = [make() for make in STRUCTURES]
    torch.manual_seed(0)
    model = BACKBONES[name, dtype](torch.float64).eval()
    tol = dict.fromkeys(("energy", "forces", "stress"), 1e-10)
    if dtype == torch.float32:
        reference = predict(model, atoms, stress=True)
        model = convert_model(model, dtype=torch.float32)
    eager = predict(model, atoms, stress=True)  # the model as a user runs it (Backend.AUTO)
    if dtype == torch.float32:
        tol = {key: max(1e-6, 2.0 * _max_rel(reference, eager, key)) for key in tol}
    meta = export_model(model, tmp_path / "m.pt2")
    assert meta["dtype"] == str(dtype).replace("torch.", "")
    art = ExportedModel(tmp_path / "m.pt2")
    assert art.atomic_numbers == model.atomic_numbers
    assert art.r_max == model.r_max
    got = _exported(atoms, art)
    for key, limit in tol.items():
        assert _max_rel(eager, got, key) < limit, key
    bulk = art.compute(atoms[1])
    volume = abs(float(np.linalg.det(atoms[1].cell.array)))
    assert torch.allclose(bulk["virial"], -volume * bulk["stress"], rtol=1e-12, atol=1e-12)
    assert float(bulk["node_energy"].sum()) == pytest.approx(float(bulk["energy"]), rel=1e-12)


@pytest.fixture(scope="module")
def mace_artefact(tmp_path_factory):
    """A float64 MACE model file and its artefact, written by the console script."""
    root = tmp_path_factory.mktemp("export")
    torch.manual_seed(0)
    model = tiny_mace(torch.float64)
    save_model(model, root / "model.pt")
    assert export_main([str(root / "model.pt"), str(root / "model.pt2")]) == 0
    return model, root


@pytest.mark.slow
def test_artefact_runs_with_torch_only(mace_artefact, tmp_path):
    """A fresh virtual environment with ``pip install torch==2.13.0`` and nothing else: mlip (and NumPy) cannot
    be imported there, and the artefact gives the eager model's results."""
    model, root = mace_artefact
    atoms = [make() for make in STRUCTURES]
    torch.save([contract_inputs(a, model.r_max) for a in atoms], tmp_path / "inputs.pt")
    env_dir = tmp_path / "torch-only"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", f"torch=={torch.__version__.split('+')[0]}"], check=True
    )
    script = textwrap.dedent(
        """
        import importlib.util, json, sys, torch
        assert importlib.util.find_spec("mlip") is None and importlib.util.find_spec("numpy") is None
        meta = {"mlip_export.json": ""}
        program = torch.export.load(sys.argv[1], extra_files=meta).module()
        meta = json.loads(meta["mlip_export.json"])
        outs = [program(*inputs) for inputs in torch.load(sys.argv[2])]
        torch.save([{k: v.detach() for k, v in o.items()} for o in outs], sys.argv[3])
        print(json.dumps(meta))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [python, "-c", script, str(root / "model.pt2"), str(tmp_path / "inputs.pt"), str(tmp_path / "out.pt")],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["atomic_numbers"] == model.atomic_numbers
    outs = torch.load(tmp_path / "out.pt")
    got = [
        {"energy": float(o["energy"]), "forces": o["forces"].numpy(), "stress": o["stress"].numpy()}
        for o in outs
    ]
    eager = predict(model.eval(), atoms, stress=True)
    for key in ("energy", "forces", "stress"):
        assert _max_rel(eager, got, key) < 1e-10, key


def test_unknown_element_and_wrong_dtype_are_clear_errors(mace_artefact):
    _, root = mace_artefact
    art = ExportedModel(root / "model.pt2")
    atoms = methanol_like()
    inputs = list(contract_inputs(atoms, art.r_max))
    inputs[3] = inputs[3].clone()
    inputs[3][0] = 26  # Fe
    with pytest.raises(MLIPInputError, match=r"atomic numbers \[26\] are not among"):
        art(*inputs)
    with pytest.raises(RuntimeError, match="unknown element"):  # the program alone, without mlip's checks
        art.program(*inputs)
    inputs = list(contract_inputs(atoms, art.r_max))
    inputs[0] = inputs[0].float()
    with pytest.raises(MLIPInputError, match=r"takes positions as torch.float64 .* got torch.float32"):
        art(*inputs)
    inputs = list(contract_inputs(atoms, art.r_max))
    with pytest.raises(MLIPInputError, match=r"edge_shifts must be"):
        art(*inputs[:5], inputs[5][:-1])


def test_export_refuses_other_model_format_versions_and_bad_files(mace_artefact, tmp_path, capsys):
    _, root = mace_artefact
    payload = torch.load(root / "model.pt", weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    assert export_main([str(tmp_path / "future.pt"), str(tmp_path / "x.pt2")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mlip-export: error:")
    assert "format version 99" in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "x.pt2").exists()
    assert export_main([str(root / "model.pt"), str(tmp_path / "no" / "x.pt2")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(MLIPInputError, match="not an exported mlip model|not a readable"):
        read_metadata(root / "model.pt")


def _with_metadata(src, dst, **changes) -> None:
    """Copy the artefact ``src`` to ``dst`` with ``changes`` made to its ``mlip_export.json`` (a valid zip: the
    entries are written again, CRCs included)."""
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename.endswith("extra/mlip_export.json"):
                data = json.dumps({**json.loads(data), **changes}).encode()
            zout.writestr(item, data)


def test_artefact_of_another_contract_version_is_refused(mace_artefact, tmp_path):
    _, root = mace_artefact
    _with_metadata(root / "model.pt2", tmp_path / "v2.pt2", contract_version=2)
    with pytest.raises(MLIPInputError, match="contract version 2; this mlip runs version 1"):
        ExportedModel(tmp_path / "v2.pt2")


def test_long_range_models_are_refused(tmp_path):
    model = tiny_mace(torch.float64, long_range={"kind": "auto"})
    with pytest.raises(MLIPInputError, match="long-range"):
        export_model(model, tmp_path / "lr.pt2")
    assert not (tmp_path / "lr.pt2").exists()


def _flip_byte_in(path, dst, entry_suffix: str) -> None:
    """Copy ``path`` to ``dst`` with one byte changed in the middle of the data of the first entry whose name
    ends with ``entry_suffix`` (the zip's CRC and every header left as they were)."""
    import zipfile

    with zipfile.ZipFile(path) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith(entry_suffix))
    raw = bytearray(path.read_bytes())
    name_len, extra_len = (
        int.from_bytes(raw[info.header_offset + 26 : info.header_offset + 28], "little"),
        int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little"),
    )
    start = info.header_offset + 30 + name_len + extra_len
    raw[start + info.compress_size // 2] ^= 0x40
    dst.write_bytes(bytes(raw))


def test_a_damaged_artefact_is_refused(mace_artefact, tmp_path):
    """Issue 33 (8): one flipped byte inside a stored weight loaded silently and changed the energy."""
    _, root = mace_artefact
    _flip_byte_in(root / "model.pt2", tmp_path / "damaged.pt2", "data/weights/weight_3")
    with pytest.raises(MLIPInputError, match=r"damaged\.pt2 .*(damaged|checksum)"):
        ExportedModel(tmp_path / "damaged.pt2")
    meta = read_metadata(root / "model.pt2")
    assert len(meta["sha256"]) == 64


def test_altered_metadata_is_refused(mace_artefact, tmp_path):
    """A cutoff changed in the metadata (a valid zip, CRCs rewritten) no longer matches the recorded SHA-256."""
    import zipfile

    _, root = mace_artefact
    _with_metadata(root / "model.pt2", tmp_path / "edited.pt2", r_max=2.0)
    with pytest.raises(MLIPInputError, match="does not match its checksum"):
        ExportedModel(tmp_path / "edited.pt2")
    names = zipfile.ZipFile(root / "model.pt2").namelist()
    assert all(n.startswith("archive/") for n in names)  # not the temporary file's name


def test_exported_model_checks_atom_count_and_edge_indices(mace_artefact):
    """Issue 33 (11): zero atoms and out-of-range edge indices gave PyTorch's RuntimeError / IndexError."""
    _, root = mace_artefact
    art = ExportedModel(root / "model.pt2")
    inputs = list(contract_inputs(methanol_like(), art.r_max))
    empty = [inputs[0][:0], inputs[1], inputs[2], inputs[3][:0], inputs[4][:, :0], inputs[5][:0]]
    with pytest.raises(MLIPInputError, match=r"N >= 1"):
        art(*empty)
    for bad in (-1, len(inputs[0])):
        edges = inputs[4].clone()
        edges[0, 0] = bad
        with pytest.raises(MLIPInputError, match=r"edge_index holds atom indices .* must lie in \[0, 6\)"):
            art(*inputs[:4], edges, inputs[5])


def test_a_pt2_given_as_a_model_file_names_the_right_loader(mace_artefact):
    from mlip.calculators import MLIPCalculator

    _, root = mace_artefact
    with pytest.raises(MLIPInputError, match="exported artefact.*ExportedModel"):
        MLIPCalculator(root / "model.pt2")


class _Fixed:
    """A stand-in for a traced program whose module returns fixed outputs."""

    def __init__(self, outs):
        self.outs = outs

    def module(self):
        return lambda *a: self.outs


def _eager_outputs(model, dtype):
    import mlip.deploy.export as export

    inputs = contract_inputs(export._grid_sample(model.atomic_numbers, (2, 2, 3), 2.2, seed=1), model.r_max)
    return export._Program(convert_model(model, dtype=dtype, backend="torch").eval())(*inputs)


def test_a_real_parity_failure_is_a_user_error_naming_the_output():
    """Issue 33 (13): a program that disagrees with the eager model raised RuntimeError (a traceback from
    mlip-export); it is an MLIPInputError, one line from the console script."""
    import mlip.deploy.export as export

    torch.manual_seed(0)
    model = tiny_mace(torch.float64, channels=4, max_ell=1, correlation=2)
    off = {k: v.detach() * (1 + 1e-8) for k, v in _eager_outputs(model, "float64").items()}
    with pytest.raises(
        MLIPInputError, match=r"^export: the traced program's energy differs .* bound 1\.0e-10"
    ):
        export._check_against_eager(_Fixed(off), model, "float64")


def test_float32_parity_bound_follows_the_models_own_rounding(monkeypatch):
    """The float32 bound is max(1e-6, 2 x the eager float32-vs-float64 distance): a program exactly as far from
    the float32 model as float32 itself is from float64 passes, twice as far plus a margin fails."""
    import mlip.deploy.export as export

    torch.manual_seed(0)
    model = convert_model(tiny_mace(torch.float64), dtype=torch.float32)
    f32, f64 = _eager_outputs(model, "float32"), _eager_outputs(model, "float64")
    # the float64 model's outputs: the float32 program is off by exactly the float32 model's own distance
    export._check_against_eager(_Fixed({k: v.float() for k, v in f64.items()}), model, "float32")
    scale = float(f32["energy"].abs().max())
    own = float((f32["energy"] - f64["energy"]).abs().max()) / scale
    shift = {k: v.detach().clone() for k, v in f32.items()}
    shift["energy"] = shift["energy"] + scale * max(1e-6, 2 * own) * 1.5
    with pytest.raises(MLIPInputError, match="energy differs"):
        export._check_against_eager(_Fixed(shift), model, "float32")
