"""Shared fixtures: the shared real-data folder (../shared/data beside the repository), a nearly full disk."""

import errno
import os
from pathlib import Path

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):  # pytest -n K: share the cores among the K workers
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"the shared data folder is missing: {SHARED_DATA} (CI and developers have it)")
    return SHARED_DATA


class _FullDisk:
    """A writable file on a disk with ``state["budget"]`` bytes left (shared by every file): the write that does
    not fit writes what fits and raises ENOSPC, as a full disk does."""

    def __init__(self, fh, state):
        self._fh = fh
        self._state = state

    def write(self, data):
        n, left = len(data), self._state["budget"]
        if n > left:
            self._fh.write(data[:left])
            self._state["budget"] = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._state["budget"] = left - n
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()


@pytest.fixture
def full_disk(monkeypatch):
    """Every file mlip writes (through mlip.fileio's one seam) draws on ``full_disk["budget"]`` bytes, set by the
    test; when they run out the disk is full."""
    import mlip.fileio as fileio

    state = {"budget": 100}
    original, write_note = fileio.open_tmp, fileio._write_note

    def note(fd, data):  # the lock file's holder note draws on the same budget
        if len(data) > state["budget"]:
            state["budget"] = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        state["budget"] -= len(data)
        write_note(fd, data)

    monkeypatch.setattr(fileio, "open_tmp", lambda path, mode: _FullDisk(original(path, mode), state))
    monkeypatch.setattr(fileio, "_write_note", note)
    return state


@pytest.fixture
def compile_with_aot_eager(monkeypatch):
    """``compile_network()`` traces with ``aot_eager`` in this test: the graph Dynamo and AOTAutograd give Inductor,
    run op by op, without Inductor's C++ code generation (about a minute per model on a CI core). For tests of
    the plumbing (a flag or config key that compiles); Inductor's own parity is ``tests/models/test_compile.py``'s."""
    from mlip.models.base import EdgePotential

    original = EdgePotential.compile_network
    monkeypatch.setattr(
        EdgePotential, "compile_network", lambda self, **o: original(self, **{"backend": "aot_eager", **o})
    )
