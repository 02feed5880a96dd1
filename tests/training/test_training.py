"""End-to-end training on the built-in EMT data: outputs, metrics keys, resume, wall-clock budget, ddp."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mlip import keys as K
from mlip.training.config import RunConfig
from mlip.training.losses import loss_terms
from mlip.training.run import run_training

ROOT = Path(__file__).resolve().parents[2]
TINY = {
    "model": {
        "name": "mace",
        "r_max": 4.0,
        "channels": 8,
        "max_ell": 1,
        "max_L": 1,
        "correlation": 2,
        "radial_mlp": [8],
    },
    "data": {"emt_frames": 16, "emt_test_frames": 4, "batch_size": 4},
    "train": {"max_epochs": 2, "progress_bar": False, "ema_decay": 0.9},
}
METRIC_KEYS = {
    "energy_rmse_mev_per_atom",
    "energy_mae_mev_per_atom",
    "forces_rmse_mev_per_A",
    "forces_mae_mev_per_A",
    "stress_rmse_mev_per_A3",
    "n_frames",
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    metrics = run_training(RunConfig.from_dict(TINY), run_dir)
    return run_dir, metrics


def test_outputs_written(trained):
    run_dir, metrics = trained
    for name in ("model.pt", "metrics.json", "parity.png", "checkpoints/last.ckpt", "logs/metrics.csv"):
        assert (run_dir / name).is_file(), name
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert on_disk == metrics
    assert set(on_disk["valid"]) >= METRIC_KEYS
    assert set(on_disk["test"]["emt_test"]) >= METRIC_KEYS


def test_model_file_loads_without_training_code(trained):
    import mlip

    model = mlip.load_model(trained[0] / "model.pt")
    assert model.atomic_numbers == [29, 79]
    assert model.r_max == 4.0


def test_resume_continues_from_checkpoint(trained, tmp_path):
    run_dir, _ = trained
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    cfg = RunConfig.from_dict({**TINY, "train": {**TINY["train"], "max_epochs": 3}})
    run_training(cfg, run_dir, resume="last")
    ckpt2 = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt2["epoch"] == ckpt["epoch"] + 1
    assert ckpt2["global_step"] > ckpt["global_step"]
    assert "ema" in ckpt2


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        run_training(RunConfig.from_dict(TINY), tmp_path, resume="last")


def test_wall_clock_budget_still_writes_outputs(tmp_path):
    cfg = RunConfig.from_dict(
        {**TINY, "train": {**TINY["train"], "max_epochs": 1000, "max_time": "00:00:00:05"}}
    )
    metrics = run_training(cfg, tmp_path)
    assert (tmp_path / "model.pt").is_file()
    assert "valid" in metrics


def test_compiled_final_evaluation_gives_the_eager_metrics(trained, tmp_path, compile_with_aot_eager):
    """``train.compile_eval``: the same (deterministic) run, its final evaluation through ``torch.compile``."""
    _, eager = trained
    metrics = run_training(
        RunConfig.from_dict({**TINY, "train": {**TINY["train"], "compile_eval": True}}), tmp_path
    )
    for split in ("valid",):
        for key, value in eager[split].items():
            assert metrics[split][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


def test_unknown_option_is_rejected():
    with pytest.raises(ValueError, match="unknown option"):
        RunConfig.from_dict({"train": {"learning_rate": 1.0}})


def test_loss_masks_missing_labels():
    batch = {
        K.ENERGY: torch.tensor([1.0, 5.0], dtype=torch.float64),
        K.ENERGY_WEIGHT: torch.tensor([1.0, 0.0], dtype=torch.float64),
        K.WEIGHT: torch.ones(2, dtype=torch.float64),
        K.N_ATOMS: torch.tensor([1, 1]),
        K.FORCES: torch.zeros(2, 3, dtype=torch.float64),
        K.FORCES_WEIGHT: torch.tensor([0.0, 1.0], dtype=torch.float64),
        K.BATCH: torch.tensor([0, 1]),
    }
    pred = {
        K.ENERGY: torch.tensor([2.0, 0.0], dtype=torch.float64),
        K.FORCES: torch.tensor([[9.0, 9, 9], [1, 1, 1]], dtype=torch.float64),
    }
    terms = loss_terms(pred, batch)
    assert terms["energy"].item() == pytest.approx(1.0)
    assert terms["forces"].item() == pytest.approx(1.0)


@pytest.mark.parametrize("max_atoms", [None, 40], ids=["frames", "atom_budget"])
def test_ddp_two_processes_on_cpu(tmp_path, max_atoms):
    """A 2-process data-parallel run (gloo) through train.py, as a user would launch it; with an atom budget the
    batches come from BudgetBatchSampler's share of each rank (unequal step counts would hang DDP)."""
    cfg = tmp_path / "cfg.yaml"
    import yaml

    data = {**TINY["data"], "max_atoms_per_batch": max_atoms}
    train = {
        **TINY["train"],
        "devices": 2,
        "strategy": "ddp",
        "lr": 0.01,
        "lr_scaling": "sqrt",
        "scheduler": "none",
    }
    cfg.write_text(yaml.safe_dump({**TINY, "data": data, "train": train}))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--config", str(cfg), "--run-dir", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "run" / "model.pt").is_file()
    assert (tmp_path / "run" / "metrics.json").is_file()
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(
        0.01 * 2**0.5
    )  # sqrt rule, 2 ranks


def test_training_set_without_labels_is_a_clear_error(tmp_path):
    from ase.build import bulk
    from ase.io import write

    write(tmp_path / "nolabels.xyz", [bulk("Cu", "fcc", a=3.6) * 2 for _ in range(5)])
    cfg = RunConfig.from_dict(
        {**TINY, "data": {"train_file": str(tmp_path / "nolabels.xyz"), "valid_last": 1}}
    )
    with pytest.raises(ValueError, match="has no energy or force labels"):
        run_training(cfg, tmp_path / "run")


def test_wrong_energy_key_is_a_clear_error(tmp_path, shared_data):
    cfg = RunConfig.from_dict(
        {
            **TINY,
            "data": {
                "train_file": str(shared_data / "ethanol_botnet" / "train.xyz"),
                "energy_key": "DFT_energy",
                "forces_key": "DFT_forces",
                "valid_last": 10,
            },
        }
    )
    with pytest.raises(ValueError, match="check energy_key / forces_key"):
        run_training(cfg, tmp_path / "run")


@pytest.mark.parametrize(
    "model",
    [
        {"name": "facet", "r_max": 4.0, "channels": 4, "max_ell": 2, "max_L": 2, "grid_channels": 4},
        {"name": "tdn", "r_max": 4.0, "channels": 4, "max_ell": 2, "max_L": 1, "correlation": 2,
         "radial_mlp": [8]},
    ],
    ids=["facet", "tdn"],
)  # fmt: skip
def test_every_backbone_trains_saves_and_runs_in_the_calculator_unnamed(tmp_path, model):
    """train.py's path for each registered model: the file loads by path alone and drives the calculator."""
    from ase.build import bulk

    import mlip
    from mlip.calculators import MLIPCalculator

    cfg = RunConfig.from_dict({**TINY, "model": model, "train": {**TINY["train"], "max_epochs": 1}})
    run_training(cfg, tmp_path)
    loaded = mlip.load_model(tmp_path / "model.pt")
    assert type(loaded).__name__.lower() == model["name"]
    atoms = bulk("Cu", "fcc", a=3.6) * (2, 2, 2)
    atoms.rattle(0.05, seed=0)
    atoms.calc = MLIPCalculator(str(tmp_path / "model.pt"))
    assert atoms.get_forces().shape == (8, 3)
    assert abs(atoms.get_stress()).max() > 0
    assert abs(atoms.get_potential_energy()) > 0


def test_a_checkpoint_is_written_every_epoch_for_resuming(tmp_path):
    """A run killed after epoch k must find last.ckpt of epoch k (not only the one written when training ends)."""
    from lightning.pytorch.callbacks import Callback

    seen = []

    class Spy(Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            last = Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
            if trainer.current_epoch > 0:
                seen.append(torch.load(last, map_location="cpu", weights_only=False)["epoch"])

    import mlip.training.trainer as trainers

    original = trainers.build_trainer

    def with_spy(cfg, run_dir):
        trainer = original(cfg, run_dir)
        trainer.callbacks.append(Spy())
        return trainer

    trainers.build_trainer = with_spy
    try:
        run_training(RunConfig.from_dict({**TINY, "train": {**TINY["train"], "max_epochs": 3}}), tmp_path)
    finally:
        trainers.build_trainer = original
    assert seen == [0, 1]  # at the start of epochs 1 and 2, the checkpoints of epochs 0 and 1 exist
