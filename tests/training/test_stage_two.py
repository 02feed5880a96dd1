"""Stage two: the switch follows the budget, changes weights and learning rate, survives resume and DDP."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from test_training import TINY  # tests/training is on sys.path (pytest's default "prepend" import mode)

from mlip.training.config import RunConfig
from mlip.training.run import run_training
from mlip.training.schedule import BudgetCosine
from mlip.training.stage_two import StageTwo, cap_learning_rate

ROOT = Path(__file__).resolve().parents[2]


def test_stage_two_weights_replace_only_what_is_set():
    plan = StageTwo(start=0.75, energy=1000.0, forces=None, stress=10.0)
    one = {"energy": 1.0, "forces": 100.0, "stress": 1.0, "charges": 0.0}
    assert plan.weights(one) == {"energy": 1000.0, "forces": 100.0, "stress": 10.0, "charges": 0.0}


def test_the_cap_holds_under_the_cosine_schedule_and_resets_the_plateau():
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.Adam([p], lr=0.01)
    cosine = BudgetCosine(opt, trainer_ref=lambda: None, final_factor=0.01)  # progress 0: factor 1
    cap_learning_rate(opt, [cosine], 1e-3)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3)
    opt.step()
    cosine.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3)  # the schedule would give 0.01
    opt2 = torch.optim.Adam([p], lr=5e-4)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt2)
    plateau.step(1.0)
    cap_learning_rate(opt2, [plateau], 1e-3)
    assert opt2.param_groups[0]["lr"] == pytest.approx(5e-4)  # already lower: unchanged
    assert plateau.best == plateau.mode_worse
    assert plateau.num_bad_epochs == 0


def _history(run_dir):
    with open(run_dir / "logs" / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("staged")
    train = {**TINY["train"], "max_epochs": 4, "stage_two_start": 0.5, "refit_e0s": "stage_two_and_end",
             "log_every_n_steps": 1}  # fmt: skip
    metrics = run_training(RunConfig.from_dict({**TINY, "train": train}), run_dir)
    return run_dir, metrics


def test_stage_two_starts_at_the_budget_fraction(staged):
    run_dir, metrics = staged
    # 16 EMT frames, 2 validate: 14 train in batches of 4 -> 4 steps per epoch, 16 in all; half is step 8
    assert metrics["stage_two"]["step"] == 8
    assert metrics["stage_two"]["progress"] == pytest.approx(0.5)
    assert metrics["stage_two"]["e0_refit"]["frames"] > 0
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["stage_two"]["step"] == 8
    assert ckpt["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(1e-3)
    stages = {int(r["step"]): float(r["train/stage"]) for r in _history(run_dir) if r.get("train/stage")}
    assert stages == {step: 1.0 if step < 8 else 2.0 for step in range(16)}
    lrs = [float(r["lr-Adam"]) for r in _history(run_dir) if r.get("lr-Adam")]
    assert lrs[0] == pytest.approx(0.01)
    assert lrs[-1] == pytest.approx(1e-3)


def test_the_end_refit_is_reported_and_lowers_the_training_energy_error(staged):
    _, metrics = staged
    r = metrics["e0_refit"]
    assert r["train_energy_rmse_after"] <= r["train_energy_rmse_before"]
    assert set(r["delta_e0"]) == {"Cu", "Au"}
    assert metrics["valid"]["energy_rmse_mev_per_atom"] == pytest.approx(
        r["valid_energy_rmse_after"], rel=1e-4
    )


def test_a_resumed_run_stays_in_stage_two(staged, tmp_path):
    run_dir, _ = staged
    train = {**TINY["train"], "max_epochs": 5, "stage_two_start": 0.5, "refit_e0s": "stage_two_and_end"}
    metrics = run_training(RunConfig.from_dict({**TINY, "train": train}), run_dir, resume="last")
    assert metrics["stage_two"]["step"] == 8  # the switch of the first run, not a second one
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(1e-3)


def test_without_stage_two_nothing_changes(tmp_path):
    train = {**TINY["train"], "max_epochs": 1, "refit_e0s": "none"}
    metrics = run_training(RunConfig.from_dict({**TINY, "train": train}), tmp_path)
    assert "stage_two" not in metrics
    assert "e0_refit" not in metrics


def test_stage_two_under_ddp(tmp_path):
    """Two gloo ranks switch at the same step (rank 0 decides) and fit the E0s over both shares."""
    train = {**TINY["train"], "devices": 2, "strategy": "ddp", "scheduler": "cosine", "max_epochs": 4,
             "stage_two_start": 0.5, "refit_e0s": "stage_two_and_end"}  # fmt: skip
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "train": train}))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--config", str(cfg), "--run-dir", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["stage_two"]["e0_refit"]["frames"] == 14  # both ranks' shares (7 + 7 frames, summed)
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["optimizer_states"][0]["param_groups"][0]["lr"] <= 1e-3
