"""Backends that execute the kernels' descriptors."""

from __future__ import annotations

import enum


class Backend(str, enum.Enum):
    """How a kernel is executed.

    ``REFERENCE``
        Plain PyTorch written to mirror the formula (per-path loops); float64 ground truth for the tests.
    ``TORCH``
        Our fused PyTorch implementation (batched matrix products, no per-path Python loops): the default
        on CPU, and the one any device runs without extra packages.
    ``CUEQUIVARIANCE``
        cuEquivariance's segmented polynomials, built from *our* coefficients. On GPU with
        ``cuequivariance-ops-torch-cu12`` installed it runs NVIDIA's CUDA kernels; elsewhere its naive method.
    """

    REFERENCE = "reference"
    TORCH = "torch"
    CUEQUIVARIANCE = "cuequivariance"


def cueq_available() -> bool:
    """True when ``cuequivariance_torch`` imports."""
    try:
        import cuequivariance_torch  # noqa: F401
    except Exception:  # pragma: no cover - depends on the environment
        return False
    return True
