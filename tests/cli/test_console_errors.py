"""Every console script answers ordinary user errors with one line on stderr and exit status 2, no traceback
(mlip.cli.console_main), and checks its configuration and outputs before it reads any data or does any work."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from mlip.cli.eval import main as eval_main
from mlip.cli.preprocess import main as preprocess_main
from mlip.cli.relax import main as relax_main
from mlip.cli.train import main as train_main
from mlip.cli.train import parse_args, raw_config
from mlip.models import save_model
from mlip.testing.models import tiny_mace
from mlip.training.config import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    torch.manual_seed(0)
    save_model(tiny_mace(torch.float64, channels=4, max_ell=2, correlation=2), d / "model.pt")
    (d / "broken.pt").write_bytes(b"PK\x03\x04 this is not a model")
    labelled = []
    for seed in range(3):
        a = bulk("Cu", "fcc", a=3.6, cubic=True)
        a.rattle(0.05, seed=seed)
        a.calc = SinglePointCalculator(a, energy=-3.5 * len(a), forces=np.zeros((len(a), 3)))
        labelled.append(a)
    write(d / "labelled.xyz", labelled)
    write(d / "unlabelled.xyz", [bulk("Cu", "fcc", a=3.6, cubic=True) for _ in range(2)])
    iso = Atoms("Cu", positions=[[0, 0, 0]])
    iso.calc = SinglePointCalculator(iso, energy=-1.0)
    iso.info["config_type"] = "IsolatedAtom"
    write(d / "isolated.xyz", [iso])
    (d / "a_directory").mkdir()
    write(d / "a_directory" / "part1.xyz", labelled)
    (d / "bad.yaml").write_text("train: {lr: 0.01\n")
    return d


def _assert_one_line_error(capsys, rc, prog, *fragments):
    err = capsys.readouterr().err
    assert rc == 2, f"exit status {rc}, stderr: {err}"
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture
def no_training(monkeypatch):
    """Config errors must be found before any data is read: training must not even start."""
    import mlip.training.run as run

    def refuse(*args, **kwargs):
        raise AssertionError("training started (data read) before the config was validated")

    monkeypatch.setattr(run, "run_training", refuse)
    monkeypatch.setattr(run, "prepare_data", refuse)


@pytest.mark.parametrize(
    ("override", "fragments"),
    [
        ("train.max_time=1:30", ["train.max_time", "90", "quote it"]),
        ("data.batch_size=0", ["data.batch_size", ">= 1"]),
        ("data.batch_size=-3", ["data.batch_size", "-3"]),
        ("train.lr=abc", ["train.lr", "'abc'"]),
        ("train.ema_decay=1.5", ["train.ema_decay"]),
        ("train.loss=l1", ["train.loss", "mse"]),
        ("model.channels=many", ["model.channels"]),
        ("model.name=schnet", ["unknown model", "schnet"]),
        ("data.e0s=avg", ["data.e0s"]),
        ("data.test_files=one.xyz", ["data.test_files", "list"]),
        ("train.devices=0", ["train.devices"]),
        ("train.lr", ["section.key=value"]),
        ("train.committee=0", ["train.committee", ">= 1"]),
        ("data.replay_fraction=0", ["data.replay_fraction"]),
        ("data.replay_file=old.xyz", ["data.replay_file needs train.init_from"]),
        ("train.adapter={kind: dora}", ["train.adapter.kind", "dora"]),
        ("train.adapter={kind: lora, rank: 2}", ["train.adapter needs train.init_from"]),
        ("train.init_refit_e0s=true", ["train.init_refit_e0s needs train.init_from"]),
    ],
)
def test_bad_config_values_are_one_line_errors_before_any_data_is_read(
    override, fragments, capsys, no_training, tmp_path
):
    rc = train_main(
        ["--run-dir", str(tmp_path / "run"), f"data.train_file={SHARED / '3bpa/train_300K.xyz'}", override]
    )
    _assert_one_line_error(capsys, rc, "train.py", *fragments)


def _mace_file(tmp_path):
    from mlip.models import build_model, save_model

    path = tmp_path / "mace.pt"
    if not path.exists():
        save_model(build_model({"name": "mace", "atomic_numbers": [29, 79], "atomic_energies": [0.0, 0.0],
                                "channels": 4, "radial_mlp": [4]}), path)  # fmt: skip
    return path


def test_train_py_user_errors(capsys, files, tmp_path):
    cases = [
        (["--run-dir", "/dev/full"], ["/dev/full", "not a directory"]),
        (["--config", str(tmp_path / "missing.yaml")], ["missing.yaml", "no such file"]),
        (["--config", str(files / "bad.yaml")], ["bad.yaml", "line"]),
        ([f"data.train_file={tmp_path / 'nowhere.xyz'}"], ["data.train_file", "nowhere.xyz"]),
        ([f"data.train_file={files / 'a_directory'}"], ["a_directory", "is a directory", "mlip-preprocess"]),
        (["--resume", str(tmp_path / "none.ckpt")], ["cannot resume", "none.ckpt"]),
        ([f"train.init_from={tmp_path / 'none.pt'}"], ["train.init_from", "none.pt"]),
        (
            ["model.name=facet", f"train.init_from={_mace_file(tmp_path)}"],
            ["'mace' model, but model.name is 'facet'"],
        ),
        (
            [f"train.init_from={_mace_file(tmp_path)}", "train.freeze=[readout]"],
            ["train.freeze", "'readout'"],
        ),
    ]
    for i, (argv, fragments) in enumerate(cases):
        run_dir = [] if "--run-dir" in argv else ["--run-dir", str(tmp_path / f"run{i}")]
        rc = train_main([*run_dir, *argv, "data.emt_frames=4", "data.emt_test_frames=1"])
        _assert_one_line_error(capsys, rc, "train.py", *fragments)


def test_a_directory_of_extxyz_files_is_not_called_an_unfinished_preprocessing(files, capsys, tmp_path):
    rc = train_main(["--run-dir", str(tmp_path / "run"), f"data.train_file={files / 'a_directory'}"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "rerun mlip-preprocess" not in err
    assert "part1.xyz" in err


def test_a_model_override_merges_into_the_default_model():
    raw = raw_config(parse_args(["model.channels=64"]))
    assert raw["model"] == {**DEFAULT_MODEL, "channels": 64}


def test_a_model_override_merges_into_the_yaml_model(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {name: mace, r_max: 5.5, correlation: 3}\n")
    raw = raw_config(parse_args(["--config", str(cfg), "model.channels=8"]))
    assert raw["model"] == {"name": "mace", "r_max": 5.5, "correlation": 3, "channels": 8}


def test_resume_does_not_swallow_the_next_override():
    args = parse_args(["--resume", "train.max_epochs=5"])
    assert args.resume == "last"
    assert args.overrides == ["train.max_epochs=5"]
    args = parse_args(["--resume", "checkpoints/epoch=3-step=100.ckpt", "train.max_epochs=5"])
    assert args.resume == "checkpoints/epoch=3-step=100.ckpt"


def test_mlip_eval_user_errors(capsys, files, tmp_path):
    model, labelled = str(files / "model.pt"), str(files / "labelled.xyz")
    cases = [
        (["--model", str(tmp_path / "none.pt"), labelled], ["none.pt"]),
        (["--model", str(files / "broken.pt"), labelled], ["broken.pt", "not a readable mlip model file"]),
        (["--model", model, str(tmp_path / "missing.xyz")], ["missing.xyz"]),
        (
            ["--model", model, labelled, "--out", str(tmp_path / "no" / "dir" / "m.json")],
            ["m.json", "does not exist"],
        ),
        (["--model", model, labelled, "--energy-key", "DFT_energy"], ["DFT_energy", "is in no frame"]),
        (["--model", model, str(files / "unlabelled.xyz")], ["nothing could be scored", "unlabelled.xyz"]),
        (["--model", model, str(files / "isolated.xyz")], ["nothing could be scored", "isolated.xyz"]),
    ]
    for argv, fragments in cases:
        rc = eval_main(argv)
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("mlip-eval: error:")]
        assert rc == 2, (argv, err)
        assert "Traceback" not in err
        assert len(lines) == 1, err
        for fragment in fragments:
            assert fragment in lines[0], (fragment, lines[0])


def test_mlip_relax_user_errors(capsys, files, tmp_path):
    model, labelled = str(files / "model.pt"), str(files / "labelled.xyz")
    cases = [
        (
            [labelled, str(tmp_path / "missing_dir" / "out.xyz"), "--model", model],
            ["missing_dir", "does not exist"],
        ),
        ([labelled, str(tmp_path / "out.notaformat"), "--model", model], ["out.notaformat", "format"]),
        ([str(tmp_path / "none.xyz"), str(tmp_path / "out.xyz"), "--model", model], ["none.xyz"]),
        ([labelled, str(tmp_path / "out.xyz"), "--model", str(files / "broken.pt")], ["broken.pt"]),
    ]
    for argv, fragments in cases:
        rc = relax_main(argv)
        _assert_one_line_error(capsys, rc, "mlip-relax", *fragments)


def test_mlip_preprocess_user_errors(capsys, files, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    cases = [
        ([str(tmp_path / "none.xyz"), str(tmp_path / "out")], ["none.xyz"]),
        ([str(files / "labelled.xyz"), str(a_file)], ["a_file", "not a directory"]),
        ([str(files / "labelled.xyz"), str(tmp_path / "out2"), "--shard-size", "0"], ["shard_size"]),
    ]
    for argv, fragments in cases:
        rc = preprocess_main(argv)
        _assert_one_line_error(capsys, rc, "mlip-preprocess", *fragments)


def test_debug_shows_the_traceback(files, tmp_path):
    from mlip.errors import MLIPInputError

    with pytest.raises(MLIPInputError, match="none.pt"):
        eval_main(["--model", str(tmp_path / "none.pt"), str(files / "labelled.xyz"), "--debug"])


def test_console_scripts_exit_2_with_one_line(files, tmp_path):
    """The real entry points, as a user runs them."""
    runs = [
        [sys.executable, str(ROOT / "train.py"), "--run-dir", str(tmp_path / "r"), "train.max_time=1:30"],
        [
            sys.executable,
            "-m",
            "mlip.cli.eval",
            "--model",
            str(tmp_path / "x.pt"),
            str(files / "labelled.xyz"),
        ],
        [sys.executable, "-m", "mlip.cli.preprocess", str(tmp_path / "none.xyz"), str(tmp_path / "out")],
    ]
    for cmd in runs:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
        assert proc.returncode == 2, proc.stderr[-2000:]
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, proc.stderr[-2000:]
        assert "error:" in lines[0]
        assert "Traceback" not in proc.stderr


def test_mlip_eval_reports_a_bad_frame_and_scores_the_rest(files, tmp_path, capsys):
    frames = []
    for seed in range(3):
        a = bulk("Cu", "fcc", a=3.6, cubic=True)
        a.rattle(0.05, seed=seed)
        if seed == 1:
            a.positions[1] = a.positions[0] + 0.01  # overlapping atoms
        a.calc = SinglePointCalculator(a, energy=-3.5 * len(a), forces=np.zeros((len(a), 3)))
        frames.append(a)
    write(tmp_path / "mixed.xyz", frames)
    out = tmp_path / "m.json"
    rc = eval_main(["--model", str(files / "model.pt"), str(tmp_path / "mixed.xyz"), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "mixed.xyz[1]" in err
    assert "overlapping" in err
    metrics = json.loads(out.read_text())["mixed.xyz"]
    assert metrics["n_frames"] == 2
    assert metrics["failed"] == [1]


def _cu_files(tmp_path):
    import torch
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    from mlip.models import save_model
    from mlip.testing.models import tiny_mace

    torch.manual_seed(0)
    save_model(tiny_mace(torch.float64, channels=4, max_ell=1, correlation=2), tmp_path / "m.pt")
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.calc = SinglePointCalculator(atoms, energy=-1.0, forces=atoms.positions * 0.0)
    write(tmp_path / "x.extxyz", atoms)
    return str(tmp_path / "m.pt"), str(tmp_path / "x.extxyz")


@pytest.mark.parametrize("device", ["banana", "cuda:0", "cuda"])
def test_an_unusable_device_is_one_line(tmp_path, capsys, device):
    """Issue 33 (10): --device cuda on a CPU-only torch and --device banana gave tracebacks (predict an
    AssertionError)."""
    import torch

    from mlip.cli.eval import main as eval_main
    from mlip.cli.md import main as md_main
    from mlip.cli.relax import main as relax_main
    from mlip.errors import MLIPInputError
    from mlip.inference.predict import predict

    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    m, x = _cu_files(tmp_path)
    for run in (
        lambda: relax_main([x, str(tmp_path / "r.extxyz"), "--model", m, "--device", device]),
        lambda: md_main([x, str(tmp_path / "md.extxyz"), "--model", m, "--steps", "2", "--device", device]),
        lambda: eval_main(["--model", m, x, "--device", device]),
    ):
        assert run() == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert "device" in err, err
    with pytest.raises(MLIPInputError, match="device"):
        predict(m, [], device=device)


def test_mace_python_that_cannot_run_and_an_unwritable_export_are_one_line(tmp_path, capsys):
    """Issue 33 (10): --mace-python naming a directory or a non-executable file (PermissionError), and
    mlip-export into /proc."""
    from mlip.cli.export import main as export_main
    from mlip.cli.import_mace import main as import_main

    m, _ = _cu_files(tmp_path)
    plain = tmp_path / "python"
    plain.write_text("not a program\n")
    for python, needle in ((tmp_path, "is a directory"), (plain, "is not executable")):
        assert import_main([m, str(tmp_path / "o.pt"), "--mace-python", str(python)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert needle in err, err
    assert export_main([m, "/proc/self/model.pt2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "cannot write output file /proc/self/model.pt2" in err
