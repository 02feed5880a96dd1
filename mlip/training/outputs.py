"""The outputs of a run: the E0 re-fit, ``model.pt`` (and the replay head's model), ``metrics.json`` of the
exported model on the validation and test sets (through :mod:`mlip.training.metrics`), ``parity.png``; every
file written atomically."""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path

import numpy as np

from mlip.data import make_loader
from mlip.fileio import write_json_atomic
from mlip.models import convert_model, save_model
from mlip.models.adapters import has_adapters, merge_adapters
from mlip.models.heads import model_with_head
from mlip.training.config import RunConfig
from mlip.training.e0_refit import energy_normal_equations
from mlip.training.metrics import evaluate
from mlip.training.module import PotentialModule
from mlip.training.plots import parity_plot
from mlip.training.prepare import PreparedData, data_source

__all__ = ["refit_e0s_at_end", "write_outputs"]


def _refit_loaders(data: PreparedData, cfg: RunConfig):
    """Train and validation loaders of the end-of-training E0 fit (at most ``refit_e0s_max_frames`` training
    frames, evenly spaced)."""
    from torch.utils.data import Subset

    train, cap = data.train, cfg.train.refit_e0s_max_frames
    if cap is not None and len(train) > cap:
        train = Subset(train, np.linspace(0, len(train) - 1, cap).round().astype(int).tolist())
    bs = cfg.data.valid_batch_size
    return make_loader(train, batch_size=bs, shuffle=False), make_loader(
        data.valid, batch_size=bs, shuffle=False
    )


def refit_e0s_at_end(module: PotentialModule, data: PreparedData, cfg: RunConfig) -> dict:
    """Re-fit the exported model's E0s on the training frames; report training and validation energy RMSE
    (meV/atom) before and after (:mod:`mlip.training.e0_refit`)."""
    train_loader, valid_loader = _refit_loaders(data, cfg)
    model = module.model
    before = model.atomic_energies.detach().cpu().clone()
    valid_eq = energy_normal_equations(model, valid_loader)
    report = module.refit_e0s(train_loader)
    delta = model.atomic_energies.detach().cpu() - before
    return {
        "train_energy_rmse_before": report.get("rmse_before"),
        "train_energy_rmse_after": report.get("rmse_after"),
        "valid_energy_rmse_before": valid_eq.rmse(),
        "valid_energy_rmse_after": valid_eq.rmse(delta),
        "train_frames": report.get("frames"),
        "delta_e0": report.get("delta_e0", {}),
    }


def write_outputs(module: PotentialModule, data: PreparedData, cfg: RunConfig, run_dir: Path) -> dict:
    """Re-fit the E0s (``train.refit_e0s``), export the EMA model and evaluate it on validation and test sets
    (every file written atomically)."""
    ctx = module.ema.applied(module._ema_target) if module.ema is not None else contextlib.nullcontext()
    with ctx:
        refit = refit_e0s_at_end(module, data, cfg) if cfg.train.refit_e0s != "none" else None
        model = module.model
        if has_adapters(model):  # W + ΔW written into the weights: an ordinary model file
            model = merge_adapters(copy.deepcopy(model))
        model.cpu()
        provenance = {"train_file": data_source(cfg.data), "config": cfg.to_dict()}
        if cfg.train.init_from is not None:
            provenance["init_from"] = str(cfg.train.init_from)
        save_model(model, run_dir / "model.pt", provenance=provenance)
        if module.replay_head is not None:
            replay_model = model_with_head(model, copy.deepcopy(module.replay_head).cpu())
            save_model(
                replay_model, run_dir / "model_replay_head.pt", provenance={**provenance, "head": "replay"}
            )
        scorer = convert_model(model).compile_network() if cfg.train.compile_eval else model
        budget = {"max_atoms": cfg.data.eval_max_atoms, "max_frames": cfg.data.valid_batch_size}
        results = {"valid": evaluate(scorer, data.valid, **budget)}
        tests = {n: evaluate(scorer, ds, **budget) for n, ds in data.tests.items()}
    metrics = {"valid": results["valid"].metrics(), "test": {n: acc.metrics() for n, acc in tests.items()}}
    metrics["parameters"] = module.parameter_counts()
    if module.adapter_report is not None:
        metrics["adapter"] = module.adapter_report
    if refit is not None:
        metrics["e0_refit"] = refit
    if module.stage_two is not None:
        metrics["stage_two"] = module.stage_two
    write_json_atomic(run_dir / "metrics.json", metrics)
    parity_plot(
        {"valid": results["valid"].arrays(), **{n: a.arrays() for n, a in tests.items()}},
        run_dir / "parity.png",
    )
    return metrics
