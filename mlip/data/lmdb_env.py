"""Opening LMDB environments: single files, the way fairchem writes them (``subdir=False``), or directories holding
``data.mdb`` (LMDB's default layout)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from mlip.errors import MLIPFileNotFoundError, MLIPInputError

_MAGIC = 0xBEEFC0DE

__all__ = ["is_env_dir", "iter_records", "iter_source_records", "lmdb_files", "open_lmdb", "record_keys"]


def is_env_dir(path: str | Path) -> bool:
    """True for a directory that is itself one LMDB environment (holds ``data.mdb``)."""
    return Path(path).is_dir() and (Path(path) / "data.mdb").is_file()


def _check_size(data_file: Path) -> None:
    """Refuse an LMDB data file shorter than its own meta page says (a truncated copy).

    LMDB maps the file and trusts it: reading a page past the end of a truncated file kills the process with
    SIGBUS. Layout of the two meta pages (pages 0 and 1; LMDB 0.9, 64-bit): a 16-byte page header, then
    ``mm_magic`` (uint32 0xBEEFC0DE), ``mm_version``, ``mm_address``, ``mm_mapsize``, two 48-byte ``MDB_db``
    records (the first one's ``md_pad`` holds the page size), ``mm_last_pg`` and ``mm_txnid`` (uint64 each). The
    meta page with the larger ``mm_txnid`` is the current one; the file must hold pages ``0..mm_last_pg``.
    """
    size = data_file.stat().st_size
    with open(data_file, "rb") as fh:
        head = fh.read(16 + 144)
        if len(head) < 160 or struct.unpack_from("<I", head, 16)[0] != _MAGIC:
            raise MLIPInputError(
                f"cannot open {data_file} as an LMDB file: no LMDB meta page (damaged, or not LMDB)"
            )
        psize = struct.unpack_from("<I", head, 40)[0]
        if psize < 512 or psize & (psize - 1):
            raise MLIPInputError(
                f"cannot open {data_file} as an LMDB file: a damaged meta page (page size {psize})"
            )
        metas = [head]
        fh.seek(psize)
        second = fh.read(160)
        if len(second) == 160 and struct.unpack_from("<I", second, 16)[0] == _MAGIC:
            metas.append(second)
    last_pg, _ = max((struct.unpack_from("<QQ", m, 136) for m in metas), key=lambda t: t[1])
    if size < (last_pg + 1) * psize:
        raise MLIPInputError(
            f"cannot open {data_file} as an LMDB file: it is truncated ({size} bytes, its pages need "
            f"{(last_pg + 1) * psize})"
        )


def open_lmdb(path: str | Path, *, write: bool = False):
    """An ``lmdb.Environment`` on the file (or ``data.mdb`` directory) ``path``: read-only and lock-free (safe in
    many data-loader workers at once), or writable for a new single file. A file shorter than its own header
    says is refused before LMDB maps it (:func:`_check_size`)."""
    try:
        import lmdb
    except ImportError as err:  # pragma: no cover - lmdb is a dependency
        raise ImportError("reading LMDB files needs the 'lmdb' package: pip install lmdb") from err
    path = Path(path)
    if write:
        return lmdb.open(str(path), map_size=1 << 40, subdir=False, meminit=False, map_async=True)
    subdir = is_env_dir(path)
    if not (path.is_file() or subdir):
        raise MLIPFileNotFoundError(f"no such LMDB file: {path}")
    _check_size(path / "data.mdb" if subdir else path)
    try:
        return lmdb.open(str(path), subdir=subdir, readonly=True, lock=False, readahead=False, meminit=False)
    except lmdb.Error as err:
        raise MLIPInputError(f"cannot open {path} as an LMDB file: {err}") from err


def lmdb_files(path: str | Path, suffix: str) -> list[Path]:
    """``[path]`` for a file or a ``data.mdb`` directory, or the files ``*<suffix>`` of a directory in sorted
    order."""
    path = Path(path)
    if is_env_dir(path):
        return [path]
    if path.is_dir():
        files = sorted(path.glob(f"*{suffix}"))
        if not files:
            raise MLIPFileNotFoundError(f"{path} holds no *{suffix} files")
        return files
    if not path.is_file():
        raise MLIPFileNotFoundError(f"no such file: {path}")
    return [path]


def record_keys(file: str | Path) -> list[bytes]:
    """The record keys of one file (ASCII decimal integers; bookkeeping keys such as ``nextid`` or ``length``
    skipped), in numeric order."""
    import lmdb

    env = open_lmdb(file)
    try:
        with env.begin() as txn:
            keys = [k for k in txn.cursor().iternext(keys=True, values=False) if k.isdigit()]
    except lmdb.Error as err:
        raise MLIPInputError(f"{Path(file).name}: a damaged LMDB file ({err})") from None
    finally:
        env.close()
    return sorted(keys, key=int)


def iter_records(file: str | Path, keys: list[bytes] | None = None) -> Iterator[tuple[bytes, bytes]]:
    """``(key, value)`` for ``keys`` (default: :func:`record_keys`) of one file, read in one transaction."""
    import lmdb

    keys = record_keys(file) if keys is None else keys
    env = open_lmdb(file)
    try:
        with env.begin() as txn:
            for key in keys:
                try:
                    value = txn.get(key)
                except lmdb.Error as err:
                    raise MLIPInputError(f"{Path(file).name}: a damaged LMDB file ({err})") from None
                if value is None:
                    raise MLIPInputError(f"{Path(file).name}: no record {key.decode()!r}")
                yield key, value
    finally:
        env.close()


def iter_source_records(path: str | Path, suffix: str, keys: list[bytes] | None = None):
    """``(file, key, value)`` over the records of one file or of every ``*<suffix>`` file of a directory;
    ``keys`` (one file only) selects records."""
    files = lmdb_files(path, suffix)
    if keys is not None and len(files) != 1:
        raise MLIPInputError("keys select records of one file, not of a directory")
    for file in files:
        for key, value in iter_records(file, keys):
            yield file, key, value
