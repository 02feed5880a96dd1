"""The preprocessed format: round trip against the readers, parallel writing, resume after an interruption."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mlip import keys as K
from mlip.data.graph import frame_to_graph
from mlip.data.preprocess import preprocess
from mlip.data.readers import LabelKeys, read_frames
from mlip.data.store import PreprocessedDataset

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "mptrj_sample"
SOURCES = [SAMPLE / "orb_mptrj_reconstructed.json", SAMPLE / "orb_mptrj_frames.extxyz"]

pytestmark = pytest.mark.skipif(
    not SOURCES[0].exists(), reason="../shared/data/mptrj_sample is not available"
)


def _expected():
    return [f for src in SOURCES for f in read_frames(src)]


def _assert_same(dataset, frames):
    assert len(dataset) == len(frames)
    for i, ref in enumerate(frames):
        got = dataset.frame(i)
        np.testing.assert_array_equal(got.atoms.numbers, ref.atoms.numbers)
        np.testing.assert_array_equal(got.atoms.positions, ref.atoms.positions)
        np.testing.assert_array_equal(got.atoms.cell.array, ref.atoms.cell.array)
        assert got.energy == ref.energy
        np.testing.assert_array_equal(got.forces, ref.forces)
        np.testing.assert_array_equal(got.stress, ref.stress)
        assert got.info.get("mp_id") == ref.info.get("mp_id")


@pytest.mark.parametrize("workers", [1, 2])
def test_round_trip_matches_the_readers(tmp_path, workers):
    manifest = preprocess(SOURCES, tmp_path / "out", shard_size=4, workers=workers)
    assert manifest["n_frames"] == 32
    per_source = [len(read_frames(src)) for src in SOURCES]
    assert len(manifest["shards"]) == sum(-(-n // 4) for n in per_source)  # each source starts a new shard
    ds = PreprocessedDataset(tmp_path / "out", r_max=5.0)
    frames = _expected()
    _assert_same(ds, frames)
    for i in (0, 13, 31):
        a, b = ds[i], frame_to_graph(frames[i], 5.0)
        assert set(a) == set(b)
        for key in (K.POSITIONS, K.EDGE_INDEX, K.EDGE_SHIFTS, K.ENERGY, K.FORCES, K.STRESS):
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
        assert ds.n_atoms(i) == len(frames[i].atoms)


def test_an_interrupted_run_resumes_without_corrupt_shards(tmp_path):
    out = tmp_path / "out"
    preprocess(SOURCES, out, shard_size=4)
    written = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*")}
    # simulate a kill: the manifest never written, two shards missing, one half-written temporary directory
    (out / "manifest.json").unlink()
    shutil.rmtree(out / "shard-000005")
    shutil.rmtree(out / "shard-000007")
    (out / "shard-000005.tmp-999").mkdir()
    (out / "shard-000005.tmp-999" / "positions.npy").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a complete preprocessed dataset"):
        PreprocessedDataset(out, r_max=5.0)
    preprocess(SOURCES, out, shard_size=4)
    _assert_same(PreprocessedDataset(out, r_max=5.0), _expected())
    for name, mtime in written.items():  # complete shards were not rewritten
        if name not in ("shard-000005", "shard-000007"):
            assert (out / name).stat().st_mtime_ns == mtime


def test_rerun_with_other_settings_is_refused(tmp_path):
    preprocess(SOURCES, tmp_path / "out", shard_size=4)
    with pytest.raises(ValueError, match="made with other shard_size"):
        preprocess(SOURCES, tmp_path / "out", shard_size=5)
    with pytest.raises(ValueError, match="made with other fixed_tags"):
        preprocess(SOURCES, tmp_path / "out", shard_size=4, keys=LabelKeys(fixed_tags=(0,)))


def test_command_line(tmp_path):
    out = tmp_path / "cli"
    result = subprocess.run(
        [sys.executable, "-m", "mlip.data.preprocess", *map(str, SOURCES), str(out), "--workers", "2",
         "--shard-size", "10"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "32 frames" in result.stdout
    assert json.loads((out / "manifest.json").read_text())["n_frames"] == 32


def test_at_most_max_open_shards_stay_mapped(tmp_path):
    preprocess(SOURCES, tmp_path / "out", shard_size=4)
    ds = PreprocessedDataset(tmp_path / "out", r_max=5.0, max_open_shards=2)
    for i in range(len(ds)):
        ds.frame(i)
        assert sum(s._arrays is not None for s in ds.shards) <= 2
    _assert_same(ds, _expected())  # closing and reopening shards changes nothing
