"""The run directory (mlip.training.run_dir): one training at a time, resuming keeps the history, a rerun never
mixes runs, a resumed checkpoint must match the config, checkpoints are written beside themselves."""

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from mlip.training.config import RunConfig
from mlip.training.run import run_training

TINY = {
    "model": {"name": "mace", "r_max": 4.0, "channels": 8, "max_ell": 1, "max_L": 1, "correlation": 2,
              "radial_mlp": [8]},
    "data": {"emt_frames": 12, "emt_test_frames": 2, "batch_size": 4},
    "train": {"max_epochs": 2, "progress_bar": False, "log_every_n_steps": 1},
}  # fmt: skip


def _cfg(**train) -> RunConfig:
    return RunConfig.from_dict({**TINY, "train": {**TINY["train"], **train}})


def _history(run_dir: Path) -> list[dict]:
    with open(run_dir / "logs" / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def _epochs(rows: list[dict], column: str = "val/forces_rmse") -> list[int]:
    return [int(float(r["epoch"])) for r in rows if r.get(column)]


def test_resume_appends_to_the_history(tmp_path):
    run_training(_cfg(max_epochs=2), tmp_path)
    assert _epochs(_history(tmp_path)) == [0, 1]
    run_training(_cfg(max_epochs=4), tmp_path, resume="last")
    rows = _history(tmp_path)
    assert _epochs(rows) == [0, 1, 2, 3]  # the first run's epochs are still there, once each
    steps = [int(r["step"]) for r in rows if r.get("train/loss_step")]
    assert steps == sorted(steps)
    assert len(steps) == len(set(steps))


def test_resuming_a_finished_run_keeps_its_history(tmp_path):
    run_training(_cfg(max_epochs=2), tmp_path)
    before = _history(tmp_path)
    run_training(_cfg(max_epochs=2), tmp_path, resume="last")
    assert _history(tmp_path) == before
    assert (tmp_path / "model.pt").is_file()


def test_a_new_run_into_a_used_directory_is_refused(tmp_path):
    run_training(_cfg(max_epochs=1), tmp_path)
    with pytest.raises(ValueError, match="already holds a training run.*--resume"):
        run_training(_cfg(max_epochs=1), tmp_path)


def test_resuming_with_another_model_section_names_the_difference(tmp_path):
    run_training(_cfg(max_epochs=1), tmp_path)
    other = RunConfig.from_dict({**TINY, "model": {**TINY["model"], "channels": 16}, "train": TINY["train"]})
    with pytest.raises(ValueError, match=r"model\.channels: checkpoint 8, config now 16") as info:
        run_training(other, tmp_path, resume="last")
    assert "this version of mlip" not in str(info.value)


def test_a_corrupted_checkpoint_is_a_clear_error(tmp_path):
    run_training(_cfg(max_epochs=1), tmp_path)
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        run_training(_cfg(max_epochs=2), tmp_path, resume="last")


def test_checkpoints_are_staged_in_their_own_directory(tmp_path, monkeypatch):
    """Lightning's own writer staged checkpoints in the system temporary directory and copied them across file
    systems; ours writes a temporary sibling and renames it."""
    import mlip.fileio as fileio

    staged = []
    original = fileio.open_tmp

    def spy(path, mode):
        staged.append(Path(path))
        return original(path, mode)

    monkeypatch.setattr(fileio, "open_tmp", spy)
    run_training(_cfg(max_epochs=1), tmp_path)
    ckpts = [p for p in staged if p.name.startswith(".last.ckpt")]
    assert ckpts, staged
    assert all(p.parent == tmp_path / "checkpoints" for p in ckpts)
    assert not list((tmp_path / "checkpoints").glob(".*tmp*"))  # nothing left behind


def test_two_trainings_into_one_run_directory(tmp_path):
    """The second training gets a clear error at once; the first is not disturbed."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "train": {**TINY["train"], "max_epochs": 400}}))
    run_dir = tmp_path / "run"
    import mlip

    env = dict(os.environ, PYTHONPATH=str(Path(mlip.__file__).resolve().parents[1]))  # the mlip under test
    cmd = [sys.executable, "-m", "mlip.cli.train", "--config", str(cfg), "--run-dir", str(run_dir)]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "checkpoints" / "last.ckpt").exists():  # the first run is training
            assert first.poll() is None, first.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "the first training did not start"
            time.sleep(0.2)
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert second.returncode == 2, second.stderr[-2000:]
        assert "in use by another training" in second.stderr
        assert first.poll() is None  # still running
    finally:
        first.kill()
        first.wait()
    # the lock died with the killed process: the run can be resumed at once
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    resumed = subprocess.run(
        [*cmd, "--resume", f"train.max_epochs={ckpt['epoch'] + 2}"], env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (run_dir / "model.pt").is_file()
