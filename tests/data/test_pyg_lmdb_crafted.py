"""Crafted legacy OC20 LMDB records: tensor sizes, strides and offsets that point outside their storage are
refused with a clear error (before the fix they were handed to ``as_strided``, reading heap memory or crashing).

The records are read in a child process, so that a reader that crashes the interpreter fails the test instead of
taking pytest down with it.
"""

import io
import json
import pickle
import subprocess
import sys
from collections import OrderedDict

import pytest
import torch

from mlip.data.lmdb_env import open_lmdb
from mlip.testing.oc20_lmdb import _Pickler, _pyg_data


class _Tensor:
    """Pickled as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, {})``, with any
    offset, size and stride (torch itself cannot make such a tensor)."""

    def __init__(self, values: torch.Tensor, offset, size, stride):
        self.storage = values.contiguous()._typed_storage()
        self.args = (offset, size, stride)

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, (self.storage, *self.args, False, OrderedDict())


def _fields(pos) -> dict:
    return {
        "pos": pos,
        "atomic_numbers": torch.tensor([29.0, 29.0]),
        "cell": torch.eye(3).view(1, 3, 3) * 5,
        "natoms": 2,
        "y": -1.0,
        "force": torch.zeros(2, 3),
        "sid": 7,
        "fid": 0,
    }


STORAGE = torch.arange(6, dtype=torch.float32)  # 6 elements: a [2, 3] tensor fits exactly
CASES = {
    "offset_past_the_end": (1000, (2, 3), (3, 1)),
    "reaches_past_the_end": (1, (2, 3), (3, 1)),
    "negative_stride": (5, (2, 3), (-3, -1)),
    "negative_offset": (-4, (2, 3), (3, 1)),
    "huge_size": (0, (2**40, 3), (3, 1)),
    "huge_stride": (0, (2, 3), (2**50, 1)),
    "overlapping_stride_zero": (0, (10**6, 10**6), (0, 0)),
    "overlapping_dimensions": (0, (2, 3), (1, 1)),
    "size_not_an_integer": (0, (2.5, 3), (3, 1)),
    "sizes_and_strides_disagree": (0, (2, 3), (3,)),
}

_READER = """
import json, sys
from mlip.data.pyg_lmdb import iter_pyg_lmdb
out = {}
for name, path in json.loads(sys.argv[1]).items():
    try:
        atoms = list(iter_pyg_lmdb(path))
        out[name] = "read: " + repr(atoms[0].positions.tolist())
    except Exception as err:
        out[name] = type(err).__name__ + ": " + str(err)
print(json.dumps(out))
"""


def _write(path, pos) -> None:
    env = open_lmdb(path, write=True)
    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(_pyg_data(_fields(pos), "pyg1"))
    with env.begin(write=True) as txn:
        txn.put(b"0", buf.getvalue())
    env.close()


def test_crafted_tensor_views_are_refused_with_a_clear_error(tmp_path):
    paths = {}
    for name, (offset, size, stride) in CASES.items():
        paths[name] = str(tmp_path / f"{name}.lmdb")
        _write(paths[name], _Tensor(STORAGE, offset, size, stride))
    paths["well_formed"] = str(tmp_path / "well_formed.lmdb")
    _write(paths["well_formed"], _Tensor(STORAGE, 0, (2, 3), (3, 1)))
    proc = subprocess.run(
        [sys.executable, "-c", _READER, json.dumps(paths)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"the reader crashed (exit {proc.returncode}): {proc.stderr[-2000:]}"
    outcomes = json.loads(proc.stdout)
    assert outcomes["well_formed"] == "read: [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]"
    for name in CASES:
        assert outcomes[name].startswith("MLIPInputError: "), (name, outcomes[name])
        assert f"{name}.lmdb[0]" in outcomes[name], outcomes[name]  # the file and record are named


@pytest.mark.parametrize("numel", [-1, 10**12])
def test_a_storage_claiming_more_elements_than_its_blob_is_refused(numel):
    from mlip.data.pyg_lmdb import _load_storage

    buf = io.BytesIO()
    torch.save(STORAGE._typed_storage(), buf, _use_new_zipfile_serialization=False)
    blob = bytearray(buf.getvalue())
    # the element count is the 8 bytes before the raw float32 data at the end of the blob
    at = len(blob) - STORAGE.numel() * 4 - 8
    assert int.from_bytes(blob[at : at + 8], "little") == STORAGE.numel()
    blob[at : at + 8] = numel.to_bytes(8, "little", signed=True)
    with pytest.raises(pickle.UnpicklingError, match="tensor storage"):
        _load_storage(bytes(blob))
