"""Training a long-range model end to end on the built-in NaCl data: charges in metrics, model file, calculator."""

import json
import math
from pathlib import Path

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


OC20_SAMPLE = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "data"
    / "oc20_s2ef_sample"
    / "oc20_traj_subsample.extxyz"
)


@pytest.mark.skipif(not OC20_SAMPLE.exists(), reason="../shared/data/oc20_s2ef_sample is not available")
def test_a_long_range_model_trains_on_oc20_slabs(tmp_path):
    """OC20's frames are stored periodic in three directions with vacuum; ``data.pbc: [true, true, false]`` reads
    them as slabs, which the long-range term sums in two periodic directions (Yeh–Berkowitz)."""
    import ase.io

    from mlip.models import load_model
    from mlip.testing.models import tiny_run_config

    frames = ase.io.read(OC20_SAMPLE, ":24")
    ase.io.write(tmp_path / "oc20.extxyz", frames)
    raw = tiny_run_config(train_file=str(tmp_path / "oc20.extxyz"), pbc=[True, True, False], valid_last=4,
                          batch_size=4, e0s="average")  # fmt: skip
    raw["model"]["long_range"] = {"kind": "auto", "accuracy": 1e-6}
    metrics = run_training(RunConfig.from_dict(raw), tmp_path / "run")
    assert metrics["valid"]["n_frames"] == 4
    assert math.isfinite(metrics["valid"]["energy_rmse_mev_per_atom"])
    model = load_model(tmp_path / "run" / "model.pt")
    slab = frames[0].copy()
    slab.pbc = (True, True, False)
    from mlip import predict

    out = predict(model, [slab]).results[0]
    assert abs(float(out["charges"].sum())) < 1e-9
