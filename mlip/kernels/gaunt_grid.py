"""Gaunt tensor product on a spherical grid (Xie, Daigavane, Kotak, Smidt, ICML 2025), and its reference.

Channel-wise (``uuu``) product of two functions on the sphere given by their orthonormal spherical-harmonic
coefficients, projected back onto degrees ``<= lmax_out``:

.. math::  z_{l_3 m_3, c} = \\sum G^{l_1 l_2 l_3}_{m_1 m_2 m_3}\\, x_{l_1 m_1, c}\\, y_{l_2 m_2, c}
           = \\int f_x f_y Ŷ_{l_3 m_3}\\, dΩ, \\qquad f_x = \\sum x_{lm} Ŷ_{lm}

Grid route: ``f_x``, ``f_y`` are sampled on a :class:`~mlip.kernels.gaunt.SphereGrid`, multiplied pointwise and
integrated by quadrature: ``O(B C G (d_1 + d_2 + d_out))`` with ``G = n_β n_α ~ 2 L²`` grid points, against
``O(B C L^6)`` for the CG sum. Only paths with even ``l1 + l2 + l3`` exist (inputs of natural parity
``(-1)^l`` give outputs of natural parity).

Shapes: ``x [B, (lmax1+1)^2, C]``, ``y [B, (lmax2+1)^2, C]`` -> ``[B, (lmax_out+1)^2, C]``.
"""

from __future__ import annotations

import torch
from torch import nn

from mlip.kernels.cg import clebsch_gordan
from mlip.kernels.gaunt import SphereGrid, degree_index, gaunt_alpha, orthonormal_sh

__all__ = ["gaunt_product_reference", "GauntGridTP", "DegreeWeights", "check_sphere_inputs"]


def check_sphere_inputs(x: torch.Tensor, y: torch.Tensor, lmax1: int, lmax2: int) -> None:
    """Refuse inputs of the sphere-function products that are not ``x [B, (lmax1+1)^2, C]`` and
    ``y [B, (lmax2+1)^2, C]`` (a one-line ``ValueError`` naming the expected shape)."""
    if x.dim() != 3 or x.shape[1] != (lmax1 + 1) ** 2:
        raise ValueError(f"x must be [B, {(lmax1 + 1) ** 2}, C] for lmax1={lmax1}, got {tuple(x.shape)}")
    if y.shape != (x.shape[0], (lmax2 + 1) ** 2, x.shape[2]):
        raise ValueError(
            f"y must be [B={x.shape[0]}, {(lmax2 + 1) ** 2}, C={x.shape[2]}], got {tuple(y.shape)}"
        )


def gaunt_product_reference(
    x: torch.Tensor, y: torch.Tensor, lmax1: int, lmax2: int, lmax_out: int
) -> torch.Tensor:
    """The CG channel-wise product restricted to even paths with Gaunt path weights ``α(l1, l2, l3)``,
    path by path (slow; the float64 ground truth)."""
    check_sphere_inputs(x, y, lmax1, lmax2)
    out = x.new_zeros(x.shape[0], (lmax_out + 1) ** 2, x.shape[2])
    for l1 in range(lmax1 + 1):
        for l2 in range(lmax2 + 1):
            for l3 in range(abs(l1 - l2), min(l1 + l2, lmax_out) + 1):
                a = gaunt_alpha(l1, l2, l3)
                if a == 0.0:
                    continue
                c = a * clebsch_gordan(l1, l2, l3, dtype=x.dtype)
                z = torch.einsum(
                    "ijk,bic,bjc->bkc", c, x[:, l1 * l1 : (l1 + 1) ** 2], y[:, l2 * l2 : (l2 + 1) ** 2]
                )
                out[:, l3 * l3 : (l3 + 1) ** 2] += z
    return out


class GauntGridTP(nn.Module):
    """The grid route of the module docstring (no learnable weights; see
    :class:`~mlip.kernels.gaunt_grid.DegreeWeights` for per-degree weights).

    Args:
        lmax1, lmax2, lmax_out: degrees of the inputs and of the output.
        grid: the sphere grid; default the smallest exact one, ``SphereGrid.exact_for(lmax1 + lmax2 + lmax_out)``.
            A coarser grid aliases (the product is then not the Gaunt product; tests guard this).
    """

    def __init__(self, lmax1: int, lmax2: int, lmax_out: int, *, grid: SphereGrid | None = None) -> None:
        super().__init__()
        self.lmax1, self.lmax2, self.lmax_out = lmax1, lmax2, lmax_out
        self.grid = grid or SphereGrid.exact_for(lmax1 + lmax2 + lmax_out)
        points, weights = self.grid.points_and_weights()
        y = orthonormal_sh(max(lmax1, lmax2, lmax_out), points)
        self.register_buffer("to_grid1", y[:, : (lmax1 + 1) ** 2].T.contiguous(), persistent=False)  # [d1, G]
        self.register_buffer("to_grid2", y[:, : (lmax2 + 1) ** 2].T.contiguous(), persistent=False)  # [d2, G]
        project = weights[:, None] * y[:, : (lmax_out + 1) ** 2]
        self.register_buffer("from_grid", project.contiguous(), persistent=False)  # [G, d_out]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_sphere_inputs(x, y, self.lmax1, self.lmax2)
        fx = torch.einsum("dg,bdc->bgc", self.to_grid1.to(x.dtype), x)
        fy = torch.einsum("dg,bdc->bgc", self.to_grid2.to(y.dtype), y)
        return torch.einsum("gd,bgc->bdc", self.from_grid.to(x.dtype), fx * fy)


class DegreeWeights(nn.Module):
    """Learnable per-degree, per-channel scale ``x_{lm,c} -> w_{l,c} x_{lm,c}`` (the Gaunt products' weights).

    Shapes: ``[B, (lmax+1)^2, C]`` -> same.
    """

    def __init__(self, lmax: int, channels: int, *, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(lmax + 1, channels, dtype=dtype))
        self.register_buffer("degree_of_component", degree_index(lmax), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.to(x.dtype).index_select(0, self.degree_of_component)
