"""One training run, start to end: inputs checked, the run directory claimed (a lock held by rank 0), data
prepared, the trainer fitted (resuming from a checkpoint when asked) and the outputs written."""

from __future__ import annotations

import contextlib
from pathlib import Path

import lightning as L

from mlip.data import make_loader
from mlip.fileio import DirectoryLock, check_output_dir
from mlip.models import build_model
from mlip.training import trainer as trainers
from mlip.training.config import RunConfig
from mlip.training.finetune import extended_state, read_init_model
from mlip.training.module import PotentialModule
from mlip.training.outputs import write_outputs
from mlip.training.prepare import prepare_data
from mlip.training.run_dir import (
    HistoryCSVLogger,
    check_inputs_are_not_outputs,
    check_resumable,
    fit_or_interrupt,
    prepare_run_dir,
    remove_stale_temporaries,
    resolve_checkpoint,
)

__all__ = ["train_one"]


def train_one(cfg: RunConfig, run_dir: str | Path, *, resume: str | None = None) -> dict | None:
    """Train one model, then (on rank 0) write ``model.pt``, ``metrics.json`` and ``parity.png`` into ``run_dir``.

    ``resume``: a Lightning checkpoint path, or ``"last"`` for ``run_dir/checkpoints/last.ckpt``.
    Returns the metrics dict on rank 0 (None on other ranks).

    Before any data is read, the data files must exist and the run directory must be writable and free: rank 0
    holds a lock on it for the whole run (:class:`mlip.fileio.DirectoryLock`), a directory holding another run is
    refused unless resuming, and a resumed checkpoint must match the model section
    (:mod:`mlip.training.run_dir`).
    """
    run_dir = Path(run_dir)
    cfg.check_inputs_exist()
    check_output_dir(run_dir, what="run directory")
    check_inputs_are_not_outputs(run_dir, cfg.input_files())
    primary = trainers.is_primary_process()
    lock = DirectoryLock(run_dir, "training") if primary else contextlib.nullcontext()
    with lock:
        checkpoint = resolve_checkpoint(run_dir, resume)
        if primary:
            prepare_run_dir(run_dir, checkpoint)
            remove_stale_temporaries(run_dir)
        return _train(cfg, run_dir, checkpoint)


def _train(cfg: RunConfig, run_dir: Path, checkpoint: Path | None) -> dict | None:
    L.seed_everything(cfg.train.seed, workers=True, verbose=False)
    init = None if cfg.train.init_from is None else read_init_model(cfg.train.init_from, cfg.model)
    data = prepare_data(cfg, init)
    keep = None if checkpoint is None else check_resumable(checkpoint, data.model_config)
    init_state = None
    if init is not None:
        init_state = extended_state(init, build_model(data.model_config))
    module = PotentialModule(
        data.model_config, vars(cfg.train), replay_e0s=data.replay_e0s, init_state=init_state
    )
    trainers.log_parameters(module)
    trainer = trainers.build_trainer(cfg, run_dir)
    for logger in trainer.loggers:  # a resumed run keeps the history up to its checkpoint
        if isinstance(logger, HistoryCSVLogger):
            logger.keep_until_step = keep
    d = cfg.data
    loader = trainers.train_loader(data, cfg, trainer)
    if init is not None and cfg.train.init_refit_e0s and checkpoint is None:
        module.refit_e0s(make_loader(data.train, batch_size=d.valid_batch_size, shuffle=False))
    fit_or_interrupt(
        trainer,
        run_dir,
        module,
        loader,
        make_loader(data.valid, batch_size=d.valid_batch_size, shuffle=False),
        ckpt_path=None if checkpoint is None else str(checkpoint),
    )
    if not trainer.is_global_zero:
        return None
    return write_outputs(module, data, cfg, run_dir)
