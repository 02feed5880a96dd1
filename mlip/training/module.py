"""The Lightning module: loss, EMA, metrics; the model itself stays a plain ``nn.Module``."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from mlip import keys as K
from mlip.errors import MLIPInputError
from mlip.models import build_model
from mlip.models.adapters import AdapterConfig, attach_adapters
from mlip.models.heads import EnergyHead
from mlip.models.selection import match_parameters
from mlip.training.config import TrainConfig
from mlip.training.e0_refit import refit_atomic_energies
from mlip.training.ema import EMA
from mlip.training.finetune import parameter_groups
from mlip.training.losses import LossKinds, loss_terms, weighted_loss
from mlip.training.metrics import ErrorAccumulator
from mlip.training.schedule import BudgetCosine, budget_progress, scaled_lr
from mlip.training.stage_two import StageTwo, cap_learning_rate

__all__ = ["PotentialModule"]


class PotentialModule(L.LightningModule):
    """Trains any registered backbone on energies, forces and (where labelled) stress.

    Validation runs with the EMA weights when EMA is on. ``val/forces_rmse`` (meV/Å) is the monitored metric.
    With ``stage_two_start`` set, the loss weights and learning rate change once that fraction of the budget is
    spent (:mod:`mlip.training.stage_two`); ``stage_two`` then records the step and the fraction.
    """

    def __init__(
        self,
        model_config: dict,
        train_config: dict,
        *,
        replay_e0s: list[float] | None = None,
        init_state: dict[str, torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["init_state"])
        self.cfg = TrainConfig(**train_config)
        self.model = build_model(model_config)
        if (
            init_state is not None
        ):  # fine-tuning: the file's weights (a resumed run then loads its checkpoint)
            self.model.load_state_dict(init_state)
        self.replay_head = None
        if (
            replay_e0s is not None
        ):  # multihead replay: the pretraining head, before any adapter changes the model
            self.replay_head = EnergyHead.from_model(self.model)
            self.replay_head.atomic_energies.copy_(torch.tensor(replay_e0s, dtype=torch.float64))
        self.adapter_report = None
        if self.cfg.adapter is not None:
            self.adapter_report = attach_adapters(self.model, AdapterConfig.from_dict(self.cfg.adapter))
        for names in match_parameters(self.model, self.cfg.freeze, key="train.freeze").values():
            for name in names:
                self.model.get_parameter(name).requires_grad_(False)
        if not any(p.requires_grad for p in self.model.parameters()):
            raise MLIPInputError(
                "train.freeze (with train.adapter) leaves no parameter of the model to train"
            )
        self._ema_target = self.model
        if self.replay_head is not None:  # not registered: model and head are already submodules
            object.__setattr__(
                self, "_ema_target", nn.ModuleDict({"model": self.model, "replay_head": self.replay_head})
            )
        self.ema = EMA(self._ema_target, self.cfg.ema_decay) if self.cfg.ema_decay else None
        self.loss_weights = {
            "energy": self.cfg.energy_weight,
            "forces": self.cfg.forces_weight,
            "stress": self.cfg.stress_weight,
            "charges": self.cfg.charges_weight,
        }
        c = self.cfg
        self.loss_kinds = LossKinds(
            energy=c.energy_loss or c.loss, forces=c.forces_loss or c.loss, stress=c.stress_loss or c.loss,
            charges=c.loss, delta=c.huber_delta, energy_per_atom=c.energy_per_atom,
            thresholds=tuple(c.conditional_huber_thresholds),
        )  # fmt: skip
        self.stage_two_plan = StageTwo.from_train_config(c)
        self.stage_two: dict | None = None  # {"step", "progress"} once stage two has started
        self._stage_two_applied = False
        self._val = ErrorAccumulator()
        self._ema_ctx = None

    def forward(self, batch, **kwargs):
        return self.model(batch, **kwargs)

    def parameter_counts(self) -> dict[str, int]:
        """``total`` and ``trainable`` parameters of the model (with adapters: base and adapter parameters), and
        ``replay_head`` parameters when multihead replay is on."""
        counts = {
            "total": sum(p.numel() for p in self.model.parameters()),
            "trainable": sum(p.numel() for p in self.model.parameters() if p.requires_grad),
        }
        if self.replay_head is not None:
            counts["replay_head"] = sum(p.numel() for p in self.replay_head.parameters())
        return counts

    def _step(self, batch, training: bool, head=None):
        stress = bool((batch[K.STRESS_WEIGHT] > 0).any()) and self.cfg.stress_weight > 0
        kwargs = {} if head is None else {"head": head}
        out = self.model(batch, compute_forces=True, compute_stress=stress, training=training, **kwargs)
        terms = loss_terms(out, batch, kinds=self.loss_kinds)
        return out, terms, weighted_loss(terms, self.loss_weights)

    def on_train_batch_start(self, batch, batch_idx) -> None:
        plan = self.stage_two_plan
        if plan is None or self._stage_two_applied:
            return
        resumed = self.stage_two is not None  # a run that had started stage two has it from the checkpoint
        if not resumed:
            progress = budget_progress(self.trainer)
            start = progress >= plan.start
            if self.trainer.world_size > 1:  # wall time differs between ranks: rank 0 decides for all
                start = self.trainer.strategy.broadcast(start, src=0)
            if not start:
                return
            self.stage_two = {"step": int(self.global_step), "progress": float(progress)}
            if self.cfg.refit_e0s == "stage_two_and_end":
                self.stage_two["e0_refit"] = self.refit_e0s(self.trainer.train_dataloader, across_ranks=True)
        self._enter_stage_two(resumed=resumed)

    def _enter_stage_two(self, *, resumed: bool) -> None:
        """Stage two's weights and learning-rate cap; a resumed run keeps its restored scheduler state."""
        plan = self.stage_two_plan
        self.loss_weights = plan.weights(self.loss_weights)
        schedulers = [c.scheduler for c in self.trainer.lr_scheduler_configs]
        for opt in self.trainer.optimizers:
            cap_learning_rate(opt, schedulers, plan.lr, reset_plateau=not resumed)
        self._stage_two_applied = True
        rank_zero_info(
            f"stage two from step {self.stage_two['step']} ({100 * self.stage_two['progress']:.1f}% of the "
            f"budget): loss weights {self.loss_weights}, learning rate at most {plan.lr}"
        )

    def refit_e0s(self, batches, *, across_ranks: bool = False) -> dict:
        """Re-fit the reference energies of the training model to its residuals on ``batches`` (with
        ``across_ranks``, each rank's share, summed over ranks) and return the report of
        :func:`mlip.training.e0_refit.refit_atomic_energies`."""
        reduce = None
        if across_ranks and self.trainer.world_size > 1:
            reduce = lambda v: self.trainer.strategy.reduce(v, reduce_op="sum")  # noqa: E731
        report = refit_atomic_energies(self.model, batches, reduce=reduce)
        if report.get("frames"):
            rank_zero_info(
                f"E0s re-fitted on {report['frames']} training frames: energy RMSE {report['rmse_before']:.2f} -> "
                f"{report['rmse_after']:.2f} meV/atom, shifts (eV) {report['delta_e0']}"
            )
        return report

    def training_step(self, batch, batch_idx):
        replay = None
        if "main" in batch:  # multihead replay: a new-data batch and a replay batch per step
            batch, replay = batch["main"], batch["replay"]
        _, terms, loss = self._step(batch, training=True)
        n = int(batch[K.N_ATOMS].shape[0])
        if replay is not None:
            _, replay_terms, replay_loss = self._step(replay, training=True, head=self.replay_head)
            loss = loss + self.cfg.replay_weight * replay_loss
            self.log("train/replay_loss", replay_loss, batch_size=n, sync_dist=True)
        self.log("train/loss", loss, prog_bar=True, batch_size=n, sync_dist=True)
        if self.stage_two_plan is not None:
            self.log("train/stage", 2.0 if self._stage_two_applied else 1.0, batch_size=n)
        for k, v in terms.items():
            self.log(f"train/{k}", v, batch_size=n, sync_dist=True)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.ema is not None:
            self.ema.update(self._ema_target)

    def on_validation_epoch_start(self) -> None:
        self._val = ErrorAccumulator()
        if self.ema is not None:
            self._ema_ctx = self.ema.applied(self._ema_target)
            self._ema_ctx.__enter__()

    def validation_step(self, batch, batch_idx):
        with torch.enable_grad():
            out, _, loss = self._step(batch, training=False)
        self._val.add({k: v.detach() for k, v in out.items()}, batch)
        self.log("val/loss", loss.detach(), batch_size=int(batch[K.N_ATOMS].shape[0]), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        if self._ema_ctx is not None:
            self._ema_ctx.__exit__(None, None, None)
            self._ema_ctx = None
        a = self._val.arrays()
        sums = torch.tensor(
            [
                float(((1000 * (a["energy_pred"] - a["energy_ref"]) / a["n_atoms"]) ** 2).sum())
                if len(a["n_atoms"])
                else 0.0,
                float(len(a["energy_ref"])),
                float(((1000 * (a["forces_pred"] - a["forces_ref"])) ** 2).sum()),
                float(a["forces_ref"].size),
            ],
            dtype=torch.float64,
            device=self.device,
        )
        sums = self.trainer.strategy.reduce(sums, reduce_op="sum") if self.trainer.world_size > 1 else sums
        e_rmse = (sums[0] / sums[1].clamp(min=1)).sqrt()
        f_rmse = (sums[2] / sums[3].clamp(min=1)).sqrt()
        self.log("val/energy_rmse", e_rmse.float(), prog_bar=True, sync_dist=False, rank_zero_only=True)
        self.log("val/forces_rmse", f_rmse.float(), prog_bar=True, sync_dist=False, rank_zero_only=True)

    def configure_optimizers(self):
        cfg = self.cfg
        world = self.trainer.world_size if getattr(self, "_trainer", None) is not None else 1
        lr = scaled_lr(cfg.lr, world, cfg.lr_scaling)
        params = parameter_groups(
            self.model, lr, {k: scaled_lr(v, world, cfg.lr_scaling) for k, v in cfg.lr_groups.items()}
        )
        if self.replay_head is not None:
            params.append({"params": list(self.replay_head.parameters()), "lr": lr, "name": "replay_head"})
        if len(params) == 1:  # one group: the learning-rate log keeps its plain name (lr-Adam)
            params[0].pop("name")
        if cfg.optimizer == "adam":
            opt = torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay, amsgrad=cfg.amsgrad)
        elif cfg.optimizer == "adamw":
            opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay, amsgrad=cfg.amsgrad)
        else:
            raise ValueError(f"unknown optimizer {cfg.optimizer!r}; use 'adam' or 'adamw'")
        if cfg.scheduler == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, factor=cfg.plateau_factor, patience=cfg.plateau_patience
            )
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val/loss"}}
        if cfg.scheduler == "cosine":
            sched = BudgetCosine(
                opt, trainer_ref=lambda: getattr(self, "_trainer", None), final_factor=cfg.lr_final_factor
            )
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        if cfg.scheduler == "none":
            return opt
        raise ValueError(f"unknown scheduler {cfg.scheduler!r}; use 'plateau', 'cosine' or 'none'")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.ema is not None:
            checkpoint["ema"] = self.ema.state_dict()
        if self.stage_two is not None:
            checkpoint["stage_two"] = self.stage_two

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if self.ema is not None and "ema" in checkpoint:
            self.ema.load_state_dict(checkpoint["ema"])
        self.stage_two = checkpoint.get("stage_two")
