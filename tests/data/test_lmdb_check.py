"""Damaged LMDB files are refused before LMDB maps them (mlip.data.lmdb_check): LMDB trusts its pages, and a
damaged size or page reference made it read past the end of the file and kill the interpreter with SIGBUS (found
by the fuzz suite). Each damaged file is read in a child process, so that a crash fails the test."""

import json
import struct
import subprocess
import sys

import lmdb
import pytest

_READER = """
import json, sys
from mlip.data.lmdb_env import iter_records
try:
    n = sum(1 for _ in iter_records(sys.argv[1]))
    print(json.dumps({"read": n}))
except Exception as err:
    print(json.dumps({"error": type(err).__name__ + ": " + str(err)}))
"""


def _write(path, n: int, value_size: int) -> None:
    env = lmdb.open(str(path), subdir=False, map_size=1 << 26)
    with env.begin(write=True) as txn:
        for i in range(n):
            txn.put(str(i).encode(), bytes([i % 251]) * value_size)
    env.close()


def _meta(data: bytes) -> tuple[int, int]:
    """(page size, main-database root page) of the current meta page."""
    psize = struct.unpack_from("<I", data, 40)[0]
    metas = [struct.unpack_from("<QQQ", data, off + 128) for off in (0, psize)]  # root, last page, txnid
    root, _, _ = max(metas, key=lambda m: m[2])
    return psize, root


def _read_in_child(path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _READER, str(path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"the reader crashed (exit {proc.returncode}): {proc.stderr[-1500:]}"
    return json.loads(proc.stdout)


def _damaged(tmp_path, name: str, n: int, value_size: int, damage) -> str:
    path = tmp_path / f"{name}.lmdb"
    _write(path, n, value_size)
    data = bytearray(path.read_bytes())
    damage(data, *_meta(bytes(data)))
    path.write_bytes(bytes(data))
    return path


def _first_node(data, page_start) -> int:
    return page_start + struct.unpack_from("<H", data, page_start + 16)[0]


def _value_size_past_the_page(data, psize, root):  # inline values: one leaf page
    node = _first_node(data, root * psize)
    struct.pack_into("<HH", data, node, 0xFFFF, 0x00FF)


def _overflow_value_past_the_file(data, psize, root):  # large values live in overflow pages
    node = _first_node(data, root * psize)
    struct.pack_into("<HH", data, node, 0xFFFF, 0x0FFF)


def _child_page_past_the_file(data, psize, root):  # a branch page's first child
    node = _first_node(data, root * psize)
    struct.pack_into("<HHH", data, node, 0x4000, 0x0100, 0)


def _node_offset_outside_the_page(data, psize, root):
    struct.pack_into("<H", data, root * psize + 16, 0xFFF0)


CASES = {
    "value_size_past_the_page": (3, 16, _value_size_past_the_page),
    "overflow_value_past_the_file": (3, 6000, _overflow_value_past_the_file),
    "child_page_past_the_file": (600, 16, _child_page_past_the_file),
    "node_offset_outside_the_page": (3, 16, _node_offset_outside_the_page),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_damaged_tree_is_a_clear_error(tmp_path, case):
    n, size, damage = CASES[case]
    path = _damaged(tmp_path, case, n, size, damage)
    outcome = _read_in_child(path)
    assert outcome.get("error", "").startswith("MLIPInputError: cannot open"), outcome
    assert "damaged" in outcome["error"]
    assert path.name in outcome["error"]


def test_a_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "t.lmdb"
    _write(path, 3, 6000)
    path.write_bytes(path.read_bytes()[:-4096])
    assert "truncated" in _read_in_child(path)["error"]


@pytest.mark.parametrize(("n", "size"), [(0, 1), (3, 16), (600, 16), (40, 9000)])
def test_intact_files_pass(tmp_path, n, size):
    from mlip.data.lmdb_check import check_lmdb_file

    path = tmp_path / "ok.lmdb"
    _write(path, n, size)
    check_lmdb_file(path)
    assert _read_in_child(path) == {"read": n}
