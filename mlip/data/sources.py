"""The frame sources: every supported storage, registered, and one entry point that streams ``ase.Atoms`` from a
path whatever its layout.

A :class:`FrameSource` says how its storage is recognised (``detect``) and read (``iterate``); a storage with
random access (the LMDB kinds) also lists its files, each file's record keys, and reads the frames of given keys,
which is what lets ``mlip-preprocess``'s workers read their own records. :func:`source_of` picks the first
registered source that recognises a path (the ASE fallback last); :func:`register_source` adds one.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import ase

from mlip.data.aselmdb import iter_aselmdb
from mlip.data.lmdb_env import is_env_dir, iter_records, lmdb_files, record_keys
from mlip.data.mptrj import is_mptrj_json, read_mptrj
from mlip.data.pyg_lmdb import iter_pyg_lmdb
from mlip.errors import MLIPFileNotFoundError, MLIPInputError

__all__ = [
    "FrameSource",
    "iter_atoms",
    "lmdb_kind",
    "register_source",
    "source_named",
    "source_of",
    "sources",
]

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


@dataclass(frozen=True, kw_only=True)
class FrameSource:
    """One kind of storage.

    Attributes:
        name: the kind (``"mptrj_json"``, ``"aselmdb"``, ``"pyg_lmdb"``, ``"ase"``, ...).
        detect: ``path -> bool``, whether ``path`` (a file or directory that exists) is of this kind.
        iterate: ``(path, mptrj_energy=..., index=...) -> Iterator[ase.Atoms]``, every frame in order; labels on
            each ``Atoms``' calculator or in its ``info`` / ``arrays`` (:func:`mlip.data.atoms_to_frame`).
        files: random access only: ``path -> [file, ...]``, the files of a source, in reading order.
        records: random access only: ``file -> [key, ...]``, the record keys of one file, in reading order.
        read: random access only: ``(file, keys) -> Iterator[ase.Atoms]``, the frames of those records.
    """

    name: str
    detect: Callable[[Path], bool]
    iterate: Callable[..., Iterator[ase.Atoms]]
    files: Callable[[Path], list[Path]] | None = None
    records: Callable[[Path], list[bytes]] | None = None
    read: Callable[[Path, list[bytes]], Iterator[ase.Atoms]] | None = None

    @property
    def random_access(self) -> bool:
        return self.files is not None and self.records is not None and self.read is not None


_REGISTRY: list[FrameSource] = []


def register_source(source: FrameSource, *, before: str | None = None) -> None:
    """Add ``source`` to the registry, before the source named ``before`` (default: before the ASE fallback, which
    recognises any file); a source of the same name is replaced."""
    _REGISTRY[:] = [s for s in _REGISTRY if s.name != source.name]
    names = [s.name for s in _REGISTRY]
    target = before if before is not None else ("ase" if "ase" in names else None)
    _REGISTRY.insert(names.index(target) if target in names else len(_REGISTRY), source)


def sources() -> tuple[FrameSource, ...]:
    """The registered sources, in the order :func:`source_of` tries them."""
    return tuple(_REGISTRY)


def source_named(name: str) -> FrameSource:
    for source in _REGISTRY:
        if source.name == name:
            return source
    raise KeyError(f"no frame source named {name!r}; registered: {[s.name for s in _REGISTRY]}")


def source_of(path: str | Path) -> FrameSource:
    """The first registered source that recognises ``path``; a missing path or a directory that no source reads
    is a clear error."""
    path = Path(path)
    if not path.exists():
        raise MLIPFileNotFoundError(f"no such data file: {path}")
    for source in _REGISTRY:
        if source.detect(path):
            return source
    names = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
    listing = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "") if names else "nothing"
    raise MLIPInputError(
        f"{path} is a directory ({listing}), not a data source: give one data file, a directory of "
        f"*.aselmdb / *.lmdb files, or the output of mlip-preprocess (e.g. mlip-preprocess {path}/*.xyz OUT "
        "converts several files into one dataset)"
    )


def iter_atoms(
    path: str | Path, *, mptrj_energy: str = "uncorrected", index: str = ":"
) -> Iterator[ase.Atoms]:
    """Stream the structures of ``path`` through its source (:func:`source_of`; the module docstring lists the
    formats). Labels sit on each ``Atoms``' SinglePointCalculator or in its ``info`` / ``arrays``;
    :func:`mlip.data.atoms_to_frame` reads them. ``index`` selects frames of ASE-read files only."""
    source = source_of(path)  # errors before the first frame is asked for, as a generator would not
    return source.iterate(Path(path), mptrj_energy=mptrj_energy, index=index)


def _iter_ase(path: Path, *, index: str = ":", **_) -> Iterator[ase.Atoms]:
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


register_source(
    FrameSource(
        name="mptrj_json",
        detect=lambda p: p.suffix == ".json" and p.is_file() and is_mptrj_json(p),
        iterate=lambda p, *, mptrj_energy="uncorrected", **_: read_mptrj(p, energy=mptrj_energy),
    )
)


def _lmdb_source(name: str, kind: str, suffix: str, reader) -> FrameSource:
    """An LMDB kind (:func:`lmdb_kind` ``kind``, files ``*<suffix>``): random access by record keys."""
    return FrameSource(
        name=name,
        detect=lambda p: lmdb_kind(p) == kind,
        iterate=lambda p, **_: reader(p),
        files=lambda p: lmdb_files(p, suffix),
        records=record_keys,
        read=reader,
    )


register_source(_lmdb_source("aselmdb", "aselmdb", ".aselmdb", iter_aselmdb))
register_source(_lmdb_source("pyg_lmdb", "pyg", ".lmdb", iter_pyg_lmdb))
register_source(FrameSource(name="ase", detect=lambda p: p.is_file(), iterate=_iter_ase))
