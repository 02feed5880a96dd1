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
import time

import numpy as np

from mlip.data.neighbors import neighbor_list
from mlip.data.store import PreprocessedDataset
from mlip.errors import MLIPInputError
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
    # one pass, vectorised per shard, over all 119 element columns (reduced to the present ones at the end)
    ata, aty, c_per_atom = np.zeros((_NZ, _NZ)), np.zeros(_NZ), np.zeros(_NZ)
    present = np.zeros(_NZ)
    e_per_atom = n_labelled = f_sq = f_n = n_forces = 0.0
    for arrays, mult, atom_frame in _per_shard(ds, ds.indices):
        nums = np.asarray(arrays["numbers"], dtype=np.int64)
        n_frames = len(mult)
        counts = np.bincount(atom_frame * _NZ + nums, minlength=n_frames * _NZ).reshape(n_frames, _NZ)
        counts = counts.astype(np.float64)
        present += mult @ counts
        has = np.asarray(arrays["has"])
        w = mult * has[:, 0]  # labelled energies, with multiplicity
        energy = np.asarray(arrays["energy"])
        n_atoms = counts.sum(1)
        ata += (counts * w[:, None]).T @ counts
        aty += counts.T @ (w * energy)
        e_per_atom += float((w * energy / n_atoms).sum())
        c_per_atom += (w / n_atoms) @ counts
        n_labelled += float(w.sum())
        n_forces += float((mult * has[:, 1]).sum())
        fw = (mult * has[:, 1])[atom_frame]
        f_sq += float((fw * np.square(np.asarray(arrays["forces"])).sum(1)).sum())
        f_n += 3.0 * float(fw.sum())
    zs = np.flatnonzero(present > 0).tolist()
    e0 = _resolve_e0(e0_spec, zs, ata[np.ix_(zs, zs)], aty[zs])
    e0_vec = np.array([e0[z] for z in zs])
    # mean over labelled frames of (E - Σ_Z n_Z e_Z) / N, from the accumulated sums
    shift = (e_per_atom - c_per_atom[zs] @ e0_vec) / n_labelled if n_labelled else 0.0
    scale = float(np.sqrt(f_sq / f_n)) if f_n else 1.0
    stats = {
        "n_frames": int(len(ds.indices)),
        "elements": zs,
        "e0": {str(z): e0[z] for z in zs},
        "shift": float(shift),
        "scale": scale if scale > 1e-8 else 1.0,
        "n_energy_labels": int(n_labelled),
        "n_forces_labels": int(n_forces),
        **_neighbors(ds, neighbor_frames),
    }
    if cache:
        path.parent.mkdir(exist_ok=True)
        write_json_atomic(path, stats, indent=1)
    return stats


def _resolve_e0(spec, zs: list[int], ata: np.ndarray, aty: np.ndarray) -> dict[int, float]:
    if spec == "average":
        if not ata.any():
            raise MLIPInputError("cannot fit E0s by least squares: no training frame has an energy label")
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
            raise MLIPInputError(f"data.e0s: no E0 given for elements {missing}")
        return {z: given[z] for z in zs}
    raise MLIPInputError(
        f"data.e0s {spec!r} is not available for a preprocessed dataset: use 'average', 'zero' or a dict"
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
