"""OC20 layouts (fairchem aselmdb, legacy pickled-PyG LMDB, extxyz) agree with the native ``.traj`` files."""

import pickle
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.geometry import wrap_positions

from mlip.data.aselmdb import count_aselmdb, iter_aselmdb, write_aselmdb
from mlip.data.preprocess import preprocess
from mlip.data.pyg_lmdb import count_pyg_lmdb, record_fields
from mlip.data.readers import LabelKeys, read_frames
from mlip.data.sources import lmdb_kind
from mlip.testing.oc20_lmdb import write_pyg_lmdb

OC20 = Path(__file__).resolve().parents[3] / "shared" / "data" / "oc20_s2ef_sample"
TRAJS = {1000156: OC20 / "traj" / "random1000156.traj", 1000163: OC20 / "traj" / "random1000163.traj"}

pytestmark = pytest.mark.skipif(not OC20.exists(), reason="../shared/data/oc20_s2ef_sample is not available")


@pytest.fixture(scope="module")
def native():
    return {sid: read_frames(path) for sid, path in TRAJS.items()}


def _assert_same_frames(got, expected, *, float32: bool = False):
    """Same structures and labels; float32 storage (the legacy LMDBs) rounds positions and forces, and wraps
    positions into the cell as fairchem's AtomsToGraphs does."""
    assert len(got) == len(expected)
    tol = {"atol": 2e-5, "rtol": 1e-6} if float32 else {"atol": 0, "rtol": 0}
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g.atoms.numbers, e.atoms.numbers)
        np.testing.assert_array_equal(g.atoms.pbc, e.atoms.pbc)
        np.testing.assert_allclose(g.atoms.cell.array, e.atoms.cell.array, **tol)
        pos = e.atoms.positions
        if float32:
            pos = wrap_positions(pos, e.atoms.cell, pbc=e.atoms.pbc, eps=0)
        np.testing.assert_allclose(g.atoms.positions, pos, **tol)
        assert g.energy == pytest.approx(e.energy, abs=1e-9)
        np.testing.assert_allclose(g.forces, e.forces, **tol)
        np.testing.assert_array_equal(g.fixed, e.fixed)
        assert g.fixed.sum() > 0


def test_aselmdb_round_trip_equals_the_trajectories(native, tmp_path):
    for sid, path in TRAJS.items():
        n = write_aselmdb(tmp_path / f"random{sid}.aselmdb", ase.io.read(path, ":"))
        assert n == len(native[sid])
    got = read_frames(tmp_path)  # a directory of aselmdb files, sorted
    assert count_aselmdb(tmp_path) == len(got) == 63
    _assert_same_frames(got[:36], native[1000156])
    _assert_same_frames(got[36:], native[1000163])
    assert lmdb_kind(tmp_path) == "aselmdb"


def test_aselmdb_with_an_lmdb_suffix_is_recognised_by_content(native, tmp_path):
    write_aselmdb(tmp_path / "data.lmdb", ase.io.read(TRAJS[1000163], ":"))
    assert lmdb_kind(tmp_path / "data.lmdb") == "aselmdb"
    _assert_same_frames(read_frames(tmp_path / "data.lmdb"), native[1000163])


@pytest.mark.parametrize(("layout", "names"), [("pyg1", "old"), ("pyg2", "new"), ("pyg1", "new")])
def test_legacy_lmdb_equals_the_trajectories(native, tmp_path, layout, names):
    for k, (sid, path) in enumerate(TRAJS.items()):
        write_pyg_lmdb(
            tmp_path / f"data.{k:04d}.lmdb", ase.io.read(path, ":"), sid=sid, layout=layout, names=names
        )
    assert lmdb_kind(tmp_path) == "pyg"
    got = read_frames(tmp_path)
    assert count_pyg_lmdb(tmp_path) == len(got) == 63
    _assert_same_frames(got[:36], native[1000156], float32=True)
    _assert_same_frames(got[36:], native[1000163], float32=True)
    assert [f.info["fid"] for f in got[:36]] == list(range(36))
    assert {f.info["sid"] for f in got[36:]} == {1000163}


def test_records_written_by_pytorch_geometric_itself(native, tmp_path):
    """The reader needs no PyG, but reads what PyG 2.x pickles (run where torch_geometric is installed)."""
    pytest.importorskip("torch_geometric")
    from torch_geometric.data import Data

    from mlip.data.lmdb_env import open_lmdb
    from mlip.testing.oc20_lmdb import atoms_to_record

    images = ase.io.read(TRAJS[1000163], ":")
    env = open_lmdb(tmp_path / "pyg.lmdb", write=True)
    with env.begin(write=True) as txn:
        for i, atoms in enumerate(images):
            txn.put(
                str(i).encode(), pickle.dumps(Data(**atoms_to_record(atoms, sid=1000163, fid=i)), protocol=-1)
            )
        txn.put(b"length", pickle.dumps(len(images)))
    env.close()
    _assert_same_frames(read_frames(tmp_path / "pyg.lmdb"), native[1000163], float32=True)


def test_is2re_records_give_the_initial_and_relaxed_structures():
    import torch

    from mlip.data.pyg_lmdb import fields_to_atoms

    fields = {
        "pos": torch.zeros(2, 3),
        "pos_relaxed": torch.tensor([[0.0, 0, 0], [0, 0, 1.1]]),
        "atomic_numbers": torch.tensor([6.0, 8.0]),
        "cell": torch.eye(3).view(1, 3, 3) * 10,
        "y_init": 1.5,
        "y_relaxed": -0.5,
        "sid": 7,
    }
    initial, relaxed = fields_to_atoms(fields)
    assert initial.get_potential_energy() == 1.5
    assert relaxed.get_potential_energy() == -0.5
    assert relaxed.positions[1, 2] == pytest.approx(1.1)


def test_the_unpickler_refuses_foreign_code():
    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    with pytest.raises(ValueError, match="refusing to unpickle"):
        record_fields(pickle.dumps(Evil()))


def test_extxyz_subsample_agrees_with_the_trajectory(native):
    frames = [f for f in read_frames(OC20 / "oc20_traj_subsample.extxyz") if f.info["sid"] == "random1000156"]
    assert len(frames) >= 4
    for f in frames:
        e = native[1000156][int(f.info["frame"])]
        np.testing.assert_allclose(f.atoms.positions, e.atoms.positions, atol=1e-7)
        assert f.energy == pytest.approx(e.energy, abs=1e-7)
        np.testing.assert_allclose(f.forces, e.forces, atol=1e-7)
        np.testing.assert_array_equal(f.fixed, e.fixed)


def test_tag_zero_atoms_are_fixed_only_when_asked(tmp_path):
    atoms = ase.io.read(OC20 / "fairchem_tests_atoms.json")
    tags = atoms.get_tags()
    write_aselmdb(tmp_path / "one.aselmdb", [atoms])
    for source in (OC20 / "fairchem_tests_atoms.json", tmp_path / "one.aselmdb"):
        plain = read_frames(source)[0]
        np.testing.assert_array_equal(np.flatnonzero(plain.fixed), atoms.constraints[0].get_indices())
        tagged = read_frames(source, LabelKeys(fixed_tags=(0,)))[0]
        np.testing.assert_array_equal(tagged.fixed, plain.fixed | (tags == 0))
        assert tagged.fixed.sum() > plain.fixed.sum()


def test_corrupt_lmdb_records_raise_clear_errors(tmp_path):
    from mlip.data.lmdb_env import open_lmdb

    env = open_lmdb(tmp_path / "bad.aselmdb", write=True)
    with env.begin(write=True) as txn:
        txn.put(b"1", b"not zlib")
    env.close()
    with pytest.raises(ValueError, match=r"bad.aselmdb\[id 1\]: not an aselmdb row"):
        list(iter_aselmdb(tmp_path / "bad.aselmdb"))
    env = open_lmdb(tmp_path / "bad.lmdb", write=True)
    with env.begin(write=True) as txn:
        txn.put(b"0", pickle.dumps({"foo": 1}))
    env.close()
    with pytest.raises(ValueError, match=r"bad.lmdb\[0\]: the record has no 'pos'"):
        read_frames(tmp_path / "bad.lmdb")
    (tmp_path / "garbage.lmdb").write_bytes(b"\0" * 100)
    with pytest.raises(ValueError, match="cannot open"):
        read_frames(tmp_path / "garbage.lmdb")


def test_pickled_tensors_decode_to_equal_arrays_without_torch():
    import io

    import torch

    from mlip.data.pyg_lmdb import _OC20Unpickler

    tensors = [
        torch.randn(4, 3),
        torch.arange(5),
        torch.arange(12).reshape(3, 4).T,  # strided
        torch.randn(3, 3, dtype=torch.float64)[1:],  # offset into its storage
        torch.tensor([True, False]),
        torch.tensor(3.5),  # 0-d
        torch.zeros(5, dtype=torch.uint8),
        torch.ones(2, dtype=torch.int32),
        torch.ones(3, dtype=torch.float16),
        torch.randn(1, 3, 3),
    ]
    for t in tensors:
        got = _OC20Unpickler(io.BytesIO(pickle.dumps(t, protocol=pickle.HIGHEST_PROTOCOL))).load()
        assert isinstance(got, np.ndarray)
        assert got.dtype == t.numpy().dtype
        np.testing.assert_array_equal(got, t.numpy())
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        _OC20Unpickler(io.BytesIO(pickle.dumps(torch.ones(2, dtype=torch.bfloat16)))).load()


def test_rows_in_ase_json_encoding_are_read_too(native, tmp_path):
    """Older aselmdb writers stored arrays in ASE's ``{"__ndarray__": ...}`` encoding instead of plain lists."""
    import zlib

    from ase.db.row import AtomsRow
    from ase.io.jsonio import encode

    from mlip.data.lmdb_env import open_lmdb

    atoms = ase.io.read(TRAJS[1000163], "3")
    row = AtomsRow(atoms)
    dct = {k: row[k] for k in row.__dict__ if k[0] != "_" and k not in row._keys and k != "id"}
    dct["constraints"] = [c.todict() for c in atoms.constraints]
    env = open_lmdb(tmp_path / "old.aselmdb", write=True)
    with env.begin(write=True) as txn:
        txn.put(b"1", zlib.compress(encode(dct).encode()))
    env.close()
    assert '"__ndarray__"' in encode(dct)
    _assert_same_frames(read_frames(tmp_path / "old.aselmdb"), native[1000163][3:4])


def test_an_lmdb_environment_directory_is_a_source(native, tmp_path):
    """LMDB's default layout (a directory holding data.mdb), as other tools write OC20-style records."""
    import lmdb

    images = ase.io.read(TRAJS[1000163], ":")
    single = tmp_path / "single.lmdb"
    write_pyg_lmdb(single, images, sid=1000163)
    env = lmdb.open(str(tmp_path / "env"), map_size=1 << 30)  # subdir=True: env/data.mdb
    src = lmdb.open(str(single), subdir=False, readonly=True, lock=False)
    with env.begin(write=True) as out, src.begin() as inp:
        for key, value in inp.cursor():
            out.put(key, value)
    env.close()
    src.close()
    assert lmdb_kind(tmp_path / "env") == "pyg"
    _assert_same_frames(read_frames(tmp_path / "env"), native[1000163], float32=True)
    manifest = preprocess([tmp_path / "env"], tmp_path / "out", shard_size=10, workers=2)
    assert manifest["n_frames"] == len(images)
