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


def _data_file(path: Path) -> Path:
    return path / "data.mdb" if is_env_dir(path) else path


class _MappedFile:
    """Where LMDB mapped a data file in this process, to check each key and value it hands out before copying.

    LMDB returns keys and values as pointers into its map of the file and trusts the sizes stored in the pages: a
    damaged size makes a copy run past the end of the file, which kills the process with SIGBUS. With
    ``buffers=True`` nothing is copied until we do it, so every buffer's address range is first checked to lie
    inside the file's pages ``[start, start + file size)`` of one of its mappings (found in ``/proc/self/maps``;
    where that does not exist, only the length is checked).
    """

    def __init__(self, data_file: Path, name: str) -> None:
        st = data_file.stat()
        self.size, self.name = st.st_size, name
        self.starts = []
        try:
            with open("/proc/self/maps") as fh:
                for line in fh:
                    fields = line.split()
                    if len(fields) >= 5 and fields[4] == str(st.st_ino) and int(fields[2], 16) == 0:
                        self.starts.append(int(fields[0].split("-")[0], 16))
        except OSError:  # pragma: no cover - not Linux
            pass

    def copy(self, buf) -> bytes:
        """``bytes(buf)`` once ``buf`` is known to lie inside the file."""
        n = len(buf)
        inside = n <= self.size
        if inside and n and self.starts:
            import numpy as np

            addr = np.frombuffer(buf, dtype=np.uint8).ctypes.data  # the address only: no byte is read
            inside = any(lo <= addr and addr + n <= lo + self.size for lo in self.starts)
        if not inside:
            raise MLIPInputError(f"{self.name}: a damaged LMDB file (a record points outside the file)")
        return bytes(buf)


def record_keys(file: str | Path) -> list[bytes]:
    """The record keys of one file (ASCII decimal integers; bookkeeping keys such as ``nextid`` or ``length``
    skipped), in numeric order."""
    import lmdb

    file = Path(file)
    env = open_lmdb(file)
    try:
        mapped = _MappedFile(_data_file(file), file.name)
        with env.begin(buffers=True) as txn:
            keys = [
                k for k in map(mapped.copy, txn.cursor().iternext(keys=True, values=False)) if k.isdigit()
            ]
    except lmdb.Error as err:
        raise MLIPInputError(f"{file.name}: a damaged LMDB file ({err})") from None
    finally:
        env.close()
    return sorted(keys, key=int)


def iter_records(file: str | Path, keys: list[bytes] | None = None) -> Iterator[tuple[bytes, bytes]]:
    """``(key, value)`` for ``keys`` (default: :func:`record_keys`) of one file, read in one transaction; every
    value is checked to lie inside the file before it is copied (:class:`_MappedFile`)."""
    import lmdb

    file = Path(file)
    keys = record_keys(file) if keys is None else keys
    env = open_lmdb(file)
    try:
        mapped = _MappedFile(_data_file(file), file.name)
        with env.begin(buffers=True) as txn:
            for key in keys:
                try:
                    buf = txn.get(key)
                except lmdb.Error as err:
                    raise MLIPInputError(f"{file.name}: a damaged LMDB file ({err})") from None
                if buf is None:
                    raise MLIPInputError(f"{file.name}: no record {key.decode()!r}")
                yield key, mapped.copy(buf)
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
