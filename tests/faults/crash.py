"""Run one of mlip's jobs in this process and kill it, like ``kill -9``, part-way through a write.

``python crash.py BUDGET JOB ARGS...``: every byte mlip writes (models, checkpoints, metrics, plots, logs,
manifests, shards and partial outputs all go through ``mlip.fileio.open_tmp``) is counted, in
this process and the worker processes it forks (the counter lives in shared memory); the write that crosses
``BUDGET`` bytes writes only up to the budget, flushes, and then the whole process group gets SIGKILL (the job's
worker processes die with it, as on a node failure). ``BUDGET`` < 0 never kills: the job runs to
its end and prints the bytes it wrote as ``WROTE <n>``.

Jobs: ``train ARGS`` (train.py's command line), ``preprocess ARGS`` (mlip-preprocess's), ``md ARGS``,
``relax ARGS``, ``export ARGS`` (mlip-md's, mlip-relax's, mlip-export's), ``save PATH N`` (N alternating
``save_model`` calls of two models to one file).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import signal
import sys

_SHARED = mmap.mmap(-1, 16)  # anonymous shared memory: one counter for this process and its forked workers
_WROTE = ctypes.c_int64.from_buffer(_SHARED, 0)
_BUDGET = ctypes.c_int64.from_buffer(_SHARED, 8)
SMALL = {
    "channels": 4,
    "max_ell": 2,
    "correlation": 2,
}  # the models the save job writes (tiny_mace overrides)


class _Dying:
    """A file whose writes count against the budget and kill the process group when it runs out."""

    def __init__(self, fh):
        self._fh = fh

    def write(self, data):
        n = len(data)
        before = _WROTE.value
        _WROTE.value = before + n
        if 0 <= _BUDGET.value <= before + n:
            self._fh.write(data[: max(_BUDGET.value - before, 0)])
            self._fh.flush()
            os.killpg(os.getpgid(0), signal.SIGKILL)
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()


def install(budget: int) -> None:
    import mlip.fileio as fileio

    _BUDGET.value = budget
    open_tmp = fileio.open_tmp  # every file mlip writes is opened here
    fileio.open_tmp = lambda path, mode: _Dying(open_tmp(path, mode))


def _save_loop(path: str, n: int) -> int:
    import torch

    from mlip.models import save_model
    from mlip.testing.models import tiny_mace

    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(tiny_mace(torch.float64, **SMALL))
    for i in range(n):
        save_model(models[i % 2], path, provenance={"seed": i % 2})
    return 0


def main() -> int:
    budget, job, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    install(budget)
    if job == "train":
        from mlip.cli.train import main as run
    elif job == "preprocess":
        from mlip.cli.preprocess import main as run
    elif job == "md":
        from mlip.cli.md import main as run
    elif job == "relax":
        from mlip.cli.relax import main as run
    elif job == "export":
        from mlip.cli.export import main as run
    elif job == "save":
        rc = _save_loop(args[0], int(args[1]))
        print(f"WROTE {_WROTE.value}", flush=True)
        return rc
    else:
        raise SystemExit(f"unknown job {job}")
    rc = run(args)
    print(f"WROTE {_WROTE.value}", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
