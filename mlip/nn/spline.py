"""Cubic B-spline radial functions (the Facet radial network, Miklaucic et al. 2025): a fixed basis of ``K``
uniform cubic B-splines on ``[0, r_max]`` and a learnable coefficient matrix, times a smooth envelope.

With ``S = K - 3`` segments of width ``h = r_max / S``, segment index ``i = ⌊r / h⌋`` and local coordinate
``t = r / h - i ∈ [0, 1)``, exactly four basis functions are non-zero, ``B_i .. B_{i+3}``:

.. math::  β_0 = \\tfrac{(1-t)^3}{6},\\; β_1 = \\tfrac{3t^3 - 6t^2 + 4}{6},\\;
           β_2 = \\tfrac{-3t^3 + 3t^2 + 3t + 1}{6},\\; β_3 = \\tfrac{t^3}{6}
           \\qquad R(r) = u(r) \\sum_{j=0}^{3} β_j(t)\\, W_{i+j, :}

``W [K, num_out]`` are the learnable coefficients and ``u`` the polynomial envelope of
:class:`~mlip.nn.radial.PolynomialCutoff` (``p >= 2``), so ``R(r_max) = R'(r_max) = 0``. The B-splines are
``C^2`` at every knot, and so is ``R`` inside the cutoff (de Boor, *A Practical Guide to Splines*, ch. IX).

Evaluation computes the four non-zero values per edge and scatters them into the row of a banded basis matrix
``B [E, K]``; ``R = u · (B W)`` is then one GEMM, whose backward ``Bᵀ ∂R`` is another. No dense layer and no
nonlinearity: for the ``K <= 32`` used here this is cheaper than gathering four rows of ``W`` per edge, whose
backward is a slow scatter-add into ``W`` (``benchmarks/spline_speed.py``: forward and double backward 4.4-7.7x slower
for 4,470 edges and 352 outputs on one CPU core).

Shapes: ``r [E]`` (Å) -> ``[E, num_out]``.
"""

from __future__ import annotations

import torch
from torch import nn

from mlip.nn.radial import PolynomialCutoff

__all__ = ["cubic_bspline_weights", "SplineRadial"]


def cubic_bspline_weights(t: torch.Tensor) -> torch.Tensor:
    """The four non-zero uniform cubic B-spline values at local coordinates ``t [E]`` -> ``[E, 4]``."""
    t2, t3 = t * t, t * t * t
    return torch.stack(
        [(1 - t) ** 3 / 6, (3 * t3 - 6 * t2 + 4) / 6, (-3 * t3 + 3 * t2 + 3 * t + 1) / 6, t3 / 6], dim=-1
    )


class SplineRadial(nn.Module):
    """The radial function of the module docstring.

    Args:
        r_max: cutoff (Å).
        num_out: outputs per edge (the tensor-product weights).
        num_knots: ``K`` basis functions (at least 4; Facet uses 16–32).
        envelope_p: exponent ``p`` of the polynomial envelope (``>= 2`` for a zero slope at ``r_max``).
    """

    def __init__(
        self, *, r_max: float, num_out: int, num_knots: int = 16, envelope_p: int = 5, dtype=torch.float32
    ) -> None:
        super().__init__()
        if num_knots < 4:
            raise ValueError(f"num_knots must be >= 4 (one cubic segment), got {num_knots}")
        if envelope_p < 2:
            raise ValueError(f"envelope_p must be >= 2 for R'(r_max) = 0, got {envelope_p}")
        if not r_max > 0:
            raise ValueError(f"r_max must be > 0, got {r_max}")
        self.r_max = float(r_max)
        self.num_knots = num_knots
        self.segments = num_knots - 3
        self.h = self.r_max / self.segments
        self.envelope = PolynomialCutoff(r_max=r_max, p=envelope_p)
        self.coefficients = nn.Parameter(torch.randn(num_knots, num_out, dtype=dtype))

    def basis(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices ``[E, 4]`` of the non-zero basis functions and their values ``[E, 4]`` (no envelope)."""
        x = (r / self.h).clamp(0.0, float(self.segments))
        i = torch.clamp(torch.floor(x.detach()), max=self.segments - 1).to(torch.long)
        t = x - i.to(x.dtype)
        return i.unsqueeze(-1) + torch.arange(4, device=r.device), cubic_bspline_weights(t)

    def design_matrix(self, r: torch.Tensor) -> torch.Tensor:
        """``A = u(r) B(r)`` ``[E, K]`` (banded: four non-zeros per row), so that ``R = A W``."""
        if r.dim() != 1:
            raise ValueError(f"r must be [E], got {tuple(r.shape)}")
        idx, beta = self.basis(r)
        dense = torch.zeros(r.shape[0], self.num_knots, dtype=beta.dtype, device=r.device)
        return dense.scatter(1, idx, beta) * self.envelope(r).unsqueeze(-1)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return self.design_matrix(r) @ self.coefficients.to(r.dtype)

    @torch.no_grad()
    def fit_(self, r: torch.Tensor, target: torch.Tensor) -> float:
        """Set ``W`` to the least-squares fit ``argmin ‖A(r) W - target‖`` of samples ``target [E, num_out]`` at
        distances ``r [E]`` (Å), e.g. a trained MLP radial function evaluated on a dense grid, and return the
        relative error ``max |A W - target| / max |target|``. The target must vanish at ``r_max`` like the
        envelope for the fit to be exact in the limit of many knots."""
        if target.shape != (r.shape[0], self.coefficients.shape[1]):
            raise ValueError(
                f"target must be [E, num_out] = [{r.shape[0]}, {self.coefficients.shape[1]}], "
                f"got {tuple(target.shape)}"
            )
        a = self.design_matrix(r.to(torch.float64))
        solution = torch.linalg.lstsq(a, target.to(torch.float64), driver="gelsd").solution
        self.coefficients.copy_(solution.to(self.coefficients.dtype))
        error = (a @ solution - target.to(torch.float64)).abs().max() / target.abs().max()
        return float(error)
