"""Backends that execute the kernels' descriptors."""

from __future__ import annotations

import enum
from functools import cache

import torch

from mlip.kernels.native import native_available

__all__ = ["Backend", "auto_choice", "resolve", "cueq_available", "cueq_cuda_available"]


class Backend(str, enum.Enum):
    """How a kernel is executed.

    ``REFERENCE``
        Plain PyTorch written to mirror the formula (per-path loops); float64 ground truth for the tests.
    ``TORCH``
        Our fused PyTorch implementation (batched matrix products, no per-path Python loops): the default
        on CPU, and the one any device runs without extra packages.
    ``CUEQUIVARIANCE``
        cuEquivariance's segmented polynomials, built from *our* coefficients. On GPU with
        ``cuequivariance-ops-torch-cu12`` (or ``-cu13``) installed it runs NVIDIA's CUDA kernels; elsewhere its
        naive method.
    ``NATIVE``
        mlip's own compiled CPU kernels (:mod:`mlip.kernels.native`: C++ built on first use with the system
        compiler, loaded with ctypes): fused gather, product and scatter, gradients of every order. CPU only;
        kernels without a native implementation run their ``TORCH`` backend.
    ``AUTO``
        Decided per call from the input's device: ``CUEQUIVARIANCE`` for CUDA tensors when cuEquivariance's CUDA
        kernels import (:func:`cueq_cuda_available`); ``NATIVE`` for CPU tensors when the native kernels build
        (:func:`mlip.kernels.native.native_available`); ``TORCH`` otherwise. The default of the models.
    """

    REFERENCE = "reference"
    TORCH = "torch"
    CUEQUIVARIANCE = "cuequivariance"
    NATIVE = "native"
    AUTO = "auto"


def auto_choice(device: torch.device, *, native: bool, cueq: bool) -> Backend:
    """``AUTO``'s rule on ``device`` given which backends are at hand: ``CUEQUIVARIANCE`` on CUDA when ``cueq``,
    ``NATIVE`` on the CPU when ``native``, else ``TORCH``. Modules call it with what they built (no environment
    probing in ``forward``); :func:`resolve` with what this environment offers."""
    if device.type == "cuda" and cueq:
        return Backend.CUEQUIVARIANCE
    if device.type == "cpu" and native:
        return Backend.NATIVE
    return Backend.TORCH


def resolve(backend: Backend, device: torch.device) -> Backend:
    """The concrete backend ``AUTO`` stands for on ``device`` (other backends unchanged)."""
    if Backend(backend) is not Backend.AUTO:
        return Backend(backend)
    native = device.type == "cpu" and native_available()
    return auto_choice(device, native=native, cueq=device.type == "cuda" and cueq_cuda_available())


def cueq_available() -> bool:
    """True when ``cuequivariance_torch`` imports."""
    try:
        import cuequivariance_torch  # noqa: F401
    except Exception:  # pragma: no cover - depends on the environment
        return False
    return True


@cache
def cueq_cuda_available() -> bool:
    """True when cuEquivariance and its CUDA kernels (``cuequivariance_ops_torch``) import and CUDA is up."""
    if not (cueq_available() and torch.cuda.is_available()):
        return False
    try:
        import cuequivariance_ops_torch  # noqa: F401
    except Exception:  # pragma: no cover - depends on the environment
        return False
    return True
