"""Frame sources: one registry that every reader (read_frames, mlip-preprocess, mlip-relax, replay) goes through."""

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import write

import mlip.data.sources as sources_module
from mlip.data import read_frames
from mlip.data.preprocess import preprocess
from mlip.data.sources import FrameSource, register_source, source_named, source_of, sources
from mlip.data.store import PreprocessedDataset
from mlip.errors import MLIPFileNotFoundError, MLIPInputError


def test_each_path_finds_its_source(tmp_path, shared_data):
    write(tmp_path / "a.xyz", bulk("Cu"))
    assert source_of(tmp_path / "a.xyz").name == "ase"
    assert source_of(shared_data / "mptrj_sample" / "orb_mptrj_reconstructed.json").name == "mptrj_json"
    assert [s.name for s in sources()][-1] == "ase"  # the fallback is tried last
    assert source_named("aselmdb").random_access
    assert not source_named("ase").random_access
    with pytest.raises(MLIPFileNotFoundError, match="no such data file"):
        source_of(tmp_path / "missing.xyz")
    (tmp_path / "d").mkdir()
    with pytest.raises(MLIPInputError, match="is a directory .*not a data source"):
        source_of(tmp_path / "d")


def _toy_source():
    """Frames as a JSON list of ``{"numbers", "positions", "energy"}``, in files named ``*.toy``."""

    def iterate(path, **_):
        for rec in json.loads(path.read_text()):
            atoms = Atoms(numbers=rec["numbers"], positions=rec["positions"], cell=[6, 6, 6], pbc=True)
            atoms.info["energy"] = rec["energy"]
            yield atoms

    return FrameSource(name="toy", detect=lambda p: p.suffix == ".toy", iterate=iterate)


def test_a_registered_source_is_read_by_every_reader(tmp_path, monkeypatch):
    monkeypatch.setattr(sources_module, "_REGISTRY", list(sources()))
    register_source(_toy_source())
    assert [s.name for s in sources()][-2:] == ["toy", "ase"]
    rng = np.random.default_rng(0)
    records = [{"numbers": [29, 29], "positions": (rng.random((2, 3)) * 3).tolist(), "energy": -1.0 - i}
               for i in range(5)]  # fmt: skip
    (tmp_path / "set.toy").write_text(json.dumps(records))
    frames = read_frames(tmp_path / "set.toy")
    assert [f.energy for f in frames] == [r["energy"] for r in records]
    preprocess([tmp_path / "set.toy"], tmp_path / "store", shard_size=2)
    ds = PreprocessedDataset(tmp_path / "store", r_max=4.0)
    assert [ds.frame(i).energy for i in range(len(ds))] == [r["energy"] for r in records]
