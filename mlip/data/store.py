"""The preprocessed on-disk format: shards of memory-mapped NumPy arrays, read with flat memory.

Why memory-mapped ``.npy`` shards rather than LMDB or HDF5 (``lmdb`` is installed, to read OC20's files): they
are read with NumPy alone and without decoding (no unpickling or JSON per frame), a reader maps only the pages
it touches (memory stays flat however large the set), every data-loader worker can open them independently
after a ``fork`` (no shared handles or locks, unlike LMDB environments and HDF5 files), and a shard is written
in a temporary directory and renamed into place, which is atomic on POSIX file systems: an interrupted run
leaves no half-written shard, and a rerun skips the complete ones.

Layout of ``OUT/``::

    manifest.json            {"format": "mlip-preprocessed", "version": 1, "shards": [{"name", "n_frames",
                              "n_atoms"}], "n_frames", "n_atoms", "sources"} (written last, atomically)
    shard-000000/            one directory per shard of ``shard_size`` frames
        offsets.npy          [F + 1] int64, atoms of frame f are offsets[f]:offsets[f+1]
        numbers.npy          [A] int16
        positions.npy        [A, 3] float64, Å
        forces.npy           [A, 3] float64, eV/Å (zeros where has_forces is false)
        fixed.npy            [A] bool, atoms held fixed (left out of the force loss)
        cell.npy             [F, 3, 3] float64, Å (rows are lattice vectors)
        pbc.npy              [F, 3] bool
        energy.npy           [F] float64, eV
        stress.npy           [F, 3, 3] float64, eV/Å³, ASE sign
        charge.npy           [F] float64, e (net charge)
        has.npy              [F, 3] bool: energy, forces, stress labels present
        weight.npy           [F] float64, config weight (0 frames excluded from the loss entirely)
        meta.jsonl           one JSON object per frame: info strings (mp_id, frame_id, config_type, ...)

Neighbour lists are not stored: they depend on the model's cutoff and are computed in the loader's workers.
"""

from __future__ import annotations

import json
import os
import shutil
from bisect import bisect_right
from pathlib import Path

import ase
import numpy as np
import torch
from torch.utils.data import Dataset

from mlip.data.graph import Frame, frame_to_graph
from mlip.errors import MLIPInputError

__all__ = ["FORMAT", "PreprocessedDataset", "read_manifest", "shard_name", "write_shard"]

FORMAT = "mlip-preprocessed"
VERSION = 1
_META_KEYS = ("mp_id", "frame_id", "config_type", "sid", "fid")


def shard_name(index: int) -> str:
    return f"shard-{index:06d}"


def write_shard(frames: list[Frame], directory: str | Path) -> dict:
    """Write ``frames`` as one shard at ``directory`` (atomically: a temporary sibling renamed into place).

    Returns ``{"name", "n_frames", "n_atoms"}``. An existing complete shard is left as it is.
    """
    directory = Path(directory)
    if directory.is_dir():
        offsets = np.load(directory / "offsets.npy", mmap_mode="r")
        return {"name": directory.name, "n_frames": len(offsets) - 1, "n_atoms": int(offsets[-1])}
    tmp = directory.with_name(directory.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    n = np.array([len(f.atoms) for f in frames], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(n)])
    zeros3 = np.zeros((3, 3))
    arrays = {
        "offsets": offsets,
        "numbers": np.concatenate([f.atoms.numbers for f in frames]).astype(np.int16),
        "positions": np.concatenate([f.atoms.positions for f in frames]).astype(np.float64),
        "forces": np.concatenate(
            [np.zeros((len(f.atoms), 3)) if f.forces is None else f.forces for f in frames]
        ).astype(np.float64),
        "fixed": np.concatenate(
            [np.zeros(len(f.atoms), bool) if f.fixed is None else np.asarray(f.fixed, bool) for f in frames]
        ),
        "cell": np.stack([f.atoms.cell.array for f in frames]).astype(np.float64),
        "pbc": np.stack([f.atoms.pbc for f in frames]).astype(bool),
        "energy": np.array([0.0 if f.energy is None else f.energy for f in frames], dtype=np.float64),
        "stress": np.stack([zeros3 if f.stress is None else f.stress for f in frames]).astype(np.float64),
        "charge": np.array([float(f.atoms.info.get("charge", 0.0)) for f in frames], dtype=np.float64),
        "has": np.array([[f.energy is not None, f.forces is not None, f.stress is not None] for f in frames]),
        "weight": np.array([f.weight for f in frames], dtype=np.float64),
    }
    for key, value in arrays.items():
        np.save(tmp / f"{key}.npy", value)
    with open(tmp / "meta.jsonl", "w") as fh:
        for f in frames:
            meta = {k: str(f.info[k]) for k in _META_KEYS if k in f.info}
            if f.config_type is not None:
                meta["config_type"] = f.config_type
            fh.write(json.dumps(meta) + "\n")
    os.replace(tmp, directory)  # atomic: the shard appears complete or not at all
    return {"name": directory.name, "n_frames": len(frames), "n_atoms": int(offsets[-1])}


def read_manifest(path: str | Path) -> dict:
    """The manifest of a preprocessed dataset, with a clear error for an incomplete or foreign directory."""
    path = Path(path)
    manifest = path / "manifest.json"
    if not manifest.is_file():
        raise MLIPInputError(
            f"{path} is not a complete preprocessed dataset (no manifest.json; rerun mlip-preprocess to finish it)"
        )
    data = json.loads(manifest.read_text())
    if data.get("format") != FORMAT or data.get("version") != VERSION:
        raise MLIPInputError(
            f"{manifest}: format {data.get('format')!r} v{data.get('version')} is not {FORMAT} v{VERSION}"
        )
    return data


class _Shard:
    """Lazily memory-mapped arrays of one shard (opened on first access, so each worker maps its own);
    :meth:`close` drops the maps and the parsed metadata again."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._arrays: dict[str, np.ndarray] | None = None
        self._meta: list[dict] | None = None

    def close(self) -> None:
        self._arrays, self._meta = None, None

    def arrays(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            self._arrays = {p.stem: np.load(p, mmap_mode="r") for p in self.directory.glob("*.npy")}
        return self._arrays

    def meta(self, i: int) -> dict:
        if self._meta is None:
            with open(self.directory / "meta.jsonl") as fh:
                self._meta = [json.loads(line) for line in fh]
        return self._meta[i]

    def frame(self, i: int) -> Frame:
        a = self.arrays()
        lo, hi = int(a["offsets"][i]), int(a["offsets"][i + 1])
        atoms = ase.Atoms(
            numbers=np.asarray(a["numbers"][lo:hi], dtype=np.int64),
            positions=np.array(a["positions"][lo:hi]),
            cell=np.array(a["cell"][i]),
            pbc=np.array(a["pbc"][i]),
        )
        if a["charge"][i] != 0.0:
            atoms.info["charge"] = float(a["charge"][i])
        has_e, has_f, has_s = (bool(x) for x in a["has"][i])
        fixed = np.array(a["fixed"][lo:hi]) if "fixed" in a else None
        meta = self.meta(i)
        return Frame(
            atoms=atoms,
            energy=float(a["energy"][i]) if has_e else None,
            forces=np.array(a["forces"][lo:hi]) if has_f else None,
            stress=np.array(a["stress"][i]) if has_s else None,
            fixed=fixed if fixed is not None and fixed.any() else None,
            weight=float(a["weight"][i]),
            config_type=meta.get("config_type"),
            info=meta,
        )


class PreprocessedDataset(Dataset):
    """Graphs built on the fly (in the loader's workers) from a preprocessed directory; memory stays flat.

    At most ``max_open_shards`` shards stay mapped per process (least recently used closed first), so that the
    resident pages of a long epoch stay bounded as well.

    Args:
        path: the ``OUT`` directory of ``mlip-preprocess``.
        r_max: cutoff for the neighbour lists, Å.
        indices: optional subset (global frame indices), e.g. a train/validation split.
        max_open_shards: shards kept mapped at once in each process.
    """

    def __init__(
        self, path: str | Path, r_max: float, *, indices: np.ndarray | None = None, name: str = "data",
        max_open_shards: int = 4,
    ):  # fmt: skip
        self.path = Path(path)
        self.max_open_shards = max(1, int(max_open_shards))
        self._open: list[int] = []
        self.manifest = read_manifest(self.path)
        self.r_max = float(r_max)
        self.name = name
        self.shards = [_Shard(self.path / s["name"]) for s in self.manifest["shards"]]
        self.starts = np.cumsum([0] + [s["n_frames"] for s in self.manifest["shards"]]).tolist()
        total = self.starts[-1]
        self.indices = np.arange(total) if indices is None else np.asarray(indices, dtype=np.int64)
        if len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= total):
            raise IndexError(f"indices outside 0..{total - 1}")

    def __len__(self) -> int:
        return len(self.indices)

    def _shard(self, g: int) -> tuple[_Shard, int]:
        """The shard holding global frame ``g`` (marked most recently used) and the frame's index in it."""
        s = bisect_right(self.starts, g) - 1
        if s in self._open:
            self._open.remove(s)
        self._open.append(s)
        while len(self._open) > self.max_open_shards:
            self.shards[self._open.pop(0)].close()
        return self.shards[s], g - self.starts[s]

    def frame(self, idx: int) -> Frame:
        shard, i = self._shard(int(self.indices[idx]))
        return shard.frame(i)

    def meta(self, idx: int) -> dict:
        """The stored metadata of item ``idx`` (``mp_id``, ``frame_id``, ...) without reading its arrays."""
        shard, i = self._shard(int(self.indices[idx]))
        return shard.meta(i)

    def n_atoms(self, idx: int) -> int:
        """Atoms of item ``idx`` without building its graph (for atom-bounded batching)."""
        shard, i = self._shard(int(self.indices[idx]))
        off = shard.arrays()["offsets"]
        return int(off[i + 1] - off[i])

    def atom_counts(self) -> np.ndarray:
        """``[len(self)]`` atoms of every item, from the shards' offsets (no frame is read)."""
        per_frame = np.concatenate(
            [np.diff(np.load(s.directory / "offsets.npy", mmap_mode="r")) for s in self.shards]
        )
        return per_frame[self.indices]

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        return frame_to_graph(
            self.frame(idx), self.r_max, where=f"{self.path.name}[{int(self.indices[idx])}]"
        )
