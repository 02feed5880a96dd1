"""train.py on a preprocessed directory: statistics cached once, split by material, model and metrics written."""

import json
from pathlib import Path

import pytest

from mlip.data.preprocess import preprocess
from mlip.testing.models import tiny_run_config
from mlip.training.config import RunConfig
from mlip.training.run import prepare_data, run_training

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "mptrj_sample"
SOURCE = SAMPLE / "orb_mptrj_reconstructed.json"

pytestmark = pytest.mark.skipif(not SOURCE.exists(), reason="../shared/data/mptrj_sample is not available")

TINY = tiny_run_config()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from mlip.testing.synthetic import write_synthetic_mptrj

    tmp = tmp_path_factory.mktemp("store")
    write_synthetic_mptrj(SOURCE, tmp / "syn.json", copies=3)  # 6 materials, 33 frames
    preprocess([tmp / "syn.json"], tmp / "out", shard_size=5, workers=1)
    return tmp / "out"


def _config(store, **data):
    return RunConfig.from_dict({**TINY, "data": {"train_file": str(store), "batch_size": 4, **data}})


def test_statistics_are_computed_once_and_cached(store):
    first = prepare_data(_config(store, split_by="mp_id", valid_fraction=0.1))
    cached = list((store / "statistics").glob("*.json"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    second = prepare_data(_config(store, split_by="mp_id", valid_fraction=0.1))
    assert cached[0].stat().st_mtime_ns == stamp
    assert first.model_config == second.model_config
    cfg = first.model_config
    assert cfg["atomic_numbers"] == sorted(cfg["atomic_numbers"])
    assert cfg["avg_num_neighbors"] > 0
    assert cfg["scale"] > 0
    train_ids = {first.train.frame(i).info["mp_id"] for i in range(len(first.train))}
    valid_ids = {first.valid.frame(i).info["mp_id"] for i in range(len(first.valid))}
    assert not train_ids & valid_ids


def test_training_runs_end_to_end(store, tmp_path):
    metrics = run_training(_config(store, valid_fraction=0.2), tmp_path)
    assert (tmp_path / "model.pt").is_file()
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert metrics["valid"]["n_frames"] == 7  # 20 % of 33


def test_other_ranks_wait_for_rank_zeros_statistics(store):
    from mlip.data.store import PreprocessedDataset
    from mlip.data.store_stats import store_statistics

    ds = PreprocessedDataset(store, r_max=3.3, indices=list(range(20)))
    with pytest.raises(TimeoutError, match="rank 0 writes them"):
        store_statistics(ds, wait_seconds=1.0)
    computed = store_statistics(ds)
    assert store_statistics(ds, wait_seconds=1.0) == computed


def test_ddp_on_a_preprocessed_directory(store, tmp_path):
    import os
    import subprocess
    import sys

    import yaml

    root = Path(__file__).resolve().parents[2]
    cfg = tmp_path / "cfg.yaml"
    raw = {**TINY, "data": {"train_file": str(store), "batch_size": 4, "valid_fraction": 0.2, "seed": 7}}
    cfg.write_text(yaml.safe_dump(raw))
    proc = subprocess.run(
        [sys.executable, str(root / "train.py"), "--config", str(cfg), "--run-dir", str(tmp_path / "run"),
         "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu"],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONPATH=str(root)),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MEMBER: 2/2" in proc.stdout + proc.stderr  # the --trainer.* flags started two processes
    assert (tmp_path / "run" / "metrics.json").is_file()
