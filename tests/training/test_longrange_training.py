"""Training a long-range model end to end on the built-in NaCl data: charges in metrics, model file, calculator."""

import json

import numpy as np
import pytest
import torch

from mlip.training.config import RunConfig
from mlip.training.run import run_training

TINY_LR = {
    "model": {
        "name": "mace", "r_max": 4.0, "channels": 8, "max_ell": 1, "max_L": 1, "correlation": 2,
        "radial_mlp": [8], "long_range": {"kind": "auto", "accuracy": 1e-5},
    },
    "data": {"builtin": "tosi_fumi_nacl", "nacl_frames": 12, "nacl_test_frames": 2, "batch_size": 4},
    "train": {"max_epochs": 1, "progress_bar": False, "charges_weight": 1.0},
}  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("lr_run")
    return run_dir, run_training(RunConfig.from_dict(TINY_LR), run_dir)


def test_metrics_report_charges(trained):
    run_dir, metrics = trained
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    for name in ("nacl_crystal", "nacl_melt", "nacl_slab", "nacl_clusters"):
        m = on_disk["test"][name]
        assert set(m["mean_charge_e"]) == {"Na", "Cl"}
        assert m["charges_rmse_me"] >= 0
    assert "charges_rmse_me" in metrics["valid"]


def test_model_file_gives_the_calculator_charges(trained):
    from ase import Atoms

    import mlip
    from mlip.calculators import MLIPCalculator

    run_dir, _ = trained
    model = mlip.load_model(run_dir / "model.pt", dtype="float64")
    assert model.config.long_range is not None
    calc = MLIPCalculator(model)
    atoms = Atoms("NaCl", positions=[[0, 0, 0], [2.8, 0, 0]])
    atoms.info["charge"] = 0.0
    atoms.calc = calc
    atoms.get_potential_energy()
    charges = atoms.get_charges()
    assert charges.shape == (2,)
    assert abs(charges.sum()) < 1e-10
    ion = Atoms("Na", positions=[[0, 0, 0]])
    ion.info["charge"] = 1.0
    ion.calc = MLIPCalculator(model)
    ion.get_potential_energy()
    np.testing.assert_allclose(ion.get_charges(), [1.0], atol=1e-12)
    assert torch.isfinite(torch.as_tensor(atoms.get_forces())).all()
