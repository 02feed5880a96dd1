"""Every label a reader yields reaches the loss the same way from files and from the preprocessed store: the same
tiny run, trained both ways, sees identical batches (charges, fixed atoms, weights and net charges included)."""

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixAtoms
from ase.io import write
from lightning.pytorch.callbacks import Callback

import mlip.training.trainer as trainers
from mlip import keys as K
from mlip.data.preprocess import preprocess
from mlip.training.config import RunConfig
from mlip.training.run import run_training


def _labelled_set(path, n=12):
    rng = np.random.default_rng(0)
    frames = []
    for i in range(n):
        a = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
        a.rattle(0.05, seed=i)
        q = np.where(a.numbers == 11, 0.8, -0.8) + rng.normal(scale=0.05, size=len(a))
        a.calc = SinglePointCalculator(
            a,
            energy=-3.0 * len(a) + rng.normal(),
            forces=rng.normal(scale=0.3, size=(len(a), 3)),
            stress=rng.normal(scale=0.005, size=6),
        )
        a.arrays["REF_charges"] = q
        a.info["config_weight"] = 0.5 + 0.1 * i
        a.info["config_type"] = "rattled" if i % 2 else "strained"
        if i % 3 == 0:
            a.set_constraint(FixAtoms(indices=[0, 1]))
        if i % 4 == 0:
            a.info["charge"] = 0.0  # an explicit net charge
        frames.append(a)
    write(path, frames)
    return path


class _Batches(Callback):
    def __init__(self):
        self.batches = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == 0:
            self.batches.append({k: v.detach().clone() for k, v in batch.items()})


def _train_and_capture(cfg, run_dir):
    spy = _Batches()
    original = trainers.build_trainer

    def with_spy(c, d):
        trainer = original(c, d)
        trainer.callbacks.append(spy)
        return trainer

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainers, "build_trainer", with_spy)
        run_training(cfg, run_dir)
    return spy.batches


def test_files_and_store_give_the_same_batches(tmp_path):
    src = _labelled_set(tmp_path / "nacl.xyz")
    preprocess([src], tmp_path / "store", shard_size=5)
    common = {
        "model": {"name": "mace", "r_max": 4.0, "channels": 4, "max_ell": 1, "correlation": 2, "radial_mlp": [8],
                  "long_range": {"kind": "ewald"}},
        "train": {"max_epochs": 1, "progress_bar": False, "charges_weight": 1.0},
    }  # fmt: skip
    data = {"valid_fraction": 0.25, "e0s": "average", "batch_size": 3}
    from_files = RunConfig.from_dict({**common, "data": {**data, "train_file": str(src)}})
    from_store = RunConfig.from_dict({**common, "data": {**data, "train_file": str(tmp_path / "store")}})
    a = _train_and_capture(from_files, tmp_path / "run_files")
    b = _train_and_capture(from_store, tmp_path / "run_store")
    assert len(a) == len(b) == 3
    for x, y in zip(a, b):
        assert set(x) == set(y)
        for key in x:
            torch.testing.assert_close(x[key], y[key], rtol=0, atol=0, msg=key)
    charged = torch.cat([x[K.CHARGES_WEIGHT] for x in b])
    assert bool((charged > 0).all())  # the per-atom charges reached the loss from the store
    assert bool((torch.cat([x[K.FORCES_MASK] for x in b]) == 0).any())  # fixed atoms too
    assert len(set(torch.cat([x[K.WEIGHT] for x in b]).tolist())) > 1  # and the config weights


@pytest.mark.slow
def test_a_run_on_the_builtin_nacl_data_records_it_as_its_dataset(tmp_path):
    import mlip

    cfg = RunConfig.from_dict(
        {"data": {"builtin": "tosi_fumi_nacl", "nacl_frames": 8, "nacl_test_frames": 2},
         "model": {"name": "mace", "r_max": 4.0, "channels": 4, "max_ell": 1, "correlation": 2, "radial_mlp": [8]},
         "train": {"max_epochs": 1, "progress_bar": False}}
    )  # fmt: skip
    run_training(cfg, tmp_path)
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    assert payload["provenance"]["train_file"] == "built-in Tosi-Fumi NaCl"
    mlip.load_model(tmp_path / "model.pt")
