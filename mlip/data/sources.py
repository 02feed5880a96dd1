"""One entry point for every supported data source: stream ``ase.Atoms`` from a path, whatever its layout.

==================================  ============================================================  ==========
source                              detected by                                                   reader
==================================  ============================================================  ==========
MPtrj JSON                          ``.json`` whose first record has ``structure`` and energies   :func:`mlip.data.mptrj.read_mptrj`
fairchem ``aselmdb``                ``.aselmdb``, or an ``.lmdb`` whose rows are zlib JSON        :func:`mlip.data.aselmdb.iter_aselmdb`
legacy OC20 LMDB (pickled PyG)      ``.lmdb`` whose records are pickles                           :func:`mlip.data.pyg_lmdb.iter_pyg_lmdb`
a directory of LMDB files           its ``*.aselmdb`` or ``*.lmdb`` files, read in sorted order   as above
an LMDB environment directory       it holds ``data.mdb`` (LMDB's default layout)                 as above
anything else                       ``ase.io.iread`` (extxyz, ``.traj``, ASE ``.db``, ...)         ASE
==================================  ============================================================  ==========

An OC20 relaxation trajectory is named after its system (``random<sid>.traj``) and carries no system id of its
own; :func:`iter_atoms` sets ``info["sid"]`` from such a file name so that the per-system reference energies of
:mod:`mlip.data.references` find it.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from pathlib import Path

import ase

from mlip.data.aselmdb import iter_aselmdb
from mlip.data.lmdb_env import is_env_dir, iter_records, record_keys
from mlip.data.mptrj import is_mptrj_json, read_mptrj
from mlip.data.pyg_lmdb import iter_pyg_lmdb
from mlip.errors import MLIPFileNotFoundError, MLIPInputError

__all__ = ["iter_atoms", "lmdb_kind"]

_OC20_TRAJ = re.compile(r"^random\d+$")


def lmdb_kind(path: str | Path) -> str | None:
    """``"aselmdb"``, ``"pyg"`` or ``None`` (not an LMDB source) for a file or a directory."""
    path = Path(path)
    env_dir = is_env_dir(path)
    if path.is_dir() and not env_dir:
        if any(path.glob("*.aselmdb")):
            return "aselmdb"
        files = sorted(path.glob("*.lmdb"))
        return lmdb_kind(files[0]) if files else None
    if path.suffix == ".aselmdb":
        return "aselmdb"
    if path.suffix != ".lmdb" and not env_dir:
        return None

    keys = record_keys(path)
    if not keys:
        raise MLIPInputError(f"{path}: the LMDB file holds no records")
    _, value = next(iter_records(path, keys[:1]))
    return "aselmdb" if value[:1] == b"x" and _is_zlib(value) else "pyg"


def _is_zlib(blob: bytes) -> bool:
    try:
        zlib.decompressobj().decompress(blob[:64])
    except zlib.error:
        return False
    return True


def iter_atoms(
    path: str | Path, *, mptrj_energy: str = "uncorrected", index: str = ":"
) -> Iterator[ase.Atoms]:
    """Stream the structures of ``path`` (see the module docstring for the formats). Labels sit on each
    ``Atoms``' SinglePointCalculator or in its ``info`` / ``arrays``; :func:`mlip.data.atoms_to_frame` reads them.
    ``index`` selects frames of ASE-read files only."""
    path = Path(path)
    if not path.exists():
        raise MLIPFileNotFoundError(f"no such data file: {path}")
    if path.suffix == ".json" and is_mptrj_json(path):
        yield from read_mptrj(path, energy=mptrj_energy)
        return
    kind = lmdb_kind(path)
    if kind == "aselmdb":
        yield from iter_aselmdb(path)
        return
    if kind == "pyg":
        yield from iter_pyg_lmdb(path)
        return
    if path.is_dir():
        names = sorted(p.name for p in path.iterdir())
        listing = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "") if names else "nothing"
        raise MLIPInputError(
            f"{path} is a directory ({listing}), not a data source: give one data file, a directory of "
            f"*.aselmdb / *.lmdb files, or the output of mlip-preprocess (e.g. mlip-preprocess {path}/*.xyz OUT "
            "converts several files into one dataset)"
        )
    import ase.io

    sid = path.stem if path.suffix == ".traj" and _OC20_TRAJ.match(path.stem) else None
    try:
        images = ase.io.iread(str(path), index=index)
        for atoms in images:
            if sid is not None:
                atoms.info.setdefault("sid", sid)
            yield atoms
    except Exception as err:  # ASE raises many kinds (UnknownFileTypeError, KeyError, ...)
        raise MLIPInputError(f"cannot read {path} with ASE: {err}") from err
