"""The preprocessed format: round trip against the readers, parallel writing, resume after an interruption."""

import json
import os
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
        [sys.executable, "-m", "mlip.cli.preprocess", *map(str, SOURCES), str(out), "--workers", "2",
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


def _interrupted_first_run(out, sources, shard_size, keep=3):
    """A first run killed before its manifest: only its first ``keep`` shards exist."""
    preprocess(sources, out, shard_size=shard_size)
    (out / "manifest.json").unlink()
    for shard in sorted(out.glob("shard-*"))[keep:]:
        shutil.rmtree(shard)


def test_a_rerun_with_another_source_after_an_interruption_is_refused(tmp_path):
    """Before the fix the rerun kept the first run's shards: duplicated frames under a manifest naming only the
    new source."""
    out = tmp_path / "out"
    _interrupted_first_run(out, [SOURCES[0]], shard_size=2)
    with pytest.raises(ValueError, match="made with other sources"):
        preprocess([SOURCES[1]], out, shard_size=2)
    manifest = preprocess([SOURCES[1]], out, shard_size=2, restart=True)  # asked for: starts again
    assert manifest["n_frames"] == len(read_frames(SOURCES[1]))
    _assert_same(PreprocessedDataset(out, r_max=5.0), read_frames(SOURCES[1]))


def test_a_rerun_with_another_shard_size_after_an_interruption_is_refused(tmp_path):
    out = tmp_path / "out"
    _interrupted_first_run(out, SOURCES, shard_size=4, keep=2)
    with pytest.raises(ValueError, match="made with other shard_size"):
        preprocess(SOURCES, out, shard_size=5)
    preprocess(SOURCES, out, shard_size=4)  # the same settings finish it
    _assert_same(PreprocessedDataset(out, r_max=5.0), _expected())


def test_the_same_source_under_another_spelling_is_the_same_run(tmp_path, monkeypatch):
    """Before the fix a complete dataset made from a relative path was refused as "other sources" when the same
    file was given by its absolute path."""
    out = tmp_path / "out"
    monkeypatch.chdir(SAMPLE)
    preprocess([Path(SOURCES[0].name)], out, shard_size=2)
    preprocess([SOURCES[0].resolve()], out, shard_size=2)  # the same file: accepted
    _interrupted_first_run(tmp_path / "out2", [Path(SOURCES[0].name)], shard_size=2)
    preprocess([SOURCES[0].resolve()], tmp_path / "out2", shard_size=2)  # and an interrupted run finished
    _assert_same(PreprocessedDataset(tmp_path / "out2", r_max=5.0), read_frames(SOURCES[0]))


def test_a_source_modified_since_is_another_run(tmp_path):
    src = tmp_path / "frames.extxyz"
    shutil.copy(SOURCES[1], src)
    out = tmp_path / "out"
    _interrupted_first_run(out, [src], shard_size=4, keep=1)
    src.write_text(src.read_text())  # rewritten (e.g. regenerated): the same path, another modification time
    os.utime(src, ns=(10**9, 10**9))
    with pytest.raises(ValueError, match="a source file changed since"):
        preprocess([src], out, shard_size=4)


def test_a_damaged_shard_is_written_again_on_rerun(tmp_path):
    out = tmp_path / "out"
    preprocess(SOURCES, out, shard_size=4)
    positions = out / "shard-000002" / "positions.npy"
    raw = bytearray(positions.read_bytes())
    raw[-3] ^= 0x40
    positions.write_bytes(bytes(raw))
    ds = PreprocessedDataset(out, r_max=5.0)
    first_of_shard_2 = sum(e["n_frames"] for e in ds.manifest["shards"][:2])
    with pytest.raises(ValueError, match=r"shard-000002: positions.npy does not match its checksum"):
        ds.frame(first_of_shard_2)
    preprocess(SOURCES, out, shard_size=4)  # the rerun checks the shards and rewrites the damaged one
    _assert_same(PreprocessedDataset(out, r_max=5.0), _expected())


def test_a_foreign_directory_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="did not write"):
        preprocess(SOURCES, out, shard_size=4)
    assert (out / "notes.txt").read_text() == "mine"


def test_two_runs_into_one_directory(tmp_path):
    from mlip.fileio import DirectoryLock

    (tmp_path / "out").mkdir()
    with (
        DirectoryLock(tmp_path / "out", "mlip-preprocess run"),
        pytest.raises(ValueError, match="in use by another"),
    ):
        preprocess(SOURCES, tmp_path / "out", shard_size=4)
