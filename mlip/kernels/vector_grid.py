"""Vector (cross-product) spherical-grid product: the antisymmetric paths the Gaunt product cannot make.

Following "The Price of Freedom" (Xie et al., ICML 2025), the inputs become tangent vector fields, their
surface gradients ``∇_S f_x`` and ``∇_S f_y`` (``f_x = Σ x_lm Ŷ_lm``), and the output is the projection of the
pointwise cross product onto the normal:

.. math::  z_{l_3 m_3, c} = \\int \\big(∇_S f_x × ∇_S f_y\\big) \\cdot \\hat r \\; Ŷ_{l_3 m_3}\\, dΩ

This is bilinear, rotation-equivariant and *odd* under inversion: only paths with odd ``l1 + l2 + l3``
survive (e.g. ``1o x 1o -> 1e``, the cross product), exactly those the scalar Gaunt product lacks; the output
degree ``l3`` carries parity ``(-1)^{l3 + 1}`` for natural-parity inputs.

Shapes: ``x [B, (lmax1+1)^2, C]``, ``y [B, (lmax2+1)^2, C]`` -> ``[B, (lmax_out+1)^2, C]``.
"""

from __future__ import annotations

import torch
from torch import nn

from mlip.kernels.gaunt import SphereGrid, orthonormal_sh
from mlip.kernels.gaunt_grid import check_sphere_inputs

__all__ = ["tangent_gradients", "VectorGridTP"]


def _surface_gradients(lmax: int, points: torch.Tensor) -> torch.Tensor:
    """``∇_S Ŷ`` at unit ``points``: ``[G, (lmax+1)^2, 3]``. The harmonics depend on the direction only, so the
    gradient with respect to the (unnormalised) point is already tangent to the sphere at ``|r| = 1``."""
    p = points.clone().requires_grad_(True)
    y = orthonormal_sh(lmax, p)
    rows = [torch.zeros_like(points)]  # Ŷ_00 is constant
    for k in range(1, y.shape[1]):
        rows.append(torch.autograd.grad(y[:, k].sum(), p, retain_graph=True)[0])
    return torch.stack(rows, dim=1).detach()


def tangent_gradients(lmax: int, points: torch.Tensor) -> torch.Tensor:
    """``∇_S Ŷ`` in the local frame ``(e_θ, e_φ)`` at each point: ``[G, (lmax+1)^2, 2]``.

    ``e_θ × e_φ = r̂``, so ``(∇f × ∇g) · r̂ = ∂_θ f ∂_φ g - ∂_φ f ∂_θ g`` in these components: two products per
    point instead of a 3D cross product. Needs points off the poles (true for Gauss–Legendre nodes).
    """
    x, y, z = points.unbind(-1)
    rho = torch.sqrt(x * x + y * y)
    if bool((rho < 1e-12).any()):
        raise ValueError("tangent frames are undefined at the poles")
    e_theta = torch.stack([z * x / rho, z * y / rho, -rho], -1)
    e_phi = torch.stack([-y / rho, x / rho, torch.zeros_like(x)], -1)
    frame = torch.stack([e_theta, e_phi], -1)  # [G, 3, 2]
    return torch.einsum("gdk,gkt->gdt", _surface_gradients(lmax, points), frame)


class VectorGridTP(nn.Module):
    """The product of the module docstring on an exact grid (default ``SphereGrid.exact_for(l1 + l2 + lo + 2)``)."""

    def __init__(self, lmax1: int, lmax2: int, lmax_out: int, *, grid: SphereGrid | None = None) -> None:
        super().__init__()
        self.lmax1, self.lmax2, self.lmax_out = lmax1, lmax2, lmax_out
        self.grid = grid or SphereGrid.exact_for(lmax1 + lmax2 + lmax_out + 2)
        points, weights = self.grid.points_and_weights()
        self.register_buffer("grad1", tangent_gradients(lmax1, points), persistent=False)  # [G, d1, 2]
        self.register_buffer("grad2", tangent_gradients(lmax2, points), persistent=False)
        project = weights[:, None] * orthonormal_sh(lmax_out, points)
        self.register_buffer("from_grid", project, persistent=False)  # [G, d_out]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_sphere_inputs(x, y, self.lmax1, self.lmax2)
        vx = torch.einsum("gdk,bdc->bkgc", self.grad1.to(x.dtype), x)  # [B, 2, G, C]
        vy = torch.einsum("gdk,bdc->bkgc", self.grad2.to(y.dtype), y)
        pseudo = vx[:, 0] * vy[:, 1] - vx[:, 1] * vy[:, 0]  # (∇f_x × ∇f_y)·r̂, [B, G, C]
        return torch.einsum("gd,bgc->bdc", self.from_grid.to(x.dtype), pseudo)
