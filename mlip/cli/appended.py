"""Extended-XYZ files that long jobs append to as they go (``mlip-relax``'s partial output, ``mlip-md``'s
trajectory): one frame per ``write`` system call and an ``fsync`` (:func:`mlip.fileio.append_bytes`), so a kill leaves
whole frames; a reader drops an incomplete last frame, which only a power loss could leave."""

from __future__ import annotations

import io
from pathlib import Path

import ase
import ase.io

from mlip.fileio import append_bytes

__all__ = ["append_frame", "read_complete_frames"]


def read_complete_frames(path: str | Path) -> list[ase.Atoms]:
    """The complete frames of an appended extended-XYZ file (``[]`` when it does not exist); a torn last frame is
    dropped."""
    path = Path(path)
    if not path.is_file():
        return []
    frames = []
    try:
        for atoms in ase.io.iread(str(path), format="extxyz"):
            frames.append(atoms)
    except Exception:  # a torn tail: keep the complete frames before it
        pass
    return frames


def append_frame(path: str | Path, atoms: ase.Atoms) -> None:
    """Append ``atoms`` to ``path`` as one extended-XYZ frame with a single ``write`` and an ``fsync``."""
    buf = io.StringIO()
    ase.io.write(buf, atoms, format="extxyz")
    append_bytes(path, buf.getvalue().encode())
