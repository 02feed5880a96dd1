"""The console scripts mlip-relax and mlip-eval, called through their main() as the entry points do."""

import json

import numpy as np
import torch
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from mlip.calculators.relax_cli import main as relax_main
from mlip.models import save_model
from mlip.testing.models import tiny_mace
from mlip.training.eval_cli import main as eval_main


def _model_file(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    save_model(tiny_mace(torch.float64, channels=4, max_ell=2, correlation=2), path)
    return path


def test_mlip_relax_writes_relaxed_structures(tmp_path):
    model = _model_file(tmp_path)
    frames = []
    for seed in range(2):
        a = bulk("Cu", "fcc", a=3.7, cubic=True)
        a.rattle(0.05, seed=seed)
        frames.append(a)
    write(tmp_path / "in.xyz", frames)
    rc = relax_main(
        [
            str(tmp_path / "in.xyz"),
            str(tmp_path / "out.xyz"),
            "--model",
            str(model),
            "--fmax",
            "0.02",
            "--steps",
            "1000",
            "--relax-cell",
        ]
    )
    assert rc == 0
    out = read(tmp_path / "out.xyz", ":")
    assert len(out) == 2
    assert all(np.abs(a.get_forces()).max() < 0.02 for a in out)


def test_mlip_eval_writes_metric_keys(tmp_path):
    model = _model_file(tmp_path)
    frames = []
    for seed in range(3):
        a = bulk("Cu", "fcc", a=3.6, cubic=True)
        a.rattle(0.05, seed=seed)
        a.calc = SinglePointCalculator(a, energy=-1.0 * seed, forces=np.zeros((4, 3)))
        frames.append(a)
    write(tmp_path / "labelled.xyz", frames)
    rc = eval_main(["--model", str(model), str(tmp_path / "labelled.xyz"), "--out", str(tmp_path / "m.json")])
    assert rc == 0
    metrics = json.loads((tmp_path / "m.json").read_text())["labelled.xyz"]
    assert metrics["n_frames"] == 3
    assert {"energy_rmse_mev_per_atom", "forces_rmse_mev_per_A", "forces_mae_mev_per_A"} <= set(metrics)
