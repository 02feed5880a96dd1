"""Apply the end-of-training E0 re-fit to a model that was trained without it, and report its effect.

Usage::

    python benchmarks/refit_e0s.py RUN_DIR [--config CONFIG.yaml]

Reads ``RUN_DIR/model.pt`` and the data section of ``CONFIG`` (default: the config stored in the model file's
provenance), rebuilds the same train/validation split, fits the per-element offsets on the training frames
(:func:`mlip.training.e0_refit.refit_atomic_energies`) and prints the validation energy, force and stress RMSE
before and after. Forces and stress do not depend on the E0s; they are printed as a check.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import yaml

from mlip.data import make_loader
from mlip.models import load_model
from mlip.training.config import RunConfig
from mlip.training.e0_refit import refit_atomic_energies
from mlip.training.metrics import evaluate
from mlip.training.run import prepare_data


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir")
    p.add_argument("--config")
    a = p.parse_args()
    run = Path(a.run_dir)
    model = load_model(run / "model.pt")
    if a.config:
        raw = yaml.safe_load(Path(a.config).read_text())
    else:
        raw = torch.load(run / "model.pt", weights_only=False)["provenance"]["config"]
    cfg = RunConfig.from_dict(raw)
    data = prepare_data(cfg)
    bs = cfg.data.valid_batch_size
    before = evaluate(model, data.valid, max_frames=bs).metrics()
    report = refit_atomic_energies(model.eval(), make_loader(data.train, batch_size=bs, shuffle=False))
    after = evaluate(model, data.valid, max_frames=bs).metrics()
    keys = ("energy_rmse_mev_per_atom", "forces_rmse_mev_per_A", "stress_rmse_mev_per_A3")
    print(json.dumps({"before": {k: before.get(k) for k in keys}, "after": {k: after.get(k) for k in keys},
                      "refit": report}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
