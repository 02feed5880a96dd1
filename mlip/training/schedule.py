"""Learning-rate schedules that follow the training budget, whichever of epochs or wall time ends first.

A cosine schedule tied to ``max_epochs`` is useless in a run that is stopped by ``max_time`` (the usual case for a
fixed compute budget): with ``max_epochs: 100000`` it never leaves its first plateau. :class:`BudgetCosine`
anneals on the *fraction of the budget spent*,

.. math::

    p = \\max\\Big(\\frac{\\text{steps done}}{\\text{steps in } max\\_epochs},\\;
                  \\frac{t_\\text{elapsed}}{max\\_time}\\Big) \\in [0, 1],
    \\qquad
    \\eta(p) = \\eta_0 \\Big[f + (1 - f)\\,\\tfrac12\\big(1 + \\cos \\pi p\\big)\\Big],

with ``f = lr_final_factor``, so the learning rate reaches ``f η_0`` exactly when the run stops. The elapsed time is
Lightning's own :class:`~lightning.pytorch.callbacks.Timer` (the one ``max_time`` installs), which is saved in
checkpoints, so a resumed run continues the schedule where it stopped.
"""

from __future__ import annotations

import math

import torch

__all__ = ["BudgetCosine", "budget_progress", "cosine_factor", "scaled_lr"]


def scaled_lr(lr: float, world_size: int, rule: str) -> float:
    """The learning rate for a global batch ``world_size`` times the one ``lr`` was tuned for.

    ``none``: unchanged. ``linear``: ``lr · k`` (Goyal et al. 2017, for SGD). ``sqrt``: ``lr · √k``, the rule that
    the random-matrix analysis of Granziol et al. ("Learning Rates as a Function of Batch Size", JMLR 2022) gives
    for adaptive optimisers such as Adam.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if rule == "none":
        return lr
    if rule == "linear":
        return lr * world_size
    if rule == "sqrt":
        return lr * math.sqrt(world_size)
    raise ValueError(f"unknown lr_scaling {rule!r}; use 'none', 'linear' or 'sqrt'")


def cosine_factor(progress: float, final_factor: float) -> float:
    """Multiplier of the initial learning rate at budget fraction ``progress`` (clamped to [0, 1])."""
    p = min(max(progress, 0.0), 1.0)
    return final_factor + (1.0 - final_factor) * 0.5 * (1.0 + math.cos(math.pi * p))


def budget_progress(trainer) -> float:
    """Fraction of the training budget spent: the larger of the step fraction and the wall-time fraction.

    ``trainer`` is a Lightning trainer; before fitting starts (or without one) the progress is 0.
    """
    if trainer is None:
        return 0.0
    fractions = [0.0]
    try:
        total = trainer.estimated_stepping_batches
    except Exception:  # not fitting yet: the data loaders are not attached
        total = None
    if total is not None and math.isfinite(total) and total > 0:
        fractions.append(trainer.global_step / total)
    from lightning.pytorch.callbacks import Timer

    for cb in trainer.callbacks:
        if isinstance(cb, Timer) and cb._duration:
            fractions.append(cb.time_elapsed("train") / cb._duration)
    return max(fractions)


class BudgetCosine(torch.optim.lr_scheduler.LRScheduler):
    """Cosine decay from each group's initial learning rate to ``final_factor`` times it over the budget.

    Step it once per optimizer step (Lightning ``interval: "step"``); ``trainer_ref`` is a zero-argument callable
    returning the trainer (or ``None``), read at every step. ``lr_cap`` (``None`` until set, by stage two) bounds
    the rate from above.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, trainer_ref, final_factor: float = 0.01):
        if not 0.0 <= final_factor <= 1.0:
            raise ValueError(f"lr_final_factor must lie in [0, 1], got {final_factor}")
        self.trainer_ref = trainer_ref
        self.final_factor = final_factor
        self.lr_cap: float | None = None
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        factor = cosine_factor(budget_progress(self.trainer_ref()), self.final_factor)
        cap = float("inf") if self.lr_cap is None else self.lr_cap
        return [min(base * factor, cap) for base in self.base_lrs]

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "trainer_ref")}
