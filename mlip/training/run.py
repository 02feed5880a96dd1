"""The training driver: data -> statistics -> Lightning fit -> model file, metrics.json, parity.png.

:func:`run_training` is ``train.py``'s entry point: one model (:func:`mlip.training.fit.train_one`) or a
committee (:func:`mlip.training.committee_run.run_committee`). The pieces live in their own modules and keep
their names here: data preparation (:mod:`mlip.training.prepare`), the trainer (:mod:`mlip.training.trainer`),
the outputs (:mod:`mlip.training.outputs`).
"""

from __future__ import annotations

from pathlib import Path

from mlip.training.committee_run import run_committee
from mlip.training.config import RunConfig
from mlip.training.fit import train_one
from mlip.training.outputs import refit_e0s_at_end, write_outputs
from mlip.training.prepare import (
    PreparedData,
    check_label_coverage,
    data_source,
    dataset_statistics,
    load_frames,
    prepare_data,
)

__all__ = [
    "PreparedData",
    "load_frames",
    "dataset_statistics",
    "data_source",
    "check_label_coverage",
    "prepare_data",
    "run_training",
    "refit_e0s_at_end",
    "write_outputs",
]


def run_training(cfg: RunConfig, run_dir: str | Path, *, resume: str | None = None) -> dict | None:
    """Train as ``cfg`` says into ``run_dir``: a committee of ``train.committee`` members
    (:mod:`mlip.training.committee_run`) or one model (:func:`mlip.training.fit.train_one`, which documents
    the run directory, the checks made before any data is read, ``resume`` and the outputs). Returns the metrics
    dict on rank 0 (None on other ranks)."""
    if cfg.train.committee > 1:
        return run_committee(cfg, run_dir, resume=resume)
    return train_one(cfg, run_dir, resume=resume)
