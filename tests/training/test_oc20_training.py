"""train.py on OC20 layouts: a legacy LMDB directory with referenced energies, and the preprocessed settings check."""

from pathlib import Path

import ase.io
import pytest

from mlip import keys as K
from mlip.data.preprocess import preprocess
from mlip.data.readers import LabelKeys
from mlip.testing.models import tiny_run_config
from mlip.testing.oc20_lmdb import write_pyg_lmdb
from mlip.training.config import RunConfig
from mlip.training.run import prepare_data, run_training

OC20 = Path(__file__).resolve().parents[3] / "shared" / "data" / "oc20_s2ef_sample"
TRAJ = OC20 / "traj" / "random1000156.traj"

pytestmark = pytest.mark.skipif(not OC20.exists(), reason="../shared/data/oc20_s2ef_sample is not available")

TINY = tiny_run_config()


@pytest.fixture(scope="module")
def lmdb_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("oc20")
    (tmp / "lmdb").mkdir()
    write_pyg_lmdb(tmp / "lmdb" / "data.0000.lmdb", ase.io.read(TRAJ, ":"), sid=1000156)
    (tmp / "ref.json").write_text('{"random1000156": -60.25}')
    return tmp


def _config(train_file, **data):
    return RunConfig.from_dict({**TINY, "data": {"train_file": str(train_file), "batch_size": 4, **data}})


def test_training_on_a_legacy_lmdb_directory_with_referenced_energies(lmdb_dir, tmp_path):
    cfg = _config(lmdb_dir / "lmdb", energy_references=str(lmdb_dir / "ref.json"), valid_fraction=0.2)
    prepared = prepare_data(cfg)
    energies = [g[K.ENERGY].item() for g in prepared.train.graphs]
    assert -10 < min(energies) <= max(energies) < 0  # adsorption energies, not the ~-67 eV totals
    metrics = run_training(cfg, tmp_path)
    assert (tmp_path / "model.pt").is_file()
    assert metrics["valid"]["n_frames"] == 7


def test_a_preprocessed_directory_refuses_settings_it_was_not_written_with(lmdb_dir, tmp_path):
    out = tmp_path / "out"
    preprocess([lmdb_dir / "lmdb"], out, shard_size=10, energy_references=lmdb_dir / "ref.json")
    with pytest.raises(ValueError, match="data.energy_references is None but .* was written with"):
        prepare_data(_config(out))
    with pytest.raises(ValueError, match=r"data.fixed_tags is \[0\] .*--fixed-tags"):
        prepare_data(_config(out, energy_references=str(lmdb_dir / "ref.json"), fixed_tags=[0]))
    prepared = prepare_data(_config(out, energy_references=str(lmdb_dir / "ref.json")))
    assert len(prepared.train) + len(prepared.valid) == 36
    assert LabelKeys().fixed_tags == ()
