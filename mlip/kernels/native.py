"""Build and load mlip's own compiled CPU kernels (``Backend.NATIVE``).

The C++ sources ship inside the package (``mlip/kernels/native_*.cpp``). They include no PyTorch or Python
headers, so the first use compiles them in about a second with the system's C++ compiler (``$CXX``, else ``c++``)
into a shared library that :mod:`ctypes` loads; tensors are passed as raw pointers (CPU, contiguous, one dtype).

The library is cached in ``$MLIP_KERNEL_CACHE`` (default ``~/.cache/mlip/kernels``) under a name that hashes the
source, the compiler command and the machine, written to a temporary file in the same directory and renamed into
place, so concurrent first uses never load a half-written library. ``-march=native``: a cache directory shared
between different CPUs gets one file per CPU (the CPU's model name is part of the hash).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import torch

_FLAGS = ("-O3", "-march=native", "-fopenmp-simd", "-std=c++17", "-shared", "-fPIC", "-pthread")


__all__ = ["NativeKernelError", "entry", "load_library", "native_available"]


class NativeKernelError(RuntimeError):
    """The native kernels could not be built or loaded (no compiler, a compile error, a foreign library)."""


def _compiler() -> str:
    cxx = os.environ.get("CXX", "c++")
    path = shutil.which(cxx)
    if path is None:
        raise NativeKernelError(
            f"Backend.NATIVE needs a C++ compiler: {cxx!r} is not on PATH (set CXX, or use backend 'torch')"
        )
    return path


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cache_dir() -> Path:
    root = os.environ.get("MLIP_KERNEL_CACHE") or os.path.join(Path.home(), ".cache", "mlip", "kernels")
    return Path(root)


@cache
def load_library(name: str) -> ctypes.CDLL:
    """The compiled ``native_<name>.cpp`` as a :class:`ctypes.CDLL`, built on first use (see the module docstring).

    Raises :class:`NativeKernelError` with the compiler's message when it cannot be built.
    """
    source = Path(__file__).with_name(f"native_{name}.cpp")
    text = source.read_bytes()
    cxx = _compiler()
    key = hashlib.sha256(b"\0".join([text, cxx.encode(), " ".join(_FLAGS).encode(), _cpu_name().encode()]))
    target = _cache_dir() / f"{name}-{key.hexdigest()[:20]}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".so", dir=target.parent)
        os.close(fd)
        try:
            proc = subprocess.run([cxx, *_FLAGS, str(source), "-o", tmp], capture_output=True, text=True)
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
                raise NativeKernelError(f"compiling {source.name} with {cxx} failed: {last}")
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    try:
        return ctypes.CDLL(str(target))
    except OSError as err:
        raise NativeKernelError(f"loading {target} failed: {err}") from err


@cache
def native_available() -> bool:
    """True when the native kernels build and load on this machine (compiled once per process)."""
    try:
        load_library("channelwise")
    except NativeKernelError:
        return False
    return True


def entry(name: str, symbol: str, dtype, argtypes: list) -> ctypes._CFuncPtr:
    """The C function ``<symbol>_f32`` or ``<symbol>_f64`` of library ``name`` for ``dtype``, typed once."""

    suffix = {torch.float32: "f32", torch.float64: "f64"}.get(dtype)
    if suffix is None:
        raise TypeError(f"Backend.NATIVE supports float32 and float64, got {dtype}")
    fn = getattr(load_library(name), f"{symbol}_{suffix}")
    if fn.argtypes is None:
        fn.argtypes = argtypes
        fn.restype = None
    return fn
