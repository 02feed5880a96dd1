"""Opening LMDB files the way fairchem writes them (one file per environment, ``subdir=False``)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["lmdb_files", "open_lmdb"]


def open_lmdb(path: str | Path, *, write: bool = False):
    """An ``lmdb.Environment`` on the single file ``path``: read-only and lock-free (safe in many data-loader
    workers at once), or writable for a new file."""
    try:
        import lmdb
    except ImportError as err:  # pragma: no cover - lmdb is a dependency
        raise ImportError("reading LMDB files needs the 'lmdb' package: pip install lmdb") from err
    path = Path(path)
    if write:
        return lmdb.open(str(path), map_size=1 << 40, subdir=False, meminit=False, map_async=True)
    if not path.is_file():
        raise FileNotFoundError(f"no such LMDB file: {path}")
    try:
        return lmdb.open(str(path), subdir=False, readonly=True, lock=False, readahead=False, meminit=False)
    except lmdb.Error as err:
        raise ValueError(f"cannot open {path} as an LMDB file: {err}") from err


def lmdb_files(path: str | Path, suffix: str) -> list[Path]:
    """``[path]`` for a file, or the files ``*<suffix>`` of a directory in sorted order."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob(f"*{suffix}"))
        if not files:
            raise FileNotFoundError(f"{path} holds no *{suffix} files")
        return files
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    return [path]
