"""Fault injection: the disk fills up part-way through each job (every file mlip writes draws on one budget of
bytes, see the ``full_disk`` fixture). The job stops with one clear line, every file is the old complete one or a
new complete one, and once there is space again a rerun continues to the same result."""

from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.io import read, write

from mlip.cli.relax import main as relax_main
from mlip.data.preprocess import preprocess
from mlip.data.store import PreprocessedDataset, verify_shard
from mlip.errors import MLIPOutputError
from mlip.models import save_model
from mlip.testing.models import tiny_mace
from mlip.training.config import RunConfig
from mlip.training.run import run_training

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "mptrj_sample"
SOURCES = [SAMPLE / "orb_mptrj_reconstructed.json", SAMPLE / "orb_mptrj_frames.extxyz"]
UNLIMITED = 10**12


@pytest.mark.parametrize("budget", [0, 300, 9000, 30000, 60000])
def test_preprocessing_on_a_full_disk(tmp_path, full_disk, budget):
    full_disk["budget"] = UNLIMITED
    preprocess(SOURCES, tmp_path / "ref", shard_size=4)
    full_disk["budget"] = budget
    with pytest.raises(MLIPOutputError, match="no space left on device"):
        preprocess(SOURCES, tmp_path / "out", shard_size=4)
    for shard in (tmp_path / "out").glob("shard-??????"):
        verify_shard(shard)  # what was written is whole
    assert not [
        p.name for p in (tmp_path / "out").iterdir() if ".tmp-" in p.name
    ]  # nothing half-written left
    full_disk["budget"] = UNLIMITED
    preprocess(SOURCES, tmp_path / "out", shard_size=4)
    a, b = PreprocessedDataset(tmp_path / "out", r_max=5.0), PreprocessedDataset(tmp_path / "ref", r_max=5.0)
    assert len(a) == len(b)
    for i in range(len(a)):
        np.testing.assert_array_equal(a.frame(i).atoms.positions, b.frame(i).atoms.positions)
        assert a.frame(i).energy == b.frame(i).energy


def test_training_on_a_full_disk_keeps_the_last_checkpoint(tmp_path, full_disk):
    raw = {
        "model": {
            "name": "mace",
            "r_max": 4.0,
            "channels": 4,
            "max_ell": 1,
            "correlation": 2,
            "radial_mlp": [8],
        },
        "data": {"emt_frames": 12, "emt_test_frames": 2, "batch_size": 4},
        "train": {"max_epochs": 1, "progress_bar": False, "log_every_n_steps": 1},
    }
    full_disk["budget"] = UNLIMITED
    run_training(RunConfig.from_dict(raw), tmp_path)
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    before = ckpt.read_bytes()
    raw["train"]["max_epochs"] = 3
    full_disk["budget"] = 20_000  # less than one checkpoint
    with pytest.raises(MLIPOutputError, match=r"\.ckpt: no space left on device"):
        run_training(RunConfig.from_dict(raw), tmp_path, resume="last")
    assert ckpt.read_bytes() == before
    full_disk["budget"] = UNLIMITED
    run_training(RunConfig.from_dict(raw), tmp_path, resume="last")
    assert torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"] == 2


def test_relaxation_on_a_full_disk_continues_when_there_is_space(tmp_path, full_disk):
    full_disk["budget"] = UNLIMITED
    torch.manual_seed(0)
    save_model(tiny_mace(torch.float64, channels=4, max_ell=2, correlation=2), tmp_path / "model.pt")
    frames = []
    for seed in range(4):
        a = bulk("Cu", "fcc", a=3.7, cubic=True)
        a.rattle(0.05, seed=seed)
        frames.append(a)
    write(tmp_path / "in.xyz", frames)
    argv = [str(tmp_path / "in.xyz"), str(tmp_path / "out.xyz"), "--model", str(tmp_path / "model.pt")]
    full_disk["budget"] = 2500  # the settings and about two structures
    assert relax_main(argv) == 2
    done = read(tmp_path / "out.xyz.partial.extxyz", ":")
    assert 0 < len(done) < 4
    full_disk["budget"] = UNLIMITED
    assert relax_main(argv) == 0
    assert [a.info["relax_index"] for a in read(tmp_path / "out.xyz", ":")] == [0, 1, 2, 3]


def _model_and_cells(tmp_path, n=2):
    torch.manual_seed(0)
    save_model(tiny_mace(torch.float64, channels=4, max_ell=1, correlation=2), tmp_path / "model.pt")
    frames = []
    for seed in range(n):
        a = bulk("Cu", "fcc", a=3.7, cubic=True)
        a.rattle(0.05, seed=seed)
        frames.append(a)
    write(tmp_path / "in.xyz", frames)
    return str(tmp_path / "model.pt"), str(tmp_path / "in.xyz")


def test_export_on_a_full_disk_keeps_the_previous_artefact(tmp_path, full_disk):
    """Issue 33 (7): torch's zip writer aborted the interpreter (SIGABRT) when the disk filled; the artefact is now
    built in memory and written through mlip's one seam (mlip-export then prints the MLIPOutputError in one line,
    tests/cli/test_console_errors.py)."""
    from mlip.deploy.export import metadata, save_artefact, trace_program
    from mlip.deploy.exported import ExportedModel

    full_disk["budget"] = UNLIMITED
    torch.manual_seed(0)
    model = tiny_mace(torch.float64, channels=4, max_ell=1, correlation=2)
    program, out = trace_program(model), tmp_path / "model.pt2"
    save_artefact(program, metadata(model, "float64"), out)
    before = out.read_bytes()
    full_disk["budget"] = 50_000
    with pytest.raises(MLIPOutputError, match="no space left on device; the previous model.pt2 is unchanged"):
        save_artefact(program, metadata(model, "float64") | {"note": "another"}, out)
    assert out.read_bytes() == before
    ExportedModel(out)  # still whole, checksum and all
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


@pytest.mark.parametrize("script", ["md", "relax"])
def test_a_full_disk_at_the_lock_file_is_one_line(tmp_path, full_disk, capsys, script):
    """Issue 33 (7): mlip-md and mlip-relax ended in an OSError traceback from the lock file's write."""
    from mlip.cli.md import main as md_main

    full_disk["budget"] = UNLIMITED
    model, src = _model_and_cells(tmp_path)
    out = tmp_path / "out.extxyz"
    argv = [src, str(out), "--model", model] + (["--steps", "4", "--interval", "2"] if script == "md" else [])
    run = md_main if script == "md" else relax_main
    full_disk["budget"] = 0
    assert run(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert ".out.extxyz.lock: no space left on device" in err[0]
    full_disk["budget"] = UNLIMITED
    assert run(argv) == 0


def test_training_with_a_full_disk_at_the_lock_file_is_one_line(tmp_path, full_disk, capsys):
    import yaml

    from mlip.cli.train import main as train_main

    full_disk["budget"] = 0
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"data": {"emt_frames": 8}, "train": {"max_epochs": 1}}))
    assert train_main(["--config", str(tmp_path / "c.yaml"), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "run/.lock: no space left on device" in err[0]


def test_md_on_a_full_disk_continues_when_there_is_space(tmp_path, full_disk):
    from mlip.cli.md import main as md_main

    full_disk["budget"] = UNLIMITED
    model, src = _model_and_cells(tmp_path)
    base = [src, "--model", model, "--steps", "40", "--interval", "10", "--engine", "torchsim"]
    assert md_main([base[0], str(tmp_path / "whole.extxyz"), *base[1:]]) == 0
    full_disk["budget"] = 6000  # the lock, the settings and a few frames
    assert md_main([base[0], str(tmp_path / "part.extxyz"), *base[1:]]) == 2
    full_disk["budget"] = UNLIMITED
    assert md_main([base[0], str(tmp_path / "part.extxyz"), *base[1:]]) == 0
    whole, part = read(tmp_path / "whole.extxyz", ":"), read(tmp_path / "part.extxyz", ":")
    assert [a.info["md_step"] for a in part] == [a.info["md_step"] for a in whole]
    for a, b in zip(whole, part):
        np.testing.assert_allclose(b.positions, a.positions, atol=1e-8)
    log = (tmp_path / "part.extxyz.log").read_text().splitlines()
    assert [int(ln.split(",")[0]) for ln in log[1:]] == [a.info["md_step"] for a in part]
