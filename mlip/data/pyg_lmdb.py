"""The legacy OC20/OC22 LMDB layout: pickled PyTorch Geometric ``Data`` objects, read without PyG.

Layout (fairchem ``LmdbDataset``, written by its ``preprocess_ef.py`` / ``AtomsToGraphs``): a file ``*.lmdb``
(``subdir=False``) or a directory of them (``data.0000.lmdb``, ...), read in sorted order. Key ``b"<i>"``
(``i = 0, 1, ...`` as ASCII decimal) holds ``pickle.dumps(data)``; the optional key ``b"length"`` holds the
pickled count. The fields of ``data`` used here, as fairchem documents them:

=========================  ===========================  ==============================================================
field                      shape, dtype                 meaning
=========================  ===========================  ==============================================================
``pos``                    ``[N, 3]`` float32           positions, Å (wrapped into the cell by ``AtomsToGraphs``)
``atomic_numbers``         ``[N]`` float32 / uint8      Z
``cell``                   ``[1, 3, 3]`` float32        rows are lattice vectors, Å
``natoms``                 int                          N
``tags``                   ``[N]`` int                  OC20: 0 subsurface, 1 surface, 2 adsorbate
``fixed``                  ``[N]`` int / float          1 = held fixed in the relaxation (FixAtoms)
``y`` / ``energy``         float                        S2EF energy, eV (usually referenced: adsorption energy)
``force`` / ``forces``     ``[N, 3]`` float32           eV/Å
``stress``                 ``[3, 3]`` or ``[1, 3, 3]``  eV/Å³, ASE sign (OC22, OMat-style sets)
``y_init``, ``y_relaxed``  float                        IS2RE: energies of the initial (``pos``) and relaxed structure
``pos_relaxed``            ``[N, 3]`` float32           IS2RE: relaxed positions, Å
``sid``, ``fid``           int                          system id, frame index in its relaxation
``pbc``                    ``[3]`` or ``[1, 3]`` bool   periodicity (absent in OC20: all periodic)
=========================  ===========================  ==============================================================

PyG 1.x pickled these fields straight into the object's ``__dict__``; PyG 2.x keeps them in
``__dict__["_store"]``, a ``GlobalStorage`` whose state holds ``_mapping``. Both are read. Unpickling runs code
named by the file, so ``_OC20Unpickler`` admits only the classes such files need: the PyG classes are
replaced by an inert stand-in that records its state, and tensors are decoded into NumPy arrays by
``_load_storage`` (torch's legacy storage layout, parsed without torch). Anything else is refused with a
clear error.

Each record becomes an ``ase.Atoms`` with a SinglePointCalculator (energy, forces, stress), ``tags``, a
``FixAtoms`` constraint for ``fixed`` atoms and ``info`` ``sid`` / ``fid``. An IS2RE record gives its initial
structure with ``y_init`` and, when present, its relaxed structure with ``y_relaxed`` (no forces).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator
from pathlib import Path

import ase
import numpy as np

from mlip.data.lmdb_env import iter_source_records, lmdb_files, record_keys
from mlip.errors import MLIPInputError

__all__ = ["count_pyg_lmdb", "fields_to_atoms", "iter_pyg_lmdb", "record_fields", "PygStandIn"]


class PygStandIn:
    """Stands in for ``torch_geometric.data.Data`` / ``GlobalStorage`` / ...: keeps the unpickled state."""

    def __init__(self, *args, **kwargs):
        self.state: dict = {}

    def __setstate__(self, state):
        if isinstance(state, tuple):  # (dict state, slot state)
            state = {**(state[0] or {}), **(state[1] or {})}
        self.state = dict(state)


# torch's legacy storage classes (the names a pickled tensor refers to) and their element types
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageUnpickler(pickle.Unpickler):
    """The pickles inside one storage blob: numbers, dicts, a persistent id naming a storage class."""

    def find_class(self, module: str, name: str):
        if module == "torch" and name in _STORAGE_DTYPES:
            return np.dtype(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name} inside a tensor storage")

    def persistent_load(self, pid):
        return pid


def _load_storage(blob: bytes) -> np.ndarray:
    """``torch.storage._load_from_bytes`` decoded without torch and without running code: the blob is torch's
    legacy serialisation of one storage (pickles of the magic number, protocol and system info; of the storage's
    persistent id ``("storage", type, key, location, numel, view)``; of the key list; then per key the element
    count as little-endian int64 and the raw elements). Returns the elements as a 1-D array."""
    f = io.BytesIO(blob)
    for _ in range(3):  # magic number, protocol version, sys_info
        _StorageUnpickler(f).load()
    pid = _StorageUnpickler(f).load()
    keys = _StorageUnpickler(f).load()
    if not (
        isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[1], np.dtype)
    ):
        raise pickle.UnpicklingError("a tensor storage of an unknown layout")
    if len(keys) != 1:
        raise pickle.UnpicklingError(f"expected one storage per blob, found {len(keys)}")
    dtype = pid[1]
    numel = int.from_bytes(f.read(8), "little", signed=True)
    if numel < 0 or numel * dtype.itemsize > len(blob):
        raise pickle.UnpicklingError(f"a tensor storage of {numel} elements in a blob of {len(blob)} bytes")
    data = f.read(numel * dtype.itemsize)
    if len(data) != numel * dtype.itemsize:
        raise pickle.UnpicklingError("a truncated tensor storage")
    return np.frombuffer(data, dtype=dtype.newbyteorder("<"))


_MAX_DIMS = 8


def _int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise pickle.UnpicklingError(f"a tensor's {what} is not an integer ({value!r})")
    return int(value)


def _rebuild_tensor(storage, offset, size, stride, *args) -> np.ndarray:
    """``torch._utils._rebuild_tensor_v2`` as a NumPy array (a copy of the strided view).

    Sizes, strides and the offset come from the file, so they are checked before any view is made: non-negative
    integers, at most ``_MAX_DIMS`` dimensions, every element inside the storage, and no two elements sharing
    storage (a tensor saved by ``torch.save`` never overlaps; an overlapping view could expand a few bytes into an
    array of any size). Anything else is refused instead of reading outside the storage.
    """
    if not isinstance(storage, np.ndarray) or storage.ndim != 1:
        raise pickle.UnpicklingError("a tensor without a decoded storage")
    if not isinstance(size, (tuple, list)) or not isinstance(stride, (tuple, list)):
        raise pickle.UnpicklingError("a tensor's size and stride must be tuples")
    if len(size) != len(stride) or len(size) > _MAX_DIMS:
        raise pickle.UnpicklingError(f"a tensor with {len(size)} sizes and {len(stride)} strides")
    offset = _int(offset, "storage offset")
    size = [_int(n, "size") for n in size]
    stride = [_int(s, "stride") for s in stride]
    if offset < 0 or any(n < 0 for n in size) or any(s < 0 for s in stride):
        raise pickle.UnpicklingError(
            f"a tensor with a negative offset, size or stride ({offset}, {size}, {stride})"
        )
    if any(n == 0 for n in size):
        return np.zeros(size, dtype=storage.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if offset >= len(storage) or last >= len(storage):
        raise pickle.UnpicklingError(
            f"a tensor reaching element {last} of a storage of {len(storage)} (offset {offset}, size {size}, "
            f"stride {stride})"
        )
    extent = 1  # elements spanned by the faster dimensions: a dimension must step over all of them
    for n, s in sorted(((n, s) for n, s in zip(size, stride) if n > 1), key=lambda t: t[1]):
        if s < extent:
            raise pickle.UnpicklingError(f"a tensor whose elements overlap (size {size}, stride {stride})")
        extent = s * (n - 1) + extent
    if len(size) == 0:
        return storage[offset : offset + 1].reshape(()).copy()
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * item for s in stride)
    )
    return view.copy()


_ALLOWED = {
    ("collections", "OrderedDict"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _OC20Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module.startswith("torch_geometric."):
            return PygStandIn
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return _load_storage
        if (module, name) in (("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor")):
            return _rebuild_tensor
        if (module, name) in _ALLOWED or (module == "numpy.dtypes" and name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to unpickle {module}.{name}: not part of an OC20 LMDB record (tensors, numbers, PyG Data)"
        )


def record_fields(blob: bytes, *, where: str = "record") -> dict:
    """The fields of one pickled ``Data`` record (PyG 1.x or 2.x layout) as a plain dict."""
    try:
        obj = _OC20Unpickler(io.BytesIO(blob)).load()
    except Exception as err:
        raise MLIPInputError(f"{where}: cannot read the pickled record: {err}") from err
    if isinstance(obj, dict):
        return obj
    if not isinstance(obj, PygStandIn):
        raise MLIPInputError(f"{where}: expected a PyG Data object, got {type(obj).__name__}")
    state = obj.state
    store = state.get("_store")
    if isinstance(store, PygStandIn):  # PyG 2.x: GlobalStorage(_mapping=...)
        return dict(store.state.get("_mapping", {}))
    return {k: v for k, v in state.items() if not k.startswith("_")}


def _np(value, dtype=np.float64) -> np.ndarray:
    if hasattr(value, "detach"):  # a tensor (records built in memory, not unpickled)
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def _scalar(value) -> float:
    return float(_np(value).reshape(-1)[0])


def _first(fields: dict, *names: str):
    for n in names:
        if fields.get(n) is not None:
            return fields[n]
    return None


def fields_to_atoms(fields: dict, *, where: str = "record") -> list[ase.Atoms]:
    """One record's fields -> its labelled structures (one for S2EF, up to two for IS2RE). A field of the wrong
    shape or type is an error naming the record."""
    try:
        return _fields_to_atoms(fields, where)
    except MLIPInputError:
        raise
    except (ValueError, TypeError, IndexError, OverflowError, AttributeError) as err:
        raise MLIPInputError(f"{where}: a malformed record ({type(err).__name__}: {err})") from None


def _fields_to_atoms(fields: dict, where: str) -> list[ase.Atoms]:
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.constraints import FixAtoms

    if not isinstance(fields, dict):
        raise MLIPInputError(f"{where}: the record is not a mapping of fields")
    for key in ("pos", "atomic_numbers"):
        if fields.get(key) is None:
            raise MLIPInputError(f"{where}: the record has no {key!r} (is this an OC20 LMDB?)")
    z = _np(fields["atomic_numbers"]).reshape(-1)
    if not np.isfinite(z).all():
        raise MLIPInputError(f"{where}: the record's atomic numbers are not finite")
    numbers = np.rint(z).astype(int)
    n = len(numbers)
    cell = _np(fields["cell"]).reshape(3, 3) if fields.get("cell") is not None else np.zeros((3, 3))
    pbc = _np(fields["pbc"], bool).reshape(-1)[:3] if fields.get("pbc") is not None else cell.any(axis=1)
    tags = _np(fields["tags"], np.int64).reshape(n) if fields.get("tags") is not None else None
    fixed = _np(fields["fixed"]).reshape(n) > 0.5 if fields.get("fixed") is not None else None
    info = {k: int(_scalar(fields[k])) for k in ("sid", "fid") if fields.get(k) is not None}

    def build(positions, energy, forces, stress) -> ase.Atoms:
        atoms = ase.Atoms(numbers=numbers, positions=_np(positions).reshape(n, 3), cell=cell, pbc=pbc)
        if tags is not None:
            atoms.set_tags(tags)
        if fixed is not None and fixed.any():
            atoms.set_constraint(FixAtoms(mask=fixed))
        atoms.info.update(info)
        results = {}
        if energy is not None:
            results["energy"] = _scalar(energy)
        if forces is not None:
            results["forces"] = _np(forces).reshape(n, 3)
        if stress is not None:
            s = _np(stress).reshape(3, 3)
            results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
        if results:
            atoms.calc = SinglePointCalculator(atoms, **results)
        return atoms

    energy = _first(fields, "energy", "y")
    forces = _first(fields, "forces", "force")
    if energy is not None or forces is not None or fields.get("y_init") is None:
        return [build(fields["pos"], energy, forces, fields.get("stress"))]
    out = [build(fields["pos"], fields["y_init"], None, None)]
    if fields.get("pos_relaxed") is not None and fields.get("y_relaxed") is not None:
        out.append(build(fields["pos_relaxed"], fields["y_relaxed"], None, None))
    return out


def iter_pyg_lmdb(path: str | Path, keys: list[bytes] | None = None) -> Iterator[ase.Atoms]:
    """Stream the structures of one legacy LMDB file or of every ``*.lmdb`` file in a directory; ``keys`` (one
    file only) reads just those records."""
    for file, key, blob in iter_source_records(path, ".lmdb", keys):
        where = f"{file.name}[{key.decode()}]"
        yield from fields_to_atoms(record_fields(blob, where=where), where=where)


def count_pyg_lmdb(path: str | Path) -> int:
    """Number of records (IS2RE records may give two structures each)."""
    return sum(len(record_keys(f)) for f in lmdb_files(path, ".lmdb"))
