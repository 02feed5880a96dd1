"""The Lightning module: loss, EMA, metrics; the model itself stays a plain ``nn.Module``."""

from __future__ import annotations

import lightning as L
import torch

from mlip import keys as K
from mlip.models import build_model
from mlip.training.config import TrainConfig
from mlip.training.ema import EMA
from mlip.training.losses import loss_terms, weighted_loss
from mlip.training.metrics import ErrorAccumulator
from mlip.training.schedule import BudgetCosine, scaled_lr


class PotentialModule(L.LightningModule):
    """Trains any registered backbone on energies, forces and (where labelled) stress.

    Validation runs with the EMA weights when EMA is on. ``val/forces_rmse`` (meV/Å) is the monitored metric.
    """

    def __init__(self, model_config: dict, train_config: dict) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.cfg = TrainConfig(**train_config)
        self.model = build_model(model_config)
        self.ema = EMA(self.model, self.cfg.ema_decay) if self.cfg.ema_decay else None
        self.loss_weights = {
            "energy": self.cfg.energy_weight,
            "forces": self.cfg.forces_weight,
            "stress": self.cfg.stress_weight,
            "charges": self.cfg.charges_weight,
        }
        self._val = ErrorAccumulator()
        self._ema_ctx = None

    def forward(self, batch, **kwargs):
        return self.model(batch, **kwargs)

    def _step(self, batch, training: bool):
        stress = bool((batch[K.STRESS_WEIGHT] > 0).any()) and self.cfg.stress_weight > 0
        out = self.model(batch, compute_forces=True, compute_stress=stress, training=training)
        terms = loss_terms(out, batch, kind=self.cfg.loss, delta=self.cfg.huber_delta)
        return out, terms, weighted_loss(terms, self.loss_weights)

    def training_step(self, batch, batch_idx):
        _, terms, loss = self._step(batch, training=True)
        n = int(batch[K.N_ATOMS].shape[0])
        self.log("train/loss", loss, prog_bar=True, batch_size=n, sync_dist=True)
        for k, v in terms.items():
            self.log(f"train/{k}", v, batch_size=n, sync_dist=True)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.ema is not None:
            self.ema.update(self.model)

    def on_validation_epoch_start(self) -> None:
        self._val = ErrorAccumulator()
        if self.ema is not None:
            self._ema_ctx = self.ema.applied(self.model)
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
        params = self.model.parameters()
        world = self.trainer.world_size if getattr(self, "_trainer", None) is not None else 1
        lr = scaled_lr(cfg.lr, world, cfg.lr_scaling)
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

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if self.ema is not None and "ema" in checkpoint:
            self.ema.load_state_dict(checkpoint["ema"])
