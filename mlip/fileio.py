"""Files that appear whole or not at all, locks on output directories, and the identity of input files.

Every file mlip writes (model, checkpoint, metrics, plots, shards, manifests, relaxed structures) goes through
:func:`atomic_write` (or a helper built on it): the bytes go to a temporary file in the *same* directory, which is
flushed, ``fsync``\\ ed and renamed over the target (``os.replace``, atomic on POSIX file systems), and the
directory entry is ``fsync``\\ ed too. A reader therefore sees the old complete file or the new complete one,
after a crash, a ``kill -9`` or a full disk; a failed write removes its temporary file and raises
:class:`~mlip.errors.MLIPOutputError` naming the target and saying that the old file is unchanged.

:class:`DirectoryLock` (and :class:`FileLock`) keeps two processes (two trainings into one run directory, two
``mlip-preprocess`` into one output, two ``mlip-relax`` into one file) from mixing their files: an exclusive
``flock``, released by the kernel when the holder exits, however it exits, so a killed run leaves no stale lock.

:func:`file_identity` names an input by its resolved path, size and modification time, so that a rerun can tell
"the same data" from "other data" whatever spelling of the path the user gave.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import secrets
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from mlip.errors import MLIPInputError, MLIPOutputError

__all__ = [
    "open_tmp",
    "claim_run_record",
    "settings_differences",
    "DirectoryLock",
    "FileLock",
    "append_bytes",
    "atomic_path",
    "atomic_write",
    "check_not_input",
    "check_output_dir",
    "check_output_file",
    "file_identity",
    "fsync_dir",
    "fsync_tree",
    "torch_save_atomic",
    "write_json_atomic",
    "write_text_atomic",
    "TMP_MARK",
]

TMP_MARK = ".tmp-"
"""Temporary files and directories carry this in their name (``.NAME.tmp-PID-TOKEN``); they are never read."""


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def open_tmp(path: Path, mode: str) -> IO:
    """Open ``path`` for writing in ``mode`` (``"wb"``, ``"w"``, ``"ab"``): every file mlip writes is opened here (a seam for the fault-injection
    tests, which make it fail as a full disk does, or kill the process part-way)."""
    if mode == "ab":
        return open(path, mode, buffering=0)  # one write() is one system call: a kill cannot split it
    return open(path, mode) if "b" in mode else open(path, mode, encoding="utf-8")


def _write_note(fd: int, data: bytes) -> None:
    """Replace the contents of the open lock file ``fd`` by ``data`` (a seam for the full-disk tests)."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def fsync_dir(path: str | Path) -> None:
    """``fsync`` a directory, so that renames and new entries in it survive a power loss."""
    try:
        fd = os.open(str(path), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - platforms without directory descriptors
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def fsync_tree(path: str | Path) -> None:
    """``fsync`` every file of a directory (not recursive) and then the directory itself."""
    path = Path(path)
    for p in path.iterdir():
        if p.is_file():
            fd = os.open(str(p), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    fsync_dir(path)


def _output_error(path: Path, err: OSError, existed: bool | None) -> MLIPOutputError:
    """One line: what could not be written, why, and what is left (``existed=None``: an append)."""
    reason = err.strerror or str(err)
    if err.errno == errno.ENOSPC:
        reason = "no space left on device"
    if existed is None:
        kept = "what it held before is kept"
    else:
        kept = f"the previous {path.name} is unchanged" if existed else f"no {path.name} was written"
    return MLIPOutputError(f"cannot write {path}: {reason}; {kept}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    r"""A temporary path beside ``path`` (same suffix, so that tools choosing a format by the name still do) for a
    writer that needs a file name (ASE, LMDB); on a clean exit it is ``fsync``\ ed and renamed over ``path``
    (and the directory ``fsync``\ ed), on an exception removed, ``path`` left as it was. An ``OSError`` (full disk,
    no permission) is raised as :class:`~mlip.errors.MLIPOutputError`."""
    path = Path(path)
    _refuse_special(path, "output file", MLIPOutputError)
    existed = path.exists()
    tmp = _tmp_path(path)
    tmp = tmp.with_name(tmp.name + path.suffix)
    try:
        yield tmp
        fd = os.open(str(tmp), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError) and not isinstance(err, MLIPOutputError):
            raise _output_error(path, err, existed) from err
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """A file object on a temporary sibling of ``path`` that replaces ``path`` on a clean exit
    (:func:`atomic_path`). ``mode``: ``"wb"`` or ``"w"`` (text, UTF-8)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as tmp, open_tmp(tmp, mode) as fh:
        yield fh


def append_bytes(path: str | Path, data: bytes) -> None:
    """Append ``data`` to ``path`` (created if needed) with one ``write`` system call, then ``fsync``: a killed
    process leaves all of it or none. A write that fails (a full disk) is cut back to the previous end of the
    file and raised as :class:`~mlip.errors.MLIPOutputError`. (Only a power loss could still tear the last record;
    readers of appended files drop an incomplete last record.)"""
    path = Path(path)
    try:
        with open_tmp(path, "ab") as fh:
            end = os.fstat(fh.fileno()).st_size
            try:
                fh.write(data)
                os.fsync(fh.fileno())
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fh.fileno(), end)
                raise
    except OSError as err:
        raise _output_error(path, err, None) from err


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_write`)."""
    with atomic_write(path, "wb") as fh:
        fh.write(text.encode("utf-8"))


def write_json_atomic(path: str | Path, obj: Any, *, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (:func:`atomic_write`)."""
    write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")


def torch_save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save(obj)`` to ``path`` atomically (:func:`atomic_write`). The object is serialised in memory
    first, so that a failing disk shows as the ``OSError`` it is (torch's zip writer would hide it behind its own
    error)."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    view = buf.getbuffer()
    with atomic_write(path, "wb") as fh:
        for start in range(0, len(view), 1 << 24):
            fh.write(view[start : start + (1 << 24)])


def file_identity(path: str | Path) -> dict:
    """``{"path", "size", "mtime_ns"}`` of a file (resolved path), or, for a directory, ``{"path", "files":
    [[name, size, mtime_ns], ...]}`` over its files (sorted; sub-directories by the same rule). Two spellings of
    one unchanged input give equal identities; an edited or replaced file does not."""
    p = Path(path).resolve()
    if p.is_dir():
        files = []
        for child in sorted(p.rglob("*")):
            if child.is_file():
                st = child.stat()
                files.append([str(child.relative_to(p)), st.st_size, st.st_mtime_ns])
        return {"path": str(p), "files": files}
    st = p.stat()
    return {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def check_output_dir(path: str | Path, *, what: str = "output directory") -> Path:
    """Create ``path`` (and its parents) if needed and check it is a writable directory; a one-line
    :class:`~mlip.errors.MLIPInputError` otherwise. Call it before any work starts."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise MLIPInputError(f"{what} {path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MLIPInputError(f"cannot create {what} {path}: {err.strerror or err}") from err
    if not os.access(path, os.W_OK | os.X_OK):
        raise MLIPInputError(f"{what} {path} is not writable")
    return path


def _refuse_special(path: Path, what: str, error: type = MLIPInputError) -> None:
    """Refuse an existing ``path`` that is not a regular file (a device, a FIFO, a socket, or a symbolic link to
    one): replacing it by rename would turn ``/dev/null`` into a regular file. A symbolic link to a regular file is
    allowed (the rename replaces the link, never its target)."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as err:
        raise error(f"cannot write {what} {path}: {err.strerror or err}") from err
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{what} {path} is a directory")
    if not stat.S_ISREG(st.st_mode):
        kind = "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file"
        raise error(f"{what} {path} is {kind}; mlip writes only regular files (give a file name)")


def check_not_input(output: str | Path, inputs, *, what: str = "output file") -> None:
    """Refuse an ``output`` that is the same file as one of ``inputs`` (after symbolic links and hard links;
    ``None`` entries are skipped): writing it would destroy the input before or while it is read."""
    output = Path(output)
    for source in inputs:
        if source is None:
            continue
        source = Path(source)
        same = False
        with contextlib.suppress(OSError):
            same = os.path.samefile(output, source)
        if same or output.resolve() == source.resolve():
            raise MLIPInputError(
                f"{what} {output} is the input {source}; writing it would destroy the input (choose another name)"
            )


def check_output_file(path: str | Path, *, what: str = "output file", inputs: tuple | list = ()) -> Path:
    """Check that ``path`` can be written (its directory exists and is writable; it is absent or a regular file,
    not a directory or a device; it is none of ``inputs``) before the work that produces it starts."""
    path = Path(path)
    _refuse_special(path, what)
    check_not_input(path, inputs, what=what)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise MLIPInputError(f"cannot write {what} {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise MLIPInputError(f"cannot write {what} {path}: the directory {parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise MLIPInputError(f"cannot write {what} {path}: the file is read-only")
    probe = _tmp_path(
        path
    )  # what the atomic write will do: create a file beside it (catches /proc, read-only mounts)
    try:
        fd = os.open(str(probe), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as err:
        raise MLIPInputError(f"cannot write {what} {path}: {err.strerror or err}") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return path


class FileLock:
    """An exclusive lock on ``resource`` (a file or directory) for the lifetime of one job, held as ``flock`` on
    ``lock_path`` (``with FileLock(lock, out, "mlip-relax run"): ...``).

    The lock file also records the holder's pid, start time and command line for the error message another
    process gets. The kernel drops the lock when the holder exits, even by ``kill -9``, so there are no stale locks
    to clean up. ``acquire`` raises :class:`~mlip.errors.MLIPInputError` at once (it never waits) when another
    process holds it.
    """

    def __init__(self, lock_path: str | Path, resource: str | Path, purpose: str) -> None:
        self.path = Path(lock_path)
        self.resource = Path(resource)
        self.purpose = purpose
        self._fd: int | None = None

    def acquire(self) -> FileLock:
        import fcntl

        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(str(self.path), flags, 0o644)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise MLIPInputError(
                    f"lock file {self.path} is a symbolic link; mlip does not follow it (remove it and rerun)"
                ) from err
            raise MLIPOutputError(f"cannot create lock file {self.path}: {err.strerror or err}") from err
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise MLIPInputError(f"lock file {self.path} is not a regular file (remove it and rerun)")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.read(fd, 4096).decode("utf-8", "replace").strip()
            os.close(fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise MLIPOutputError(f"cannot lock {self.resource}: {err.strerror or err}") from err
            who = f" ({holder})" if holder else ""
            raise MLIPInputError(
                f"{self.resource} is in use by another {self.purpose}{who}; wait for it to finish or use "
                "another one"
            ) from None
        started = datetime.datetime.now().isoformat(timespec="seconds")
        note = f"pid {os.getpid()}, started {started}: {' '.join(sys.argv)[:300]}"
        try:
            _write_note(fd, note.encode())
        except OSError as err:
            os.close(fd)
            raise _output_error(self.path, err, None) from err
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class DirectoryLock(FileLock):
    """:class:`FileLock` on a directory, held on ``DIR/.lock``: one training per run directory, one
    ``mlip-preprocess`` per output directory."""

    def __init__(self, directory: str | Path, purpose: str) -> None:
        super().__init__(Path(directory) / ".lock", directory, purpose)
        self.directory = Path(directory)


def settings_differences(previous: Any, settings: dict, *, ignore: tuple[str, ...] = ()) -> list[str]:
    """The keys of ``settings`` whose value ``previous`` (a run's recorded settings, or anything unreadable)
    does not have, keys in ``ignore`` left out, sorted: what a refusal to continue another run names."""
    before = previous if isinstance(previous, dict) else {}
    keys = (set(settings) | set(before)) - set(ignore)
    return sorted(k for k in keys if not isinstance(previous, dict) or before.get(k) != settings.get(k))


def claim_run_record(
    record: str | Path,
    settings: dict,
    *,
    outputs: tuple | list,
    holder: str,
    advice: str,
    ignore: tuple[str, ...] = (),
) -> bool:
    """The one rule by which a rerun continues an interrupted run, or refuses: ``record`` (a JSON file beside the
    outputs) holds the settings of the run that wrote them.

    * no ``record``: a new run, unless one of ``outputs`` exists (the remains of a run that cannot be checked,
      refused); ``settings`` are written to ``record`` atomically and ``False`` is returned;
    * a ``record`` with the same settings (keys in ``ignore`` left out): ``True``, continue;
    * other settings: :class:`~mlip.errors.MLIPInputError` naming ``holder`` (what holds the other run's work),
      the settings that differ and ``advice`` (how to finish it, or what to delete).
    """
    record = Path(record)
    if not record.is_file():
        found = [Path(p) for p in outputs if Path(p).exists()]
        if found:
            raise MLIPInputError(
                f"found {found[0]} without its {record.name}; delete it or choose another output"
            )
        write_json_atomic(record, settings)
        return False
    try:
        previous = json.loads(record.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        previous = None
    changed = settings_differences(previous, settings, ignore=ignore)
    if changed:
        raise MLIPInputError(f"{holder} holds another run (different {', '.join(changed)}); {advice}")
    return True
