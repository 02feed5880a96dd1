r"""The preprocessed on-disk format: shards of memory-mapped NumPy arrays, read with flat memory.

Why memory-mapped ``.npy`` shards rather than LMDB or HDF5 (``lmdb`` is installed, to read OC20's files): they
are read with NumPy alone and without decoding (no unpickling or JSON per frame), a reader maps only the pages
it touches (memory stays flat however large the set), every data-loader worker can open them independently
after a ``fork`` (no shared handles or locks, unlike LMDB environments and HDF5 files), and a shard is written
in a temporary directory and renamed into place, which is atomic on POSIX file systems: an interrupted run
leaves no half-written shard, and a rerun skips the complete ones.

Layout of ``OUT/`` (format version 3; versions 1, without charges and checksums, and 2, without a recorded data
specification and isolated atoms, are still read, but training refuses them: :mod:`mlip.data.spec`)::

    settings.json            the arguments of the run that writes the directory (written first, atomically;
                             a rerun with other arguments is refused, see :mod:`mlip.data.preprocess`)
    manifest.json            {"format": "mlip-preprocessed", "version": 3, "shards": [{"name", "n_frames",
                              "n_atoms"}], "n_frames", "n_atoms", "sources", "data_spec" (the labelling, as
                              mlip.data.spec.DataSpec.applied_when_read gives it), "isolated_atoms" ({"Z": eV}
                              of the isolated-atom frames, which no shard holds), ..., "checksum"} (written
                              last, atomically; "checksum" is the CRC-32 of the rest)
    shard-000000/            one directory per shard of ``shard_size`` frames
        offsets.npy          [F + 1] int64, atoms of frame f are offsets[f]:offsets[f+1]
        numbers.npy          [A] int16
        positions.npy        [A, 3] float64, Å
        forces.npy           [A, 3] float64, eV/Å (zeros where has_forces is false)
        fixed.npy            [A] bool, atoms held fixed (left out of the force loss)
        charges.npy          [A] float64, e, per-atom reference charges (zeros where has_charges is false)
        cell.npy             [F, 3, 3] float64, Å (rows are lattice vectors)
        pbc.npy              [F, 3] bool
        energy.npy           [F] float64, eV
        stress.npy           [F, 3, 3] float64, eV/Å³, ASE sign
        charge.npy           [F] float64, e (net charge)
        has.npy              [F, 4] bool: energy, forces, stress, charges labels present
        weight.npy           [F] float64, config weight (0 frames excluded from the loss entirely)
        meta.jsonl           one JSON object per frame: info strings (mp_id, frame_id, config_type, ...) and
                             "source", the file and frame it was read from
        isolated.json        {"Z": eV} of isolated atoms read with these frames (only when there were any)
        checksums.json       {file: [size, CRC-32]} of every file above (written last, before the rename)

Integrity: every file of a shard is checked against ``checksums.json`` the first time a process reads it, and the
arrays' shapes against each other and the manifest, so a flipped byte or a truncated file is an error naming the
shard and the file, never silently different numbers. Shard and manifest files are ``fsync``\ ed before their
renames.

Neighbour lists are not stored: they depend on the model's cutoff and are computed in the loader's workers.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import zlib
from bisect import bisect_right
from pathlib import Path

import ase
import numpy as np
import torch
from torch.utils.data import Dataset

from mlip import fileio
from mlip.data.graph import Frame, frame_to_graph, weight_by_config_type
from mlip.errors import MLIPFileNotFoundError, MLIPInputError, MLIPOutputError
from mlip.fileio import fsync_dir, write_json_atomic

__all__ = [
    "FORMAT",
    "PreprocessedDataset",
    "read_manifest",
    "shard_arrays",
    "shard_name",
    "verify_shard",
    "write_manifest",
    "write_shard",
    "VERSION",
    "READ_VERSIONS",
    "SETTINGS",
    "CHECKSUMS",
    "ISOLATED",
]

FORMAT = "mlip-preprocessed"
VERSION = 3
READ_VERSIONS = (1, 2, 3)
SETTINGS = "settings.json"
CHECKSUMS = "checksums.json"
ISOLATED = "isolated.json"
_OPTIONAL = ("charges",)  # absent in version 1 shards
_SHARD_NAME = re.compile(r"^shard-\d{6}$")
_META_KEYS = ("mp_id", "frame_id", "config_type", "sid", "fid")


def shard_name(index: int) -> str:
    return f"shard-{index:06d}"


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
    return crc


def _write_file(path: Path, write) -> None:
    with fileio.open_tmp(path, "wb") as fh:  # mlip's one file-writing seam (see mlip.fileio)
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())


def shard_arrays(frames: list[Frame]) -> dict[str, np.ndarray]:
    """The arrays of one shard (the module docstring's layout) for ``frames``."""
    n = np.array([len(f.atoms) for f in frames], dtype=np.int64)
    zeros3 = np.zeros((3, 3))

    def per_atom(values, width=None, dtype=np.float64):
        shape = (lambda k: (k, width)) if width else (lambda k: (k,))
        return np.concatenate(
            [np.zeros(shape(len(f.atoms)), dtype) if v is None else np.asarray(v, dtype) for f, v in values]
        ).astype(dtype)

    return {
        "offsets": np.concatenate([[0], np.cumsum(n)]).astype(np.int64),
        "numbers": np.concatenate([f.atoms.numbers for f in frames]).astype(np.int16),
        "positions": np.concatenate([f.atoms.positions for f in frames]).astype(np.float64),
        "forces": per_atom([(f, f.forces) for f in frames], 3),
        "fixed": per_atom([(f, f.fixed) for f in frames], dtype=bool),
        "charges": per_atom([(f, f.charges) for f in frames]),
        "cell": np.stack([f.atoms.cell.array for f in frames]).astype(np.float64),
        "pbc": np.stack([f.atoms.pbc for f in frames]).astype(bool),
        "energy": np.array([0.0 if f.energy is None else f.energy for f in frames], dtype=np.float64),
        "stress": np.stack([zeros3 if f.stress is None else f.stress for f in frames]).astype(np.float64),
        "charge": np.array([float(f.atoms.info.get("charge", 0.0)) for f in frames], dtype=np.float64),
        "has": np.array(
            [
                [f.energy is not None, f.forces is not None, f.stress is not None, f.charges is not None]
                for f in frames
            ],
            dtype=bool,
        ).reshape(len(frames), 4),  # fmt: skip
        "weight": np.array([f.weight for f in frames], dtype=np.float64),
    }


def write_shard(
    frames: list[Frame],
    directory: str | Path,
    *,
    arrays: dict[str, np.ndarray] | None = None,
    isolated: dict[int, float] | None = None,
) -> dict:
    r"""Write ``frames`` as one shard at ``directory``: every file written and ``fsync``\ ed in a temporary
    sibling, ``checksums.json`` last, then the directory renamed into place (atomic: the shard appears complete
    or not at all).

    Returns ``{"name", "n_frames", "n_atoms", "isolated"}``. An existing shard is checked (:func:`verify_shard`)
    and left as it is. ``arrays``: :func:`shard_arrays` of ``frames`` when the caller has made them already.
    ``isolated``: ``{Z: eV}`` of the isolated atoms read with these frames (not in the shard's arrays), kept in
    ``isolated.json``.
    """
    directory = Path(directory)
    if directory.is_dir():
        return verify_shard(directory)
    if not frames:
        raise ValueError("a shard needs at least one frame")
    tmp = directory.with_name(directory.name + f".tmp-{os.getpid()}")
    arrays = shard_arrays(frames) if arrays is None else arrays
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for key, value in arrays.items():
            _write_file(tmp / f"{key}.npy", lambda fh, v=value: np.save(fh, v, allow_pickle=False))
        lines = []
        for f in frames:
            meta = {k: str(f.info[k]) for k in _META_KEYS if k in f.info}
            if f.config_type is not None:
                meta["config_type"] = f.config_type
            if f.source is not None:
                meta["source"] = f.source
            lines.append(json.dumps(meta) + "\n")
        _write_file(tmp / "meta.jsonl", lambda fh: fh.write("".join(lines).encode()))
        iso = {str(z): float(e) for z, e in sorted((isolated or {}).items())}
        if iso:
            _write_file(tmp / ISOLATED, lambda fh: fh.write(json.dumps(iso).encode()))
        sums = {p.name: [p.stat().st_size, _crc32(p)] for p in sorted(tmp.iterdir())}
        _write_file(tmp / CHECKSUMS, lambda fh: fh.write(json.dumps(sums, indent=0).encode()))
        fsync_dir(tmp)
        os.replace(tmp, directory)
        fsync_dir(directory.parent)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        reason = "no space left on device" if err.errno == errno.ENOSPC else (err.strerror or str(err))
        raise MLIPOutputError(f"cannot write the shard {directory}: {reason}; rerun to continue") from err
    n_atoms = int(arrays["offsets"][-1])
    return {"name": directory.name, "n_frames": len(frames), "n_atoms": n_atoms, "isolated": iso}


def verify_shard(directory: str | Path) -> dict:
    """Check every file of a complete shard against its checksums and shapes; ``{"name", "n_frames", "n_atoms"}``
    or :class:`~mlip.errors.MLIPInputError` naming the damaged file."""
    shard = _Shard(Path(directory))
    arrays = shard.arrays()
    shard.meta(0)
    return {
        "name": shard.directory.name,
        "n_frames": len(arrays["offsets"]) - 1,
        "n_atoms": int(arrays["offsets"][-1]),
        "isolated": shard.isolated(),
    }


def _manifest_checksum(manifest: dict) -> int:
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return zlib.crc32(json.dumps(body, sort_keys=True).encode())


def write_manifest(out: str | Path, manifest: dict) -> dict:
    """Write ``OUT/manifest.json`` atomically, with its checksum; returns the manifest as written."""
    manifest = {**manifest, "format": FORMAT, "version": VERSION}
    manifest["checksum"] = _manifest_checksum(manifest)
    write_json_atomic(Path(out) / "manifest.json", manifest, indent=1)
    return manifest


def read_manifest(path: str | Path) -> dict:
    """The manifest of a preprocessed dataset, checked (format, version, checksum, shard entries), with a clear
    error for an incomplete, damaged or foreign directory."""
    path = Path(path)
    manifest = path / "manifest.json"
    if not manifest.is_file():
        if not path.is_dir():
            raise MLIPFileNotFoundError(f"no such preprocessed dataset: {path}")
        hint = (
            "rerun mlip-preprocess with the same arguments to finish it"
            if (path / SETTINGS).is_file()
            else ("run mlip-preprocess to make one")
        )
        raise MLIPInputError(f"{path} is not a complete preprocessed dataset (no manifest.json; {hint})")
    try:
        data = json.loads(manifest.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MLIPInputError(f"{manifest} is damaged (not JSON: {err}); rerun mlip-preprocess") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") not in READ_VERSIONS:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        ver = data.get("version") if isinstance(data, dict) else None
        raise MLIPInputError(
            f"{manifest}: format {got!r} v{ver} is not {FORMAT} v{VERSION} (this mlip reads versions "
            f"{list(READ_VERSIONS)})"
        )
    if data["version"] >= 2 and data.get("checksum") != _manifest_checksum(data):
        raise MLIPInputError(f"{manifest} is damaged (checksum mismatch); rerun mlip-preprocess")
    shards = data.get("shards")
    ok = isinstance(shards, list) and all(
        isinstance(e, dict) and isinstance(e.get("name"), str) and _SHARD_NAME.match(e["name"])
        and isinstance(e.get("n_frames"), int) and e["n_frames"] >= 1 for e in shards
    )  # fmt: skip
    if (
        not ok
        or not isinstance(data.get("n_frames"), int)
        or data["n_frames"] != sum(e["n_frames"] for e in shards)
    ):
        raise MLIPInputError(f"{manifest}: the shard list is damaged; rerun mlip-preprocess")
    return data


# files of a shard already checked against its checksums in this process: (path, size, mtime_ns)
_VERIFIED: set[tuple[str, int, int]] = set()

_SHAPES = {  # name: (dtype kind, shape in terms of F frames and A atoms)
    "offsets": ("i", ("F+1",)), "numbers": ("i", ("A",)), "positions": ("f", ("A", 3)), "forces": ("f", ("A", 3)),
    "fixed": ("b", ("A",)), "charges": ("f", ("A",)), "cell": ("f", ("F", 3, 3)), "pbc": ("b", ("F", 3)),
    "energy": ("f", ("F",)), "stress": ("f", ("F", 3, 3)), "charge": ("f", ("F",)), "has": ("b", ("F", "H")),
    "weight": ("f", ("F",)),
}  # fmt: skip


class _Shard:
    """Lazily memory-mapped arrays of one shard (opened on first access, so each worker maps its own);
    :meth:`close` drops the maps and the parsed metadata again. Every file is checked against ``checksums.json``
    the first time this process reads it (format version 2)."""

    def __init__(self, directory: Path, n_frames: int | None = None) -> None:
        self.directory = directory
        self.n_frames = n_frames
        self._arrays: dict[str, np.ndarray] | None = None
        self._meta: list[dict] | None = None
        self._sums: dict | None = None

    def close(self) -> None:
        self._arrays, self._meta = None, None

    def _damaged(self, what: str) -> MLIPInputError:
        return MLIPInputError(
            f"{self.directory}: {what}; the preprocessed dataset is damaged, write it again with mlip-preprocess"
        )

    def _checked(self, name: str) -> Path:
        """``directory/name`` after checking it against the shard's checksums (once per process)."""
        path = self.directory / name
        sums_path = self.directory / CHECKSUMS
        if not sums_path.is_file():  # format version 1: no checksums
            if not path.is_file():
                raise self._damaged(f"{name} is missing")
            return path
        if self._sums is None:
            try:
                self._sums = json.loads(sums_path.read_text())
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise self._damaged(f"{CHECKSUMS} is not readable") from None
        expected = self._sums.get(name) if isinstance(self._sums, dict) else None
        if expected is None or not path.is_file():
            raise self._damaged(f"{name} is missing")
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key not in _VERIFIED:
            if st.st_size != expected[0] or _crc32(path) != expected[1]:
                raise self._damaged(f"{name} does not match its checksum (truncated or altered)")
            _VERIFIED.add(key)
        return path

    def offsets(self) -> np.ndarray:
        if self._arrays is not None:
            return self._arrays["offsets"]
        return self._load("offsets")

    def _load(self, name: str) -> np.ndarray:
        try:
            return np.load(self._checked(f"{name}.npy"), mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise self._damaged(f"{name}.npy is not a readable array ({err})") from None

    def arrays(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            names = [n for n in _SHAPES if (self.directory / f"{n}.npy").is_file() or n not in _OPTIONAL]
            arrays = {n: self._load(n) for n in names}
            self._check_shapes(arrays)
            self._arrays = arrays
        return self._arrays

    def _check_shapes(self, a: dict[str, np.ndarray]) -> None:
        off = a["offsets"]
        if off.ndim != 1 or len(off) < 2 or off[0] != 0 or np.any(np.diff(off) < 1):
            raise self._damaged("offsets.npy is not a valid frame index")
        sizes = {"F": len(off) - 1, "F+1": len(off), "A": int(off[-1]), "H": a["has"].shape[-1]}
        if self.n_frames is not None and sizes["F"] != self.n_frames:
            raise self._damaged(f"it holds {sizes['F']} frames, the manifest says {self.n_frames}")
        if sizes["H"] not in (3, 4):
            raise self._damaged("has.npy has the wrong shape")
        for name, arr in a.items():
            kind, dims = _SHAPES[name]
            shape = tuple(sizes[d] if isinstance(d, str) else d for d in dims)
            if arr.shape != shape or arr.dtype.kind != kind:
                raise self._damaged(f"{name}.npy has shape {arr.shape} {arr.dtype}, expected {shape}")
        numbers = np.asarray(a["numbers"])
        if numbers.size and (numbers.min() < 1 or numbers.max() > 118):
            raise self._damaged("numbers.npy holds atomic numbers outside 1..118")

    def isolated(self) -> dict[str, float]:
        """``{"Z": eV}`` of the isolated atoms read with this shard's frames (empty when there were none)."""
        if not (self.directory / ISOLATED).exists():
            return {}
        try:
            return json.loads(self._checked(ISOLATED).read_text())
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise self._damaged(f"{ISOLATED} is not readable") from None

    def meta(self, i: int) -> dict:
        if self._meta is None:
            try:
                with open(self._checked("meta.jsonl"), encoding="utf-8") as fh:
                    self._meta = [json.loads(line) for line in fh]
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise self._damaged("meta.jsonl is not readable") from None
            if self.n_frames is not None and len(self._meta) != self.n_frames:
                raise self._damaged(
                    f"meta.jsonl holds {len(self._meta)} frames, the manifest says {self.n_frames}"
                )
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
        has = [bool(x) for x in a["has"][i]] + [False]
        has_e, has_f, has_s, has_q = has[:4]
        fixed = np.array(a["fixed"][lo:hi]) if "fixed" in a else None
        meta = self.meta(i)
        return Frame(
            atoms=atoms,
            energy=float(a["energy"][i]) if has_e else None,
            forces=np.array(a["forces"][lo:hi]) if has_f else None,
            stress=np.array(a["stress"][i]) if has_s else None,
            charges=np.array(a["charges"][lo:hi]) if has_q and "charges" in a else None,
            fixed=fixed if fixed is not None and fixed.any() else None,
            weight=float(a["weight"][i]),
            config_type=meta.get("config_type"),
            info={k: v for k, v in meta.items() if k != "source"},
            source=meta.get("source"),
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
        config_type_weights: ``{config_type: w}`` multiplying the weight of the frames of those types.
    """

    def __init__(
        self, path: str | Path, r_max: float, *, indices: np.ndarray | None = None, name: str = "data",
        max_open_shards: int = 4, config_type_weights: dict[str, float] | None = None,
    ):  # fmt: skip
        self.config_type_weights = dict(config_type_weights or {})
        self.path = Path(path)
        self.max_open_shards = max(1, int(max_open_shards))
        self._open: list[int] = []
        self.manifest = read_manifest(self.path)
        self.r_max = float(r_max)
        self.name = name
        self.shards = [_Shard(self.path / s["name"], s["n_frames"]) for s in self.manifest["shards"]]
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
        frame = shard.frame(i)
        return weight_by_config_type(frame, self.config_type_weights) if self.config_type_weights else frame

    def meta(self, idx: int) -> dict:
        """The stored metadata of item ``idx`` (``mp_id``, ``frame_id``, ...) without reading its arrays."""
        shard, i = self._shard(int(self.indices[idx]))
        return shard.meta(i)

    def n_atoms(self, idx: int) -> int:
        """Atoms of item ``idx`` without building its graph (for atom-bounded batching)."""
        shard, i = self._shard(int(self.indices[idx]))
        off = shard.offsets()
        return int(off[i + 1] - off[i])

    def atom_counts(self) -> np.ndarray:
        """``[len(self)]`` atoms of every item, from the shards' offsets (no frame is read)."""
        per_frame = np.concatenate([np.diff(s.offsets()) for s in self.shards])
        return per_frame[self.indices]

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        frame = self.frame(idx)
        where = f"{self.path.name}[{int(self.indices[idx])}]" + (f" ({frame.source})" if frame.source else "")
        return frame_to_graph(frame, self.r_max, where=where)
