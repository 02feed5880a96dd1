"""Statistics of a preprocessed dataset, by one streaming pass over its shards, cached beside it.

Computed once and stored in ``OUT/statistics/<key>.json``, where the key hashes the training indices, the cutoff
and the E0 choice: in a distributed run rank 0 computes the file and the other ranks wait for it
(``wait_seconds``); every rerun reads it instead of recomputing. Over the training frames:

* elements present;
* ``E0`` by least squares, ``argmin_e Σ_f (E_f − Σ_Z n_{f,Z} e_Z)²``, from the accumulated normal equations
  (``"average"``; ``"zero"`` or a dict are taken as given);
* ``shift``: the mean per-atom energy after E0, eV; ``scale``: the RMS force component, eV/Å (mace-torch's
  ``rms_forces_scaling``);
* ``avg_num_neighbors``: edges per atom within ``r_max`` on up to ``neighbor_frames`` frames spread evenly over
  the set (neighbour lists are the one costly part; the number of frames used is stored with it).
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import numpy as np

from mlip.data.neighbors import neighbor_list
from mlip.data.store import PreprocessedDataset

__all__ = ["store_statistics"]


def _key(indices: np.ndarray, r_max: float, e0_spec, neighbor_frames: int) -> str:
    h = hashlib.sha256(np.ascontiguousarray(indices, dtype=np.int64).tobytes())
    h.update(json.dumps([r_max, e0_spec, neighbor_frames], sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _per_shard(ds: PreprocessedDataset, indices: np.ndarray):
    """Yield ``(arrays, local indices)`` shard by shard for the sorted global ``indices``."""
    order = np.sort(indices)
    for s, shard in enumerate(ds.shards):
        lo, hi = ds.starts[s], ds.starts[s + 1]
        local = order[(order >= lo) & (order < hi)] - lo
        if len(local):
            yield shard.arrays(), local


def store_statistics(
    ds: PreprocessedDataset,
    *,
    e0_spec="average",
    neighbor_frames: int = 2000,
    cache: bool = True,
    wait_seconds: float | None = None,
) -> dict:
    """``{"elements", "e0", "shift", "scale", "avg_num_neighbors", "n_frames"}`` of ``ds`` (its indices).

    With ``wait_seconds`` the call computes nothing: it waits up to that long for another process (rank 0 of a
    distributed run) to write the cache file, and raises ``TimeoutError`` if none appears.
    """
    key = _key(ds.indices, ds.r_max, e0_spec, neighbor_frames)
    path = ds.path / "statistics" / f"{key}.json"
    if cache and wait_seconds is not None:
        deadline = time.monotonic() + wait_seconds
        while not path.is_file():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no statistics at {path} after {wait_seconds:.0f} s (rank 0 writes them)")
            time.sleep(1.0)
    if cache and path.is_file():
        return json.loads(path.read_text())
    present: set[int] = set()
    for arrays, local in _per_shard(ds, ds.indices):
        off = arrays["offsets"]
        for i in local:
            present.update(np.unique(arrays["numbers"][off[i] : off[i + 1]]).tolist())
    zs = sorted(int(z) for z in present)
    col = {z: k for k, z in enumerate(zs)}
    ata, aty = np.zeros((len(zs), len(zs))), np.zeros(len(zs))
    rows = []  # (counts, energy, n_atoms) of labelled frames, kept compact for the shift below
    f_sq, f_n = 0.0, 0
    for arrays, local in _per_shard(ds, ds.indices):
        off, has = arrays["offsets"], arrays["has"]
        for i in local:
            nums = np.asarray(arrays["numbers"][off[i] : off[i + 1]])
            counts = np.bincount([col[int(z)] for z in nums], minlength=len(zs)).astype(np.float64)
            if has[i, 0]:
                e = float(arrays["energy"][i])
                ata += np.outer(counts, counts)
                aty += counts * e
                rows.append((counts, e, len(nums)))
            if has[i, 1]:
                f = np.asarray(arrays["forces"][off[i] : off[i + 1]])
                f_sq += float(np.square(f).sum())
                f_n += f.size
    e0 = _resolve_e0(e0_spec, zs, ata, aty)
    e0_vec = np.array([e0[z] for z in zs])
    per_atom = [(e - counts @ e0_vec) / n for counts, e, n in rows]
    scale = float(np.sqrt(f_sq / f_n)) if f_n else 1.0
    stats = {
        "n_frames": int(len(ds.indices)),
        "elements": zs,
        "e0": {str(z): e0[z] for z in zs},
        "shift": float(np.mean(per_atom)) if per_atom else 0.0,
        "scale": scale if scale > 1e-8 else 1.0,
        **_neighbors(ds, neighbor_frames),
    }
    if cache:
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(stats, indent=1))
        os.replace(tmp, path)
    return stats


def _resolve_e0(spec, zs: list[int], ata: np.ndarray, aty: np.ndarray) -> dict[int, float]:
    if spec == "average":
        if not ata.any():
            raise ValueError("cannot fit E0s by least squares: no training frame has an energy label")
        sol, *_ = np.linalg.lstsq(ata, aty, rcond=None)
        return {z: float(v) for z, v in zip(zs, sol)}
    if spec == "zero":
        return {z: 0.0 for z in zs}
    if isinstance(spec, dict):
        from ase.data import atomic_numbers as symbol_to_z

        given = {int(symbol_to_z[k]) if isinstance(k, str) and not k.isdigit() else int(k): float(v)
                 for k, v in spec.items()}  # fmt: skip
        missing = [z for z in zs if z not in given]
        if missing:
            raise ValueError(f"no E0 given for elements {missing}")
        return {z: given[z] for z in zs}
    raise ValueError(
        f"E0s {spec!r} is not available for a preprocessed dataset: use 'average', 'zero' or a dict"
    )


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
