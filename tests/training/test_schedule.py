"""The budget-following cosine schedule: its formula, its progress measure and a real run that ends on lr_final."""

import copy
import math
import time

import pytest
import torch
from lightning.pytorch.callbacks import Timer
from test_training import TINY  # tests/training is on sys.path (pytest's default "prepend" import mode)

from mlip.training.config import RunConfig
from mlip.training.run import run_training
from mlip.training.schedule import BudgetCosine, budget_progress, cosine_factor, scaled_lr


def test_cosine_factor_endpoints_and_midpoint():
    assert cosine_factor(0.0, 0.01) == pytest.approx(1.0)
    assert cosine_factor(1.0, 0.01) == pytest.approx(0.01)
    assert cosine_factor(0.5, 0.0) == pytest.approx(0.5)
    assert cosine_factor(2.0, 0.1) == pytest.approx(0.1)  # clamped past the end
    values = [cosine_factor(p / 10, 0.05) for p in range(11)]
    assert all(a > b for a, b in zip(values, values[1:]))


class _FakeTrainer:
    def __init__(self, *, global_step, total, callbacks=()):
        self.global_step = global_step
        self.estimated_stepping_batches = total
        self.callbacks = list(callbacks)


def test_progress_is_the_larger_of_steps_and_time():
    assert budget_progress(None) == 0.0
    assert budget_progress(_FakeTrainer(global_step=25, total=100)) == pytest.approx(0.25)
    timer = Timer(duration={"seconds": 100})
    timer._start_time["train"] = time.monotonic() - 60.0
    p = budget_progress(_FakeTrainer(global_step=25, total=100, callbacks=[timer]))
    assert 0.59 < p < 0.7
    assert budget_progress(_FakeTrainer(global_step=90, total=100, callbacks=[timer])) == pytest.approx(0.9)
    assert budget_progress(_FakeTrainer(global_step=3, total=math.inf)) == 0.0


def test_scheduler_sets_the_learning_rate_from_the_trainer():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.Adam([p], lr=0.02)
    trainer = _FakeTrainer(global_step=0, total=10)
    sched = BudgetCosine(opt, trainer_ref=lambda: trainer, final_factor=0.1)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.02)
    trainer.global_step = 5
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.02 * 0.55)
    trainer.global_step = 10
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.002)
    assert "trainer_ref" not in sched.state_dict()
    with pytest.raises(ValueError, match="lr_final_factor"):
        BudgetCosine(opt, trainer_ref=lambda: None, final_factor=1.5)


def test_a_run_ends_at_the_final_learning_rate(tmp_path):
    raw = copy.deepcopy(TINY)
    raw["train"].update(scheduler="cosine", lr=0.01, lr_final_factor=0.05)
    run_training(RunConfig.from_dict(raw), tmp_path)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.01 * 0.05)


def test_learning_rate_scaling_rules():
    assert scaled_lr(0.01, 4, "none") == 0.01
    assert scaled_lr(0.01, 4, "linear") == pytest.approx(0.04)
    assert scaled_lr(0.01, 4, "sqrt") == pytest.approx(0.02)
    assert scaled_lr(0.01, 1, "sqrt") == 0.01
    with pytest.raises(ValueError, match="lr_scaling"):
        scaled_lr(0.01, 2, "cube")
