"""Fault injection: jobs killed (SIGKILL to the whole process group) part-way through a write, at byte positions
drawn at random, then continued. Every file is always either absent, the old complete one or a new complete one;
the rerun continues (or, with nothing to continue from, refuses) and ends with the same result as an uninterrupted
run.

The kill positions come from ``MLIP_FAULT_SEED`` (default fixed, so CI is repeatable; set it to explore). Each test
prints the budgets it drew and what it found.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import mlip
from mlip.data.preprocess import preprocess
from mlip.data.readers import read_frames
from mlip.data.store import PreprocessedDataset, verify_shard
from mlip.fileio import TMP_MARK
from mlip.testing.models import tiny_mace

CRASH = Path(__file__).with_name("crash.py")
SMALL = {"channels": 4, "max_ell": 2, "correlation": 2}  # as crash.py's save job
SEED = int(os.environ.get("MLIP_FAULT_SEED", "20261201"))
SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "mptrj_sample"
SOURCES = [SAMPLE / "orb_mptrj_reconstructed.json", SAMPLE / "orb_mptrj_frames.extxyz"]


def _crash(budget: int, job: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(Path(mlip.__file__).resolve().parents[1]))
    return subprocess.run(
        [sys.executable, str(CRASH), str(budget), job, *args], cwd=str(cwd), env=env, capture_output=True,
        text=True, timeout=600, start_new_session=True,
    )  # fmt: skip


def _wrote(proc: subprocess.CompletedProcess) -> int:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return int(next(line for line in proc.stdout.splitlines() if line.startswith("WROTE")).split()[1])


def _budgets(total: int, n: int, salt: int) -> list[int]:
    rng = np.random.default_rng([SEED, salt])
    return sorted(int(b) for b in rng.integers(1, total, size=n))


# ---- training -----------------------------------------------------------------------------------------------------

TRAIN = {
    "model": {"name": "mace", "r_max": 4.0, "channels": 4, "max_ell": 1, "correlation": 2, "radial_mlp": [8]},
    "data": {"emt_frames": 12, "emt_test_frames": 2, "batch_size": 4},
    "train": {"max_epochs": 3, "progress_bar": False, "log_every_n_steps": 1, "checkpoint_every_n_steps": 1},
}


def _check_run_dir(run: Path) -> dict:
    """Every file of a run directory is complete (or absent); returns what exists."""
    found = {}
    ckpt = run / "checkpoints" / "last.ckpt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        found["step"] = state["global_step"]
        assert {"epoch", "global_step", "state_dict"} <= set(state)
    if (run / "model.pt").exists():
        mlip.load_model(run / "model.pt")
        found["model"] = True
    if (run / "metrics.json").exists():
        json.loads((run / "metrics.json").read_text())
    if (run / "parity.png").exists():
        assert (run / "parity.png").read_bytes().endswith(b"IEND\xaeB`\x82")
    if (run / "logs" / "metrics.csv").exists():
        with open(run / "logs" / "metrics.csv") as fh:
            rows = list(csv.reader(fh))
        assert all(len(r) == len(rows[0]) for r in rows), "a torn row in metrics.csv"
    if (run / "logs" / "hparams.yaml").exists():
        yaml.safe_load((run / "logs" / "hparams.yaml").read_text())
    return found


def _history_epochs(run: Path) -> list[int]:
    with open(run / "logs" / "metrics.csv") as fh:
        return [int(float(r["epoch"])) for r in csv.DictReader(fh) if r.get("val/forces_rmse")]


def test_training_killed_mid_write_resumes_to_the_end(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(TRAIN))
    total = _wrote(
        _crash(-1, "train", "--config", str(cfg), "--run-dir", str(tmp_path / "ref"), cwd=tmp_path)
    )
    assert _history_epochs(tmp_path / "ref") == [0, 1, 2]
    report = []
    for k, budget in enumerate(_budgets(total, 2, salt=1)):
        run = tmp_path / f"run{k}"
        argv = ["--config", str(cfg), "--run-dir", str(run)]
        killed = _crash(budget, "train", *argv, cwd=tmp_path)
        assert killed.returncode == -9, killed.stderr[-3000:]
        found = _check_run_dir(run)
        if "step" in found:
            again = _crash(-1, "train", *argv, "--resume", cwd=tmp_path)
            assert again.returncode == 0, again.stderr[-3000:]
        else:  # killed before the first checkpoint: nothing to continue, so a rerun is refused
            again = _crash(-1, "train", *argv, cwd=tmp_path)
            assert again.returncode in (0, 2), again.stderr[-3000:]
            if again.returncode == 2:
                assert "stopped before its first checkpoint" in again.stderr
                continue
        _check_run_dir(run)
        assert _history_epochs(run) == [0, 1, 2]  # every epoch logged once: nothing lost, nothing doubled
        assert not [p for p in run.rglob("*") if TMP_MARK in p.name]  # stale temporaries were cleared
        report.append((budget, found.get("step")))
    print(f"training: {total} bytes per run; kills at {report} (budget, checkpoint step found)")


# ---- preprocessing --------------------------------------------------------------------------------------------------


def _same_dataset(a: Path, b: Path) -> None:
    da, db = PreprocessedDataset(a, r_max=5.0), PreprocessedDataset(b, r_max=5.0)
    assert len(da) == len(db)
    for i in range(len(da)):
        fa, fb = da.frame(i), db.frame(i)
        np.testing.assert_array_equal(fa.atoms.positions, fb.atoms.positions)
        np.testing.assert_array_equal(fa.forces, fb.forces)
        assert fa.energy == fb.energy
        assert fa.source == fb.source


@pytest.mark.parametrize("workers", [1, 2])
def test_preprocessing_killed_mid_write_reruns_to_the_same_dataset(tmp_path, workers):
    args = [*map(str, SOURCES), "--shard-size", "4", "--workers", str(workers)]
    total = _wrote(_crash(-1, "preprocess", *args[:2], str(tmp_path / "ref"), *args[2:], cwd=tmp_path))
    report = []
    for k, budget in enumerate(_budgets(total, 3, salt=10 + workers)):
        out = tmp_path / f"out{k}"
        killed = _crash(budget, "preprocess", *args[:2], str(out), *args[2:], cwd=tmp_path)
        assert killed.returncode == -9, killed.stderr[-3000:]
        complete = [
            p for p in out.glob("shard-*") if p.is_dir() and TMP_MARK not in p.name and ".tmp-" not in p.name
        ]
        for shard in complete:  # a shard that exists is whole
            verify_shard(shard)
        if (out / "manifest.json").exists():
            PreprocessedDataset(out, r_max=5.0)
        preprocess(SOURCES, out, shard_size=4, workers=workers)
        _same_dataset(out, tmp_path / "ref")
        assert not [p for p in out.iterdir() if ".tmp-" in p.name]
        report.append((budget, len(complete)))
    assert PreprocessedDataset(tmp_path / "ref", r_max=5.0).manifest["n_frames"] == sum(
        len(read_frames(s)) for s in SOURCES
    )
    print(f"preprocess, {workers} worker(s): {total} bytes; kills at {report} (budget, shards found whole)")


# ---- the model file -----------------------------------------------------------------------------------------------


def test_a_model_file_killed_mid_save_is_the_old_or_the_new_one(tmp_path):
    path = tmp_path / "model.pt"
    total = _wrote(_crash(-1, "save", str(path), "6", cwd=tmp_path))
    seeds = []
    for budget in _budgets(total, 6, salt=20):
        path.unlink(missing_ok=True)
        killed = _crash(budget, "save", str(path), "6", cwd=tmp_path)
        assert killed.returncode == -9
        if not path.exists():  # killed during the first save: nothing was ever renamed into place
            seeds.append(None)
            continue
        model = mlip.load_model(path)  # a whole file, whose checksum matches
        seed = torch.load(path, weights_only=True)["provenance"]["seed"]
        torch.manual_seed(seed)
        expected = tiny_mace(torch.float64, **SMALL).state_dict()
        assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())
        seeds.append(seed)
    print(f"model saves: {total} bytes for 6 saves; the file after each kill held model {seeds}")


# ---- mlip-md, mlip-relax, mlip-export ----------------------------------------------------------------------------


def _cells(tmp_path, n):
    from ase.build import bulk
    from ase.io import write

    frames = []
    for seed in range(n):
        a = bulk("Cu", "fcc", a=3.7, cubic=True)
        a.rattle(0.05, seed=seed)
        frames.append(a)
    write(tmp_path / "in.xyz", frames)
    torch.manual_seed(0)
    from mlip.models import save_model

    save_model(tiny_mace(torch.float64, **SMALL), tmp_path / "model.pt")


@pytest.mark.parametrize("engine", ["torchsim"])  # the ASE engine writes through the same _write and _resume
def test_md_killed_mid_write_continues_with_log_and_trajectory_agreeing(tmp_path, engine):
    """Issue 33 (9): a kill between a frame and its log line lost the log line."""
    from ase.io import read

    _cells(tmp_path, 1 if engine == "ase" else 2)
    args = ["in.xyz", "OUT", "--model", "model.pt", "--steps", "30", "--interval", "5", "--engine", engine]
    from mlip.cli.md import main as md_main

    with pytest.MonkeyPatch.context() as mp:  # the uninterrupted run, in this process
        mp.chdir(tmp_path)
        assert md_main([a.replace("OUT", "whole.extxyz") for a in args]) == 0
    total = sum((tmp_path / f"whole.extxyz{s}").stat().st_size for s in ("", ".log", ".md.json"))
    whole = read(tmp_path / "whole.extxyz", ":")
    report = []
    for k, budget in enumerate(_budgets(total, 1, salt=30)):
        out = f"part{k}.extxyz"
        killed = _crash(budget, "md", *[a.replace("OUT", out) for a in args], cwd=tmp_path)
        assert killed.returncode == -9
        done = _crash(-1, "md", *[a.replace("OUT", out) for a in args], cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        part = read(tmp_path / out, ":")
        assert [a.info["md_step"] for a in part] == [a.info["md_step"] for a in whole]
        for a, b in zip(whole, part):
            np.testing.assert_allclose(b.positions, a.positions, atol=1e-8)
        rows = (tmp_path / f"{out}.log").read_text().splitlines()[1:]
        assert [(int(r.split(",")[0]), int(r.split(",")[2])) for r in rows] == [
            (a.info["md_step"], a.info["md_system"]) for a in part
        ]
        report.append(budget)
    print(f"mlip-md ({engine}): {total} bytes; killed at {report}, each rerun equal to the uninterrupted run")


def test_relax_killed_mid_write_continues_to_the_same_result(tmp_path):
    from ase.io import read

    _cells(tmp_path, 3)
    args = ["in.xyz", "OUT", "--model", "model.pt", "--engine", "ase", "--fmax", "0.1", "--steps", "200"]
    total = _wrote(_crash(-1, "relax", *[a.replace("OUT", "whole.extxyz") for a in args], cwd=tmp_path))
    whole = read(tmp_path / "whole.extxyz", ":")
    for k, budget in enumerate(_budgets(total, 1, salt=40)):
        out = f"part{k}.extxyz"
        assert _crash(budget, "relax", *[a.replace("OUT", out) for a in args], cwd=tmp_path).returncode == -9
        done = _crash(-1, "relax", *[a.replace("OUT", out) for a in args], cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        part = read(tmp_path / out, ":")
        assert [a.info["relax_index"] for a in part] == [0, 1, 2]
        for a, b in zip(whole, part):
            np.testing.assert_allclose(b.positions, a.positions, atol=1e-10)


def test_export_killed_mid_write_leaves_the_old_artefact(tmp_path):
    """A kill while mlip-export writes over an existing file leaves that file as it was (one export process; the
    artefact of this small model is far larger than the budgets drawn)."""
    _cells(tmp_path, 1)
    out = tmp_path / "model.pt2"
    out.write_bytes(b"the previous artefact\n")
    (budget,) = _budgets(50_000, 1, salt=50)
    assert _crash(budget, "export", "model.pt", out.name, cwd=tmp_path).returncode == -9
    assert out.read_bytes() == b"the previous artefact\n"
    print(f"mlip-export: killed at byte {budget}; the previous file intact")
