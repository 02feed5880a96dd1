"""Training a committee in one command (``train.committee: N``).

Member ``k`` is an ordinary run in ``RUN_DIR/member_k`` with ``train.seed = seed + k`` (weights and batch order
differ; the data split, set by ``data.seed``, is shared, so every member is validated on the same frames). When all
members are done, ``RUN_DIR/committee.pt`` (:mod:`mlip.models.committee`) holds them, and ``RUN_DIR/metrics.json``
holds each member's metrics and those of the committee: the members' mean, and the Pearson and Spearman
correlations between the predicted spread and the actual error (:func:`mlip.training.scoring.score_committee`)
on the validation and test frames.

Interrupted, ``--resume`` continues: finished members (with ``model.pt``) are kept, a member with a checkpoint
resumes from it, the rest start; without ``--resume`` a run directory that holds members is refused.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from mlip.errors import MLIPInputError
from mlip.fileio import DirectoryLock, check_output_dir, write_json_atomic
from mlip.models import load_model
from mlip.models.committee import save_committee
from mlip.training.config import RunConfig
from mlip.training.fit import train_one
from mlip.training.prepare import load_frames
from mlip.training.run_dir import check_inputs_are_not_outputs
from mlip.training.scoring import score_committee
from mlip.training.store_data import is_preprocessed
from mlip.training.trainer import is_primary_process

__all__ = ["run_committee", "member_config", "committee_scores"]


def member_config(cfg: RunConfig, k: int) -> RunConfig:
    """Member ``k``'s config: ``train.seed + k``, a single model."""
    train = dataclasses.replace(cfg.train, seed=cfg.train.seed + k, committee=1)
    return RunConfig(model=dict(cfg.model), data=cfg.data, train=train)


def run_committee(cfg: RunConfig, run_dir: str | Path, *, resume: str | None = None) -> dict | None:
    """Train ``cfg.train.committee`` members into ``run_dir`` (module docstring); returns the metrics."""
    run_dir = Path(run_dir)
    n = cfg.train.committee
    cfg.check_inputs_exist()
    check_output_dir(run_dir, what="run directory")
    check_inputs_are_not_outputs(run_dir, cfg.input_files())
    if resume not in (None, "last"):
        raise MLIPInputError("a committee resumes with --resume (each member from its own last checkpoint)")
    members = [run_dir / f"member_{k}" for k in range(n)]
    if resume is None and any(m.exists() for m in members):
        raise MLIPInputError(
            f"{run_dir} already holds committee members; continue them with --resume, or choose another --run-dir"
        )
    member_metrics = []
    for k, member_dir in enumerate(members):
        if (member_dir / "model.pt").is_file() and (member_dir / "metrics.json").is_file():
            member_metrics.append(json.loads((member_dir / "metrics.json").read_text()))
            continue
        has_ckpt = (member_dir / "checkpoints" / "last.ckpt").is_file()
        member_metrics.append(
            train_one(member_config(cfg, k), member_dir, resume="last" if has_ckpt else None)
        )
    if not is_primary_process():
        return None
    with DirectoryLock(run_dir, "committee"):
        models = [load_model(m / "model.pt") for m in members]
        save_committee(models, run_dir / "committee.pt", provenance={"config": cfg.to_dict(), "members": n})
        metrics = {"members": member_metrics, "committee": committee_scores(cfg, models)}
        write_json_atomic(run_dir / "metrics.json", metrics)
    return metrics


def committee_scores(cfg: RunConfig, models) -> dict:
    """Committee metrics (mean and spread-vs-error correlations) on the validation and test frames of a run read
    from files or built in; a preprocessed training directory is scored by ``mlip-eval`` instead (empty here)."""
    d = cfg.data
    if is_preprocessed(d.train_file) or d.format == "preprocessed":
        return {}
    _, valid, tests, _ = load_frames(d)
    out = {}
    for name, frames in {"valid": valid, **tests}.items():
        metrics, _, _ = score_committee(frames, models, name, device="cpu", max_atoms=d.eval_max_atoms)
        out[name] = metrics
    return out
