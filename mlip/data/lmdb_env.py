"""Opening LMDB environments: single files, the way fairchem writes them (``subdir=False``), or directories holding
``data.mdb`` (LMDB's default layout)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mlip.data.lmdb_check import check_lmdb_file
from mlip.errors import MLIPFileNotFoundError, MLIPInputError

__all__ = ["is_env_dir", "iter_records", "iter_source_records", "lmdb_files", "open_lmdb", "record_keys"]


def is_env_dir(path: str | Path) -> bool:
    """True for a directory that is itself one LMDB environment (holds ``data.mdb``)."""
    return Path(path).is_dir() and (Path(path) / "data.mdb").is_file()


def open_lmdb(path: str | Path, *, write: bool = False):
    """An ``lmdb.Environment`` on the file (or ``data.mdb`` directory) ``path``: read-only and lock-free (safe in
    many data-loader workers at once), or writable for a new single file. A truncated or damaged file is refused
    before LMDB maps it (:func:`mlip.data.lmdb_check.check_lmdb_file`)."""
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
    check_lmdb_file(path / "data.mdb" if subdir else path)
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

    file = Path(file)
    env = open_lmdb(file)
    try:
        with env.begin() as txn:
            keys = [k for k in txn.cursor().iternext(keys=True, values=False) if k.isdigit()]
    except lmdb.Error as err:
        raise MLIPInputError(f"{file.name}: a damaged LMDB file ({err})") from None
    finally:
        env.close()
    return sorted(keys, key=int)


def iter_records(file: str | Path, keys: list[bytes] | None = None) -> Iterator[tuple[bytes, bytes]]:
    """``(key, value)`` for ``keys`` (default: :func:`record_keys`) of one file, read in one transaction."""
    import lmdb

    file = Path(file)
    keys = record_keys(file) if keys is None else keys
    env = open_lmdb(file)
    try:
        with env.begin() as txn:
            for key in keys:
                try:
                    value = txn.get(key)
                except lmdb.Error as err:
                    raise MLIPInputError(f"{file.name}: a damaged LMDB file ({err})") from None
                if value is None:
                    raise MLIPInputError(f"{file.name}: no record {key.decode()!r}")
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
