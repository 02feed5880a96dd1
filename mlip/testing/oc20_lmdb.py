"""Write legacy OC20 LMDB fixtures (pickled PyG ``Data`` records) without PyTorch Geometric installed.

:func:`write_pyg_lmdb` converts ``ase.Atoms`` the way fairchem's ``AtomsToGraphs`` + ``preprocess_ef.py`` do
(positions wrapped into the cell and stored in float32, ``cell`` ``[1, 3, 3]``, ``tags``, ``fixed`` from
``FixAtoms``, ``sid`` / ``fid``, energy and forces of the attached calculator without constraints) and pickles
each record as PyG would: in the 1.x layout (fields in the object's ``__dict__``, the OC20 downloads) or the 2.x
layout (fields in a ``GlobalStorage`` under ``_store``). The classes are written under their PyG names
(``torch_geometric.data.data.Data``, ...) by a pickler that names stand-ins, so the bytes are the ones a PyG
install would read. Used by the tests of :mod:`mlip.data.pyg_lmdb`.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterable
from pathlib import Path

import ase
import numpy as np
import torch
from ase.geometry import wrap_positions

from mlip.data.lmdb_env import open_lmdb

__all__ = ["atoms_to_record", "write_pyg_lmdb"]


class _NamedClass:
    """Pickled as the global ``module.name`` (a class that need not be importable here)."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name


class _Named:
    """Pickled as an instance of ``module.name`` whose ``__dict__`` (or ``__setstate__`` argument) is ``state``."""

    def __init__(self, module: str, name: str, state: dict):
        self.pickle_class = _NamedClass(module, name)
        self.state = state


class _Pickler(pickle._Pickler):
    """The pure-Python pickler, writing :class:`_NamedClass` as a global and :class:`_Named` as
    ``NEWOBJ`` + ``BUILD``, the opcodes pickle itself emits for an ordinary instance."""

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, _NamedClass):
            self.save(obj.module)
            self.save(obj.name)
            self.write(pickle.STACK_GLOBAL)
        elif isinstance(obj, _Named):
            seen = self.memo.get(id(obj))
            if seen is not None:  # a reference back (GlobalStorage._parent -> Data)
                self.write(self.get(seen[0]))
                return
            self.save(obj.pickle_class)
            self.save(())
            self.write(pickle.NEWOBJ)
            self.memoize(obj)
            self.save(obj.state)
            self.write(pickle.BUILD)
        else:
            super().save(obj, save_persistent_id)


def _pyg_data(fields: dict, layout: str) -> _Named:
    if layout == "pyg1":
        return _Named("torch_geometric.data.data", "Data", {"x": None, "edge_index": None, **fields})
    if layout != "pyg2":
        raise ValueError(f"layout must be 'pyg1' or 'pyg2', got {layout!r}")
    data = _Named("torch_geometric.data.data", "Data", {})
    store = _Named("torch_geometric.data.storage", "GlobalStorage", {"_mapping": fields, "_parent": data})
    data.state.update(
        _edge_attr_cls=_NamedClass("torch_geometric.data.data", "DataEdgeAttr"),
        _tensor_attr_cls=_NamedClass("torch_geometric.data.data", "DataTensorAttr"),
        _store=store,
    )
    return data


def atoms_to_record(atoms: ase.Atoms, *, sid: int, fid: int, names: str = "old") -> dict:
    """The fields fairchem stores for one S2EF frame. ``names``: ``"old"`` (``y``, ``force``, float
    ``atomic_numbers``: the OC20 downloads) or ``"new"`` (``energy``, ``forces``, uint8 numbers)."""
    from ase.constraints import FixAtoms

    cell = np.asarray(atoms.get_cell(complete=True))
    pos = wrap_positions(atoms.positions, cell, pbc=atoms.pbc, eps=0)
    fixed = torch.zeros(len(atoms), dtype=torch.int32)
    for c in atoms.constraints:
        if isinstance(c, FixAtoms):
            fixed[torch.as_tensor(c.get_indices(), dtype=torch.long)] = 1
    fields = {
        "pos": torch.tensor(pos, dtype=torch.float32),
        "cell": torch.tensor(cell, dtype=torch.float32).view(1, 3, 3),
        "natoms": len(atoms),
        "tags": torch.tensor(atoms.get_tags(), dtype=torch.long),
        "fixed": fixed.float() if names == "old" else fixed,
        "sid": sid,
        "fid": fid,
    }
    z = torch.tensor(atoms.numbers)
    fields["atomic_numbers"] = z.float() if names == "old" else z.to(torch.uint8)
    if atoms.calc is not None:
        energy = atoms.get_potential_energy(apply_constraint=False)
        forces = torch.tensor(atoms.get_forces(apply_constraint=False), dtype=torch.float32)
        fields.update(
            {"y": energy, "force": forces} if names == "old" else {"energy": energy, "forces": forces}
        )
    return fields


def write_pyg_lmdb(
    path: str | Path,
    images: Iterable[ase.Atoms],
    *,
    sid: int,
    layout: str = "pyg1",
    names: str = "old",
    write_length: bool = True,
) -> int:
    """Write ``images`` (frames ``fid = 0, 1, ...`` of system ``sid``) as a new legacy LMDB file."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists")
    env = open_lmdb(path, write=True)
    n = 0
    try:
        with env.begin(write=True) as txn:
            for n, atoms in enumerate(images, start=1):
                record = _pyg_data(atoms_to_record(atoms, sid=sid, fid=n - 1, names=names), layout)
                buf = io.BytesIO()
                _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(record)
                txn.put(f"{n - 1}".encode("ascii"), buf.getvalue())
            if write_length:
                txn.put(b"length", pickle.dumps(n, protocol=pickle.HIGHEST_PROTOCOL))
    finally:
        env.close()
    return n
