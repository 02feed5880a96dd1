"""Per-system reference energies: OC20's file formats, system-id forms, and subtraction on every reader path."""

import json
import pickle
from pathlib import Path

import ase.io
import numpy as np
import pytest

from mlip.data.preprocess import preprocess
from mlip.data.readers import LabelKeys, read_frames
from mlip.data.references import EnergyReferences, load_energy_references, system_id
from mlip.data.store import PreprocessedDataset
from mlip.testing.oc20_lmdb import write_pyg_lmdb

OC20 = Path(__file__).resolve().parents[3] / "shared" / "data" / "oc20_s2ef_sample"
TRAJ = OC20 / "traj" / "random1000156.traj"
REFS = {"random1000156": -60.25, "random1000163": -610.5}

pytestmark = pytest.mark.skipif(not OC20.exists(), reason="../shared/data/oc20_s2ef_sample is not available")


def test_system_ids_have_one_normal_form():
    assert system_id("random1000156") == system_id(1000156) == system_id("1000156") == "1000156"
    assert system_id(np.int64(7)) == "7"
    assert system_id("mp-149") == "mp-149"


def _s2ef_txt(path: Path, n_frames: int) -> Path:
    """The S2EF companion file: one ``random<sid>,frame<fid>,<E_ref>`` line per frame of the extxyz."""
    path.write_text("".join(f"random1000156,frame{i},{REFS['random1000156']}\n" for i in range(n_frames)))
    return path


def test_every_file_form_gives_the_same_mapping(tmp_path):
    expected = {"1000156": -60.25, "1000163": -610.5}
    (tmp_path / "ref.pkl").write_bytes(pickle.dumps({k: np.float64(v) for k, v in REFS.items()}))
    (tmp_path / "ref.json").write_text(json.dumps(REFS))
    (tmp_path / "ref.csv").write_text("system,reference\n1000156,-60.25\nrandom1000163,-610.5\n")
    for name in ("ref.pkl", "ref.json", "ref.csv"):
        assert load_energy_references(tmp_path / name) == expected
    txt = _s2ef_txt(tmp_path / "s2ef.txt", 3)
    assert load_energy_references(txt) == {"1000156": -60.25}


def test_bad_reference_files_are_refused(tmp_path):
    (tmp_path / "two.txt").write_text("random1,frame0,-1.0\nrandom1,frame1,-2.0\n")
    with pytest.raises(ValueError, match="two reference energies"):
        load_energy_references(tmp_path / "two.txt")
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"a": Path("x")}))
    with pytest.raises(pickle.UnpicklingError, match="holds only numbers"):
        load_energy_references(tmp_path / "evil.pkl")
    (tmp_path / "bad.txt").write_text("random1,frame0,-1.0\nrandom2,frame0,oops\n")
    with pytest.raises(ValueError, match=r"bad.txt:2"):
        load_energy_references(tmp_path / "bad.txt")


def test_references_are_subtracted_on_every_reader_path(tmp_path):
    refs = EnergyReferences({"1000156": -60.25})
    total = read_frames(TRAJ)
    for source in (TRAJ, _legacy(tmp_path)):
        referenced = read_frames(source, references=refs)
        np.testing.assert_allclose(
            [f.energy for f in referenced], [f.energy + 60.25 for f in total], atol=1e-9
        )
        np.testing.assert_allclose(referenced[3].forces, total[3].forces, atol=2e-5)  # forces untouched
        assert referenced[0].info["energy_reference"] == -60.25
    with pytest.raises(ValueError, match=r"extxyz\[0\]: system 'random1000100' has no reference energy"):
        read_frames(OC20 / "oc20_traj_subsample.extxyz", references=refs)


def _legacy(tmp_path: Path) -> Path:
    path = tmp_path / "legacy.lmdb"
    if not path.exists():
        write_pyg_lmdb(path, ase.io.read(TRAJ, ":"), sid=1000156)
    return path


def test_frames_without_a_system_id_are_refused(tmp_path):
    from ase.build import bulk
    from ase.calculators.emt import EMT

    atoms = bulk("Cu", cubic=True)
    atoms.calc = EMT()
    atoms.get_potential_energy()
    ase.io.write(tmp_path / "cu.extxyz", atoms)
    with pytest.raises(ValueError, match=r"cu.extxyz\[0\]: no info\['sid'\]"):
        read_frames(tmp_path / "cu.extxyz", references=EnergyReferences({"1": 0.0}))


@pytest.mark.parametrize("workers", [1, 2])
def test_preprocess_stores_referenced_energies_and_fixed_tags(tmp_path, workers):
    """LMDB records are read by the workers themselves; the result is the same for 1 and 2 of them."""
    txt = _s2ef_txt(tmp_path / "ref.txt", 36)
    manifest = preprocess(
        [_legacy(tmp_path)], tmp_path / "out", shard_size=10, workers=workers, keys=LabelKeys(fixed_tags=(0,)),
        energy_references=txt,
    )  # fmt: skip
    assert [s["n_frames"] for s in manifest["shards"]] == [10, 10, 10, 6]
    assert manifest["fixed_tags"] == [0]
    assert manifest["energy_references"] == str(txt.resolve())  # absolute: training may run elsewhere
    ds = PreprocessedDataset(tmp_path / "out", r_max=5.0)
    total = read_frames(TRAJ)
    direct = read_frames(
        _legacy(tmp_path), LabelKeys(fixed_tags=(0,)), references=EnergyReferences.from_file(txt)
    )
    assert len(ds) == len(direct) == 36
    for i, ref in enumerate(direct):
        frame = ds.frame(i)
        assert frame.energy == ref.energy == pytest.approx(total[i].energy + 60.25, abs=1e-9)
        np.testing.assert_array_equal(frame.atoms.positions, ref.atoms.positions)
        np.testing.assert_array_equal(frame.forces, ref.forces)
        assert frame.info["sid"] == "1000156"
        # the sample's trajectories carry no tags: every atom has tag 0 and counts as fixed
        assert frame.fixed.all()


def test_an_interrupted_lmdb_conversion_resumes(tmp_path):
    import shutil

    out = tmp_path / "out"
    preprocess([_legacy(tmp_path)], out, shard_size=10, workers=2)
    (out / "manifest.json").unlink()
    shutil.rmtree(out / "shard-000002")
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*")}
    manifest = preprocess([_legacy(tmp_path)], out, shard_size=10, workers=2)
    assert manifest["n_frames"] == 36
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*") if p.name in stamps} == stamps
    ds = PreprocessedDataset(out, r_max=5.0)
    np.testing.assert_array_equal(ds.frame(25).forces, read_frames(_legacy(tmp_path))[25].forces)
