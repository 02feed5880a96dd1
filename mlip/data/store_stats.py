"""Statistics of a preprocessed dataset, by one streaming pass over its shards, cached beside it.

Computed once and stored in ``OUT/statistics/<key>.json``, where the key hashes the training indices, the cutoff
and the E0 choice: in a distributed run rank 0 computes the file and the other ranks wait for it
(``wait_seconds``); every rerun reads it instead of recomputing. Over the training frames:

* elements, E0s, ``shift`` and ``scale`` by :mod:`mlip.data.statistics` (the routine of in-memory training
  too);
* ``avg_num_neighbors``: edges per atom within ``r_max`` on up to ``neighbor_frames`` frames spread evenly over
  the set (neighbour lists are the one costly part; the number of frames used is stored with it).
"""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np

from mlip.data.neighbors import neighbor_list
from mlip.data.statistics import accumulate, label_statistics
from mlip.data.store import PreprocessedDataset
from mlip.fileio import write_json_atomic

__all__ = ["store_elements", "store_statistics"]


def _key(indices: np.ndarray, r_max: float, e0_spec, neighbor_frames: int) -> str:
    h = hashlib.sha256(np.ascontiguousarray(indices, dtype=np.int64).tobytes())
    h.update(json.dumps([r_max, e0_spec, neighbor_frames], sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


_NZ = 119  # atomic numbers 0..118


def _per_shard(ds: PreprocessedDataset, indices: np.ndarray):
    """Yield ``(arrays, multiplicity [F], atom_frame [A])`` per shard touched by the global ``indices``: how often
    each of the shard's frames is selected, and the frame of each of its atoms."""
    order = np.sort(np.asarray(indices, dtype=np.int64))
    for s, shard in enumerate(ds.shards):
        lo, hi = ds.starts[s], ds.starts[s + 1]
        local = order[(order >= lo) & (order < hi)] - lo
        if len(local):
            arrays = shard.arrays()
            sizes = np.diff(np.asarray(arrays["offsets"]))
            yield arrays, np.bincount(local, minlength=len(sizes)), np.repeat(np.arange(len(sizes)), sizes)


def store_elements(ds: PreprocessedDataset) -> list[int]:
    """Sorted atomic numbers present in the frames of ``ds`` (one vectorised pass over the shards)."""
    present = np.zeros(_NZ, dtype=bool)
    for arrays, mult, atom_frame in _per_shard(ds, ds.indices):
        present[np.asarray(arrays["numbers"])[mult[atom_frame] > 0]] = True
    return np.flatnonzero(present).tolist()


def store_statistics(
    ds: PreprocessedDataset,
    *,
    e0_spec="average",
    isolated: dict[int, float] | None = None,
    neighbor_frames: int = 2000,
    cache: bool = True,
    wait_seconds: float | None = None,
) -> dict:
    """``{"elements", "e0", "shift", "scale", "avg_num_neighbors", "n_frames", ...}`` of ``ds`` (its indices), by
    :func:`mlip.data.statistics.label_statistics`; ``isolated``: ``{Z: eV}`` of the isolated atoms, for
    ``e0_spec="isolated"``.

    With ``wait_seconds`` the call computes nothing: it waits up to that long for another process (rank 0 of a
    distributed run) to write the cache file, and raises ``TimeoutError`` if none appears.
    """
    key = _key(ds.indices, ds.r_max, [e0_spec, sorted((isolated or {}).items())], neighbor_frames)
    path = ds.path / "statistics" / f"{key}.json"
    if cache and wait_seconds is not None:
        deadline = time.monotonic() + wait_seconds
        while not path.is_file():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no statistics at {path} after {wait_seconds:.0f} s (rank 0 writes them)")
            time.sleep(1.0)
    if cache and path.is_file():
        return json.loads(path.read_text())
    sums = accumulate((arrays, mult) for arrays, mult, _ in _per_shard(ds, ds.indices))
    stats = {
        "n_frames": int(len(ds.indices)),
        **label_statistics(sums, e0_spec=e0_spec, isolated=dict(isolated or {})),
        **_neighbors(ds, neighbor_frames),
    }
    if cache:
        path.parent.mkdir(exist_ok=True)
        write_json_atomic(path, stats, indent=1)
    return stats


def _neighbors(ds: PreprocessedDataset, max_frames: int) -> dict:
    n = len(ds.indices)
    picks = np.unique(np.linspace(0, n - 1, num=min(n, max_frames)).astype(np.int64)) if n else []
    per_frame = []
    for idx in picks:
        atoms = ds.frame(int(idx)).atoms
        edges, _ = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, ds.r_max)
        per_frame.append((edges.shape[1], len(atoms)))
    if not per_frame:
        return {"avg_num_neighbors": 1.0, "avg_num_neighbors_frames": 0}
    e, a = np.array(per_frame, dtype=np.float64).T
    return {"avg_num_neighbors": float(e.sum() / a.sum()), "avg_num_neighbors_frames": len(per_frame)}
