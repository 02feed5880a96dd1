"""``mlip-eval`` with several ``--model``: the metrics of the committee's mean and the spread-error correlations."""

import json

import numpy as np
import torch
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import write

from mlip.calculators import MLIPCalculator
from mlip.cli.eval import main
from mlip.models import save_model
from mlip.testing.models import tiny_mace


def test_committee_metrics_are_those_of_the_mean(tmp_path, capsys):
    frames = []
    for seed in range(6):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.numbers[: seed % 3] = 79
        atoms.rattle(0.08, seed=seed)
        atoms.calc = EMT()
        atoms.get_potential_energy()
        atoms.get_forces()
        frames.append(atoms)
    write(tmp_path / "data.xyz", frames)
    paths = []
    for seed in range(3):
        torch.manual_seed(seed)
        paths.append(tmp_path / f"m{seed}.pt")
        save_model(tiny_mace(torch.float64), paths[-1])
    argv = [str(tmp_path / "data.xyz"), "--out", str(tmp_path / "m.json")]
    for path in paths:
        argv += ["--model", str(path)]
    assert main(argv) == 0
    capsys.readouterr()
    metrics = json.loads((tmp_path / "m.json").read_text())["data.xyz"]
    committee = metrics["committee"]
    assert committee["members"] == 3
    for key in ("energy_std_error_pearson", "forces_std_error_pearson", "forces_std_error_spearman"):
        assert -1.0 <= committee[key] <= 1.0
    assert committee["mean_forces_std_mev_per_A"] > 0
    errors = []
    for atoms in frames:
        a = atoms.copy()
        a.calc = MLIPCalculator([str(p) for p in paths])
        errors.append((a.get_potential_energy() - atoms.get_potential_energy()) / len(a))
    rmse = 1e3 * float(np.sqrt(np.mean(np.square(errors))))
    assert abs(metrics["energy_rmse_mev_per_atom"] - rmse) < 1e-6 * rmse
