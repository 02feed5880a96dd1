"""The streaming MPtrj reader against the ASE-db and extxyz twins of the sample, and its failure modes."""

from pathlib import Path

import ase.db
import ase.io
import numpy as np
import pytest

from mlip.data.mptrj import iter_mptrj_records, read_mptrj
from mlip.data.readers import read_frames

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "mptrj_sample"
JSON = SAMPLE / "orb_mptrj_reconstructed.json"

pytestmark = pytest.mark.skipif(not JSON.exists(), reason="../shared/data/mptrj_sample is not available")


def _by_frame_id(images):
    return {a.info["frame_id"]: a for a in images if "frame_id" in a.info}


def test_matches_the_extxyz_twin():
    ours = _by_frame_id(read_mptrj(JSON))
    twin = _by_frame_id(ase.io.read(SAMPLE / "orb_mptrj_frames.extxyz", ":"))
    assert len(ours) == 11
    assert set(ours) <= set(twin)
    for fid, a in ours.items():
        b = twin[fid]
        assert a.info["mp_id"] == b.info["mp_id"]
        np.testing.assert_array_equal(a.numbers, b.numbers)
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-6)
        np.testing.assert_allclose(a.cell.array, b.cell.array, atol=1e-6)
        # ASE's extxyz reader puts energy, forces and stress on a SinglePointCalculator
        assert a.get_potential_energy() == pytest.approx(b.get_potential_energy(), abs=1e-6)
        np.testing.assert_allclose(a.get_forces(), b.get_forces(), atol=1e-6)
        np.testing.assert_allclose(a.get_stress(voigt=False), b.get_stress(voigt=False), atol=1e-6)


def test_matches_the_ase_db_twin_and_the_corrected_energy():
    rows = {f"{r.data['task_id']}-{r.data['calc_id']}-{r.data['ionic_step']}": r
            for r in ase.db.connect(SAMPLE / "orb_10_thin_mp_traj_systems.db").select()}  # fmt: skip
    corrected = _by_frame_id(read_mptrj(JSON, energy="corrected"))
    for fid, a in _by_frame_id(read_mptrj(JSON)).items():
        row = rows[fid]
        assert a.get_potential_energy() == pytest.approx(row.energy, abs=1e-6)
        np.testing.assert_allclose(a.get_forces(), row.forces, atol=1e-6)
        np.testing.assert_allclose(a.get_stress(), row.stress, atol=1e-6)  # both Voigt, ASE sign, eV/Å^3
        assert corrected[fid].get_potential_energy() == pytest.approx(
            row.data["corrected_total_energy"], abs=1e-6
        )


def test_tiny_read_chunks_give_the_same_records():
    whole = list(iter_mptrj_records(JSON))
    for chunk in (1, 7, 64):
        assert list(iter_mptrj_records(JSON, chunk_size=chunk)) == whole


def test_truncated_and_foreign_files_raise(tmp_path):
    text = JSON.read_text()
    cut = tmp_path / "cut.json"
    cut.write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match="truncated"):
        list(read_mptrj(cut))
    foreign = tmp_path / "list.json"
    foreign.write_text("[1, 2, 3]")
    with pytest.raises(ValueError, match="not MPtrj's layout"):
        list(read_mptrj(foreign))
    with pytest.raises(ValueError, match="energy must be"):
        list(read_mptrj(JSON, energy="dft"))


def test_read_frames_keeps_material_ids():
    frames = read_frames(JSON)
    assert len(frames) == 11
    assert {f.info["mp_id"] for f in frames} == {"mp-1205402", "mp-1020019"}
    assert all(f.stress is not None and f.forces is not None for f in frames)


def test_split_by_material_keeps_each_material_on_one_side():
    from mlip.data.dataset import split_frames

    frames = read_frames(JSON)
    for seed in range(5):
        train, valid = split_frames(frames, valid_fraction=0.2, seed=seed, group_key="mp_id")
        assert train
        assert valid
        assert not {f.info["mp_id"] for f in train} & {f.info["mp_id"] for f in valid}
        assert len(train) + len(valid) == len(frames)
    with pytest.raises(ValueError, match="cannot be combined"):
        split_frames(frames, valid_last=2, group_key="mp_id")


def test_synthetic_copies_stream_back_with_new_material_ids(tmp_path):
    from mlip.testing.synthetic import write_synthetic_mptrj

    info = write_synthetic_mptrj(JSON, tmp_path / "syn.json", copies=2, seed=1)
    assert info["frames"] == 22
    assert info["materials"] == 4
    frames = list(read_mptrj(tmp_path / "syn.json"))
    assert len(frames) == 22
    assert {a.info["mp_id"] for a in frames} == {"mp-1205402-syn0", "mp-1020019-syn0", "mp-1205402-syn1",
                                                 "mp-1020019-syn1"}  # fmt: skip
    original = list(read_mptrj(JSON))
    shift = frames[0].positions - original[0].positions
    assert 0 < abs(shift).max() < 0.2
    assert frames[0].get_potential_energy() == original[0].get_potential_energy()
    capped = write_synthetic_mptrj(JSON, tmp_path / "cap.json", copies=1000, target_bytes=100_000)
    assert capped["bytes"] < 200_000
    assert len(list(read_mptrj(tmp_path / "cap.json"))) == capped["frames"]
