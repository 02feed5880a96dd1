"""CP-factored tensor product (Tensor Decomposition Networks, Lin et al., NeurIPS 2025, arXiv 2507.01131).

The dense coupling tensor over *all* triangle-valid ``(l1, l2, l3) <= L`` (no parity filter, no path
normalisation), ``M[i, j, k] = C^{l1 l2 l3}_{m1 m2 m3}`` block by block, is approximated by a rank-``R`` CP
decomposition ``M ≈ Σ_r A[i, r] B[j, r] C[k, r]``, and the channel-wise product with one shared weight per channel
(path-weight sharing) becomes

.. math::  z_{k u} = \\sum_r C_{k r} \\Big(\\sum_i A_{i r} x_{i u}\\Big)\\Big(\\sum_j B_{j r} y_{j u}\\Big)

at cost ``O(B C d R)`` instead of ``O(B C d^3)``; ``d = (L+1)^2``. Factors come from CP-ALS with a fixed seed
(:func:`cp_factors`), are cached on disk, and carry their relative fitting error ``‖M - M̂‖ / ‖M‖``.
The equivariance error is bounded by the fit: ``‖f(Dx, Dy) - D f(x, y)‖ <= 2 ‖M - M̂‖_op ‖x‖ ‖y‖``.

Shapes: ``x [B, d, C]``, ``y [B, d, C]`` -> ``[B, d, C]``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from mlip.fileio import torch_save_atomic
from mlip.kernels.cg import clebsch_gordan

__all__ = [
    "CPFactors",
    "default_rank",
    "fit_cp",
    "cp_factors",
    "exact_factors",
    "exact_cp_factors",
    "CPTensorProduct",
    "dense_product",
    "coupling_tensor",
]


@lru_cache(maxsize=16)
def coupling_tensor(lmax: int) -> torch.Tensor:
    """``M [d, d, d]`` (float64): every triangle-valid CG block up to ``lmax``."""
    d = (lmax + 1) ** 2
    m = torch.zeros(d, d, d, dtype=torch.float64)
    for l1 in range(lmax + 1):
        for l2 in range(lmax + 1):
            for l3 in range(abs(l1 - l2), min(l1 + l2, lmax) + 1):
                m[l1 * l1 : (l1 + 1) ** 2, l2 * l2 : (l2 + 1) ** 2, l3 * l3 : (l3 + 1) ** 2] = clebsch_gordan(
                    l1, l2, l3
                )
    return m


@dataclass(frozen=True)
class CPFactors:
    """``A, B, C [d, R]`` and the relative Frobenius error of the fit."""

    A: torch.Tensor
    B: torch.Tensor
    C: torch.Tensor
    relative_error: float


def default_rank(lmax: int) -> int:
    """TDN's "quadratic" schedule, ``R = 7 L^2`` (at least 1)."""
    return max(1, 7 * lmax * lmax)


def _khatri_rao(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (u[:, None, :] * v[None, :, :]).reshape(-1, u.shape[1])


def _als(m: torch.Tensor, rank: int, iterations: int, seed: int) -> CPFactors:
    gen = torch.Generator().manual_seed(seed)
    d1, d2, d3 = m.shape
    a, b, c = (torch.randn(d, rank, dtype=torch.float64, generator=gen) for d in (d1, d2, d3))
    m1 = m.reshape(d1, d2 * d3)  # [i, (j k)]
    m2 = m.permute(1, 0, 2).reshape(d2, d1 * d3)  # [j, (i k)]
    m3 = m.permute(2, 0, 1).reshape(d3, d1 * d2)  # [k, (i j)]
    ridge = 1e-10 * torch.eye(rank, dtype=torch.float64)
    for _ in range(iterations):
        a = m1 @ _khatri_rao(b, c) @ torch.linalg.pinv((b.T @ b) * (c.T @ c) + ridge)
        b = m2 @ _khatri_rao(a, c) @ torch.linalg.pinv((a.T @ a) * (c.T @ c) + ridge)
        c = m3 @ _khatri_rao(a, b) @ torch.linalg.pinv((a.T @ a) * (b.T @ b) + ridge)
    approx = torch.einsum("ir,jr,kr->ijk", a, b, c)
    return CPFactors(a, b, c, float((approx - m).norm() / m.norm()))


def _cache_dir() -> Path:
    return Path(os.environ.get("MLIP_CACHE", Path.home() / ".cache" / "mlip"))


def fit_cp(m: torch.Tensor, rank: int, *, iterations: int = 300, seed: int = 0) -> CPFactors:
    """Rank-``rank`` CP factors of any float64 tensor ``m [d1, d2, d3]`` by seeded ALS, cached in
    ``$MLIP_CACHE`` (default ``~/.cache/mlip``) under a hash of ``m`` and every argument, so the same call
    always returns the same factors. When ``rank`` reaches the number of non-zero ``(i, j)`` fibres the exact
    decomposition (:func:`exact_factors`) is returned instead (zero error)."""
    m = m.to(torch.float64).contiguous()
    pairs = int((m.abs().sum(-1) > 0).sum())
    if rank >= pairs:
        return exact_factors(m)
    digest = hashlib.sha256(m.numpy().tobytes() + repr(tuple(m.shape)).encode()).hexdigest()[:16]
    path = _cache_dir() / f"cp_{digest}_rank{rank}_it{iterations}_seed{seed}.pt"
    if path.is_file():
        data = torch.load(path, weights_only=True)
        return CPFactors(data["A"], data["B"], data["C"], float(data["relative_error"]))
    factors = _als(m, rank, iterations, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"A": factors.A, "B": factors.B, "C": factors.C, "relative_error": factors.relative_error}
    torch_save_atomic(data, path)
    return factors


def cp_factors(lmax: int, rank: int | None = None, *, iterations: int = 300, seed: int = 0) -> CPFactors:
    """Rank-``rank`` (default ``7 L^2``) CP factors of :func:`coupling_tensor` by :func:`fit_cp`."""
    rank = default_rank(lmax) if rank is None else rank
    return fit_cp(coupling_tensor(lmax), rank, iterations=iterations, seed=seed)


def exact_factors(m: torch.Tensor) -> CPFactors:
    """The analytic decomposition of ``m [d1, d2, d3]``: one term per non-zero ``(i, j)`` fibre,
    ``A = e_i``, ``B = e_j``, ``C = m[i, j, :]`` (exact)."""
    m = m.to(torch.float64)
    pairs = (m.abs().sum(-1) > 0).nonzero()
    eye1 = torch.eye(m.shape[0], dtype=torch.float64)
    eye2 = torch.eye(m.shape[1], dtype=torch.float64)
    return CPFactors(
        eye1[:, pairs[:, 0]], eye2[:, pairs[:, 1]], m[pairs[:, 0], pairs[:, 1]].T.contiguous(), 0.0
    )


def exact_cp_factors(lmax: int) -> CPFactors:
    """:func:`exact_factors` of :func:`coupling_tensor` (used to test the CP product against the dense one)."""
    return exact_factors(coupling_tensor(lmax))


class CPTensorProduct(nn.Module):
    """The product of the module docstring with fixed (frozen) factors."""

    def __init__(self, lmax: int, factors: CPFactors | None = None) -> None:
        super().__init__()
        self.lmax = lmax
        factors = factors or cp_factors(lmax)
        self.relative_error = factors.relative_error
        self.register_buffer("A", factors.A.clone(), persistent=False)
        self.register_buffer("B", factors.B.clone(), persistent=False)
        self.register_buffer("C", factors.C.clone(), persistent=False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        d = (self.lmax + 1) ** 2
        if x.dim() != 3 or x.shape[1] != d or y.shape != x.shape:
            raise ValueError(f"x and y must both be [B, {d}, C], got {tuple(x.shape)} and {tuple(y.shape)}")
        ax = torch.einsum("ir,bic->brc", self.A.to(x.dtype), x)
        by = torch.einsum("jr,bjc->brc", self.B.to(y.dtype), y)
        return torch.einsum("kr,brc->bkc", self.C.to(x.dtype), ax * by)


def dense_product(x: torch.Tensor, y: torch.Tensor, lmax: int) -> torch.Tensor:
    """``z = M : x ⊗ y`` with the exact coupling tensor (the reference)."""
    return torch.einsum("ijk,bic,bjc->bkc", coupling_tensor(lmax).to(x.dtype), x, y)
