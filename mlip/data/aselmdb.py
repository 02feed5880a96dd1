"""fairchem's ``aselmdb`` format: ASE database rows in an LMDB file.

Layout (fairchem ``LMDBDatabase``, the format of the OC20/OMat24/OMol25 ``*.aselmdb`` releases): one LMDB
environment per file (``subdir=False``). Key ``b"<id>"`` (ids ``1, 2, ...`` as ASCII decimal) holds
``zlib.compress(json(row))``, where ``row`` is the dictionary of an :class:`ase.db.row.AtomsRow` (``numbers``,
``positions`` Å, ``cell`` Å, ``pbc``, ``constraints`` as ``[{"name": "FixAtoms", "kwargs": ...}]``, the
calculator's ``energy`` eV / ``forces`` eV/Å / ``stress`` eV/Å³ (ASE sign), ``tags``, ``key_value_pairs``,
``data``, ...) with NumPy arrays written as nested lists. The reserved keys ``nextid``, ``metadata`` and
``deleted_ids`` hold bookkeeping, zlib-compressed JSON as well.

Reading needs only ``lmdb`` (no fairchem): rows are decoded with the standard library's JSON and turned into
``ase.Atoms`` by ASE's own ``AtomsRow.toatoms``, so labels sit on a SinglePointCalculator exactly as for an ASE
``.db`` file. ``key_value_pairs`` and ``data`` go to ``atoms.info`` (fairchem's ``AseDBDataset`` does the same
with ``data``). A release is usually a directory of many ``*.aselmdb`` files: :func:`iter_aselmdb` takes either.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import ase
import numpy as np

from mlip.data.lmdb_env import iter_source_records, lmdb_files, open_lmdb, record_keys
from mlip.errors import MLIPInputError
from mlip.fileio import atomic_path

__all__ = ["count_aselmdb", "iter_aselmdb", "row_to_atoms", "write_aselmdb"]


def _decode_row(blob: bytes, where: str) -> dict:
    """Plain JSON (fairchem writes NumPy arrays as nested lists); ASE's ``{"__ndarray__": ...}`` encoding, which
    older writers used, is decoded as well."""
    from ase.io.jsonio import decode

    try:
        return decode(zlib.decompress(blob).decode())
    except (zlib.error, ValueError) as err:
        raise MLIPInputError(f"{where}: not an aselmdb row (zlib-compressed JSON expected): {err}") from err


def row_to_atoms(row: dict, *, where: str = "row") -> ase.Atoms:
    """One decoded row dictionary -> ``ase.Atoms`` with a SinglePointCalculator; ``info`` gets the row's
    ``key_value_pairs`` and scalar ``data`` entries."""
    from ase.db.row import AtomsRow

    for key in ("numbers", "positions"):
        if key not in row:
            raise MLIPInputError(f"{where}: the row has no {key!r}")
    row = dict(row)
    row.setdefault("id", 0)
    atoms = AtomsRow(row).toatoms()
    atoms.info.update(row.get("key_value_pairs") or {})
    for k, v in (row.get("data") or {}).items():
        atoms.info.setdefault(k, np.asarray(v) if isinstance(v, list) else v)
    return atoms


def iter_aselmdb(path: str | Path, keys: list[bytes] | None = None) -> Iterator[ase.Atoms]:
    """Stream the rows of one ``*.aselmdb`` file or of every such file in a directory, in id order; ``keys``
    (one file only) reads just those rows."""
    for file, key, blob in iter_source_records(path, ".aselmdb", keys):
        where = f"{file.name}[id {key.decode()}]"
        yield row_to_atoms(_decode_row(blob, where), where=where)


def count_aselmdb(path: str | Path) -> int:
    """Number of rows (without decoding them)."""
    return sum(len(record_keys(f)) for f in lmdb_files(path, ".aselmdb"))


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot write {type(obj).__name__} to an aselmdb row")


def write_aselmdb(path: str | Path, images: Iterable[ase.Atoms], *, data_keys: Iterable[str] = ()) -> int:
    """Write ``images`` as a new ``*.aselmdb`` file readable by fairchem's ``LMDBDatabase`` and by
    :func:`iter_aselmdb`. Labels come from each ``Atoms``' calculator; scalar ``info`` entries become
    ``key_value_pairs``, and the ``info`` entries named in ``data_keys`` go to ``data``. Returns the row count."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; write_aselmdb creates a new file")
    data_keys = tuple(data_keys)
    with atomic_path(path) as tmp:  # the file appears whole or not at all
        n = _write_rows(tmp, images, data_keys)
        Path(f"{tmp}-lock").unlink(missing_ok=True)
    return n


def _write_rows(path: Path, images: Iterable[ase.Atoms], data_keys: tuple[str, ...]) -> int:
    from ase.db.row import AtomsRow

    env = open_lmdb(path, write=True)
    n = 0
    try:
        with env.begin(write=True) as txn:
            for n, atoms in enumerate(images, start=1):
                row = AtomsRow(atoms)
                dct = {k: row[k] for k in row.__dict__ if k[0] != "_" and k not in row._keys and k != "id"}
                dct["cell"] = np.asarray(dct["cell"])
                dct["ctime"] = dct["mtime"] = 0.0
                dct["user"] = os.environ.get("USER", "mlip")
                constraints = row.get("constraints")
                if constraints:
                    dct["constraints"] = [c.todict() for c in constraints]
                kvp = {
                    k: v
                    for k, v in atoms.info.items()
                    if k not in data_keys and isinstance(v, (bool, int, float, str, np.integer, np.floating))
                }
                if kvp:
                    dct["key_value_pairs"] = kvp
                if data_keys:
                    dct["data"] = {k: atoms.info[k] for k in data_keys if k in atoms.info}
                blob = json.dumps(dct, default=_json_default).encode()
                txn.put(str(n).encode("ascii"), zlib.compress(blob))
            txn.put(b"nextid", zlib.compress(json.dumps(n + 1).encode()))
    finally:
        env.close()
    return n
