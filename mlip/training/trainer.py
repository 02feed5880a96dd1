"""The trainer of a run: the Lightning ``Trainer`` with mlip's loggers and checkpoints, and the training batches."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from mlip.data import make_loader
from mlip.data.batch import collate
from mlip.data.sampler import BudgetBatchSampler
from mlip.errors import MLIPInputError
from mlip.training.config import RunConfig
from mlip.training.module import PotentialModule
from mlip.training.prepare import PreparedData
from mlip.training.replay import replay_loader
from mlip.training.run_dir import AtomicCheckpointIO, HistoryCSVLogger

__all__ = ["build_trainer", "is_primary_process", "train_loader", "log_parameters"]


def build_trainer(cfg: RunConfig, run_dir: Path) -> L.Trainer:
    """The Lightning trainer of a run: loggers (CSV history, TensorBoard), atomic checkpoints every epoch or
    ``train.checkpoint_every_n_steps`` steps, and the hardware flags of the ``train`` section; a Lightning
    configuration error becomes one line naming the ``train`` section."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger

    t = cfg.train
    loggers = [
        HistoryCSVLogger(str(run_dir)),
        TensorBoardLogger(str(run_dir), name="tensorboard", version=""),
    ]
    try:
        return L.Trainer(
            default_root_dir=str(run_dir),
            max_epochs=t.max_epochs,
            max_time=t.max_time,
            accelerator=t.accelerator,
            devices=t.devices,
            strategy=t.strategy,
            num_nodes=t.num_nodes,
            gradient_clip_val=t.grad_clip,
            inference_mode=False,
            logger=loggers,
            plugins=[AtomicCheckpointIO()],
            callbacks=[
                # save_top_k=1 without a monitor keeps the latest checkpoint; Lightning >= 2.5 writes last.ckpt
                # only when it has saved a regular checkpoint in the same step, so top_k=0 would leave nothing
                # to resume from
                ModelCheckpoint(
                    dirpath=str(run_dir / "checkpoints"),
                    save_last=True,
                    save_top_k=1,
                    every_n_train_steps=t.checkpoint_every_n_steps,
                ),  # fmt: skip
                LearningRateMonitor(logging_interval="epoch"),
            ],
            log_every_n_steps=t.log_every_n_steps,
            enable_progress_bar=t.progress_bar,
            check_val_every_n_epoch=t.check_val_every_n_epoch,
            num_sanity_val_steps=0,
            use_distributed_sampler=cfg.data.max_atoms_per_batch
            is None,  # the budget sampler shards by itself
        )
    except (MisconfigurationException, ValueError) as err:
        if isinstance(err, MLIPInputError):
            raise
        raise MLIPInputError(f"train section: {err}") from err


def is_primary_process() -> bool:
    """Rank 0 of a distributed run (read from the launcher's environment before the trainer exists)."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def train_loader(data: PreparedData, cfg: RunConfig, trainer: L.Trainer):
    """The training batches: ``data.batch_size`` frames shuffled with ``data.seed + train.seed``, or batches
    filled up to ``data.max_atoms_per_batch`` atoms shared out over the ranks
    (:class:`mlip.data.sampler.BudgetBatchSampler`); with a replay sample, each step also draws one replay
    batch."""
    d = cfg.data
    if d.max_atoms_per_batch is not None:
        sampler = BudgetBatchSampler(
            data.train.atom_counts(), max_cost=d.max_atoms_per_batch, max_items=d.batch_size, seed=d.seed,
            num_replicas=trainer.world_size, rank=trainer.global_rank,
        )  # fmt: skip
        loader = DataLoader(data.train, batch_sampler=sampler, collate_fn=collate, num_workers=d.num_workers)
    else:
        loader = make_loader(  # train.seed varies the order too (committee members)
            data.train,
            batch_size=d.batch_size,
            shuffle=True,
            seed=d.seed + cfg.train.seed,
            num_workers=d.num_workers,
        )
    if data.replay is None:
        return loader
    from lightning.pytorch.utilities import CombinedLoader

    if trainer.world_size > 1:
        raise MLIPInputError("data.replay_file trains on one process; run it with train.devices: 1")
    replay = replay_loader(
        data.replay, batch_size=d.replay_batch_size or d.batch_size, steps=len(loader), seed=d.seed
    )
    return CombinedLoader({"main": loader, "replay": replay}, mode="min_size")


def log_parameters(module: PotentialModule) -> None:
    """Log the module's parameter counts (and its adapters') on rank 0."""
    from lightning.pytorch.utilities import rank_zero_info

    counts = module.parameter_counts()
    rep = module.adapter_report
    extra = (
        "" if rep is None else f"; {rep['kind']} adapters of rank {rep['rank']}: {rep['adapter_parameters']}"
    )
    rank_zero_info(f"parameters: {counts['total']}, trained: {counts['trainable']}{extra}")
