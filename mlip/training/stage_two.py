"""The second training stage: the last part of the budget spent on energies, at a lower learning rate.

mace-torch's ``--swa`` stage (Batatia et al., MACE, NeurIPS 2022; its ``start_swa``, ``swa_energy_weight``,
``swa_lr``) switches, at a fixed epoch, to loss weights that favour energies (``λ_E = 1000``, ``λ_F = 100``) and
to a lower learning rate. Here the switch follows the budget: it happens at the first optimizer step at which the
fraction spent (:func:`mlip.training.schedule.budget_progress`, the larger of the step and wall-time fractions)
reaches ``start``, so a run stopped by ``max_time`` gets its second stage too. From then on

* the loss weights are ``energy``, ``forces``, ``stress`` (``None`` keeps the stage-one weight);
* every parameter group's learning rate is at most ``lr``: the rate of the schedule, capped (the cosine schedule
  applies the cap at each step, a plateau schedule only lowers the rate further and forgets the stage-one loss
  it compared against, since the loss changes meaning with the weights);
* EMA and the optimizer state continue.

The switch is a function of the budget spent, so a resumed run re-enters stage two by itself; the step at which it
happened is saved in checkpoints and reported in ``metrics.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["StageTwo", "cap_learning_rate"]


@dataclass(frozen=True, kw_only=True)
class StageTwo:
    """When stage two starts (``start``, a fraction of the budget in [0, 1)) and what it changes."""

    start: float
    energy: float | None = 1000.0
    forces: float | None = None
    stress: float | None = None
    lr: float | None = 1.0e-3

    @classmethod
    def from_train_config(cls, t) -> StageTwo | None:
        """From a :class:`~mlip.training.config.TrainConfig` (``None`` when ``stage_two_start`` is unset)."""
        if t.stage_two_start is None:
            return None
        return cls(
            start=t.stage_two_start, energy=t.stage_two_energy_weight, forces=t.stage_two_forces_weight,
            stress=t.stage_two_stress_weight, lr=t.stage_two_lr,
        )  # fmt: skip

    def weights(self, stage_one: dict[str, float]) -> dict[str, float]:
        """The loss weights of stage two, given those of stage one."""
        new = {"energy": self.energy, "forces": self.forces, "stress": self.stress}
        return {k: (new.get(k) if new.get(k) is not None else v) for k, v in stage_one.items()}


def cap_learning_rate(
    optimizer: torch.optim.Optimizer, schedulers, lr: float | None, *, reset_plateau: bool = True
) -> None:
    """Lower every group's rate to ``lr`` and make ``schedulers`` keep it there (see the module docstring);
    ``reset_plateau`` makes a plateau schedule forget its best loss (not on resume: its state is restored)."""
    if lr is None:
        return
    for group in optimizer.param_groups:
        group["lr"] = min(group["lr"], lr)
    for sched in schedulers:
        if hasattr(sched, "lr_cap"):  # BudgetCosine
            sched.lr_cap = lr
        if reset_plateau and isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            sched.best = sched.mode_worse
            sched.num_bad_epochs = 0
