"""The run directory: one training at a time, checkpoints written whole, a history that resuming never loses.

Layout of ``RUN_DIR/`` (see the README for what each file holds)::

    .lock                    held by the training writing here (flock; released when it exits, even by kill -9)
    checkpoints/last.ckpt    Lightning checkpoint for --resume (written atomically every epoch or N steps)
    logs/metrics.csv         the training history, appended (a resumed run keeps every row up to its checkpoint)
    logs/hparams.yaml        the module's hyperparameters
    tensorboard/             the same curves for TensorBoard
    model.pt, metrics.json, parity.png    the results, written atomically when training ends

Rules a rerun follows (:func:`prepare_run_dir`): without ``--resume`` a directory that already holds a run is
refused (its files would be mixed with the new run's); with ``--resume`` the checkpoint must exist, be readable and
have been trained with the same model section as the config now gives, else the error says which field differs.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import yaml
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from mlip.errors import MLIPFileNotFoundError, MLIPInputError
from mlip.fileio import (
    TMP_MARK,
    append_bytes,
    check_not_input,
    fsync_dir,
    torch_save_atomic,
    write_text_atomic,
)

__all__ = [
    "AtomicCheckpointIO",
    "HistoryCSVLogger",
    "check_inputs_are_not_outputs",
    "check_resumable",
    "checkpoint_step",
    "fit_or_interrupt",
    "prepare_run_dir",
    "remove_stale_temporaries",
    "resolve_checkpoint",
    "RUN_MARKERS",
    "RUN_OUTPUTS",
]

RUN_OUTPUTS = ("model.pt", "model_replay_head.pt", "committee.pt", "metrics.json", "parity.png")
"""The result files a run (or a committee) writes into ``RUN_DIR``; none of them may be one of its inputs."""

RUN_MARKERS = ("checkpoints/last.ckpt", "model.pt", "metrics.json", "logs/metrics.csv", "logs/hparams.yaml")
"""Files whose presence means a directory already holds a training run (so does a non-empty ``tensorboard/``)."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints through :func:`mlip.fileio.torch_save_atomic`: a temporary file in the checkpoint's
    own directory, fsync, rename (Lightning's own writer stages the file in the system temporary directory and
    copies it across file systems)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("storage_options are not supported by AtomicCheckpointIO")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch_save_atomic(checkpoint, path)


def check_inputs_are_not_outputs(run_dir: Path, inputs: dict[str, str]) -> None:
    """Refuse a config whose input (``{"train.init_from": path, ...}``) is a file the run will write
    (:data:`RUN_OUTPUTS`, after symbolic links): ``train.init_from: RUN_DIR/model.pt`` would be replaced."""
    for key, path in inputs.items():
        for name in RUN_OUTPUTS:
            try:
                check_not_input(Path(run_dir) / name, [path])
            except MLIPInputError:
                raise MLIPInputError(
                    f"{key}: {path} is the run's own {name} in {run_dir}, which the run would overwrite; "
                    "copy it elsewhere or choose another --run-dir"
                ) from None


def fit_or_interrupt(trainer, run_dir: Path, *args, **kwargs) -> None:
    """``trainer.fit(*args, **kwargs)``; a Ctrl-C, which Lightning turns into ``sys.exit(1)`` after its graceful
    shutdown, is raised as ``KeyboardInterrupt`` saying how to continue (the console script exits 130)."""
    try:
        trainer.fit(*args, **kwargs)
    except SystemExit:
        if not trainer.interrupted:
            raise
        raise KeyboardInterrupt(
            f"continue with --resume --run-dir {run_dir} (from its last checkpoint)"
        ) from None


def resolve_checkpoint(run_dir: Path, resume: str | None) -> Path | None:
    """The checkpoint to resume from (``"last"``: ``RUN_DIR/checkpoints/last.ckpt``), checked to exist."""
    if resume is None:
        return None
    ckpt = run_dir / "checkpoints" / "last.ckpt" if resume == "last" else Path(resume)
    if not ckpt.is_file():
        raise MLIPFileNotFoundError(f"cannot resume: no checkpoint at {ckpt}")
    return ckpt


def prepare_run_dir(run_dir: Path, checkpoint: Path | None) -> None:
    """Refuse to start a new run in a directory that holds one (see the module docstring)."""
    if checkpoint is not None:
        return
    found = [m for m in RUN_MARKERS if (run_dir / m).exists()]
    if (run_dir / "tensorboard").is_dir() and any((run_dir / "tensorboard").iterdir()):
        found.append("tensorboard/")
    if not found:
        return
    if (run_dir / "checkpoints" / "last.ckpt").exists():
        hint = "continue it with --resume"
    else:
        hint = "it stopped before its first checkpoint, so there is nothing to resume: delete it"
    raise MLIPInputError(
        f"{run_dir} already holds a training run ({', '.join(found)}); {hint}, or choose another --run-dir"
    )


def _load_checkpoint(path: Path) -> dict:
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=False, mmap=True)
    except Exception as err:
        raise MLIPInputError(
            f"cannot resume: {path} is not a readable checkpoint (truncated or corrupted: {type(err).__name__})"
        ) from err


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_resumable(checkpoint: Path, model_config: dict) -> int:
    """Refuse a checkpoint trained with another model section (naming the fields that differ); return its global
    step."""
    ckpt = _load_checkpoint(checkpoint)
    stored = (ckpt.get("hyper_parameters") or {}).get("model_config")
    if not isinstance(stored, dict):
        raise MLIPInputError(f"cannot resume: {checkpoint} is not a checkpoint written by mlip's training")
    keys = sorted(set(stored) | set(model_config))
    diff = [k for k in keys if stored.get(k) != model_config.get(k)]
    if diff:
        data_keys = {"atomic_numbers", "atomic_energies", "avg_num_neighbors", "shift", "scale"}
        parts = [
            f"model.{k}: checkpoint {_short(stored.get(k))}, config now {_short(model_config.get(k))}"
            for k in diff[:3]
        ]
        more = f" (and {len(diff) - 3} more)" if len(diff) > 3 else ""
        cause = "the training data changed" if set(diff) <= data_keys else "the model section changed"
        raise MLIPInputError(
            f"cannot resume {checkpoint}: {cause}: {'; '.join(parts)}{more}; resume with the config it was "
            "trained with, or start a new --run-dir"
        )
    return int(ckpt.get("global_step", 0))


def checkpoint_step(checkpoint: Path) -> int:
    """The global step a checkpoint was written at."""
    return int(_load_checkpoint(checkpoint).get("global_step", 0))


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that it never deletes the history.

    Rows are appended with one ``write`` and an ``fsync`` (a killed process cannot leave half a row; a torn tail
    left by a power loss is cut off when the file is next opened). A header that gains columns is rewritten
    atomically. ``keep_until_step`` (a resumed run) drops the rows logged after the checkpoint it resumes from:
    that work is done again, and its rows are logged again.
    """

    def __init__(self, log_dir: str, keep_until_step: int | None = None) -> None:
        self.metrics: list[dict] = []
        self.metrics_keys: list[str] = []
        self.hparams: dict[str, Any] = {}
        self.log_dir = log_dir
        self.metrics_file_path = os.path.join(log_dir, self.NAME_METRICS_FILE)
        os.makedirs(log_dir, exist_ok=True)
        path = Path(self.metrics_file_path)
        if path.is_file():
            text = path.read_text()
            if text and not text.endswith("\n"):
                text = text[: text.rfind("\n") + 1]
            rows = list(csv.DictReader(io.StringIO(text)))
            header = next(csv.reader(io.StringIO(text)), [])
            if keep_until_step is not None:
                rows = [r for r in rows if not r.get("step") or float(r["step"]) <= keep_until_step]
            self.metrics_keys = list(header)
            self._rewrite(rows)

    def _rewrite(self, rows: list[dict]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.metrics_keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(self.metrics_file_path, buf.getvalue())

    def log_hparams(self, params: dict[str, Any]) -> None:
        self.hparams.update(params)
        text = yaml.safe_dump(_plain(self.hparams), sort_keys=False)
        write_text_atomic(os.path.join(self.log_dir, self.NAME_HPARAMS_FILE), text)

    def save(self) -> None:
        if not self.metrics:
            return
        path = Path(self.metrics_file_path)
        new_keys = sorted(set().union(*self.metrics) - set(self.metrics_keys))
        if new_keys or not path.is_file():
            old = list(csv.DictReader(io.StringIO(path.read_text()))) if path.is_file() else []
            self.metrics_keys = sorted(set(self.metrics_keys) | set(new_keys))
            self._rewrite(old)
        buf = io.StringIO()
        csv.DictWriter(buf, fieldnames=self.metrics_keys, lineterminator="\n").writerows(self.metrics)
        append_bytes(self.metrics_file_path, buf.getvalue().encode())
        self.metrics = []


def _plain(value):
    """Hyperparameters as YAML-safe data (tuples to lists, unknown objects to strings)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


class HistoryCSVLogger(CSVLogger):
    """``RUN_DIR/logs/metrics.csv`` through ``_AppendingWriter`` (``keep_until_step``: see there)."""

    def __init__(self, save_dir: str, *, keep_until_step: int | None = None) -> None:
        super().__init__(save_dir, name="logs", version="")
        self.keep_until_step = keep_until_step

    @property
    @rank_zero_experiment
    def experiment(self) -> _AppendingWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(self.log_dir, keep_until_step=self.keep_until_step)
        return self._experiment


def remove_stale_temporaries(run_dir: Path) -> None:
    """Delete temporary files that a killed writer left behind (they are never read)."""
    for sub in (run_dir, run_dir / "checkpoints", run_dir / "logs"):
        if sub.is_dir():
            for p in sub.glob(f".*{TMP_MARK}*"):
                if p.is_file():
                    p.unlink(missing_ok=True)
            fsync_dir(sub)
