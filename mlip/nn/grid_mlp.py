"""Spherical-grid MLP mixing (the Facet self-interaction, Miklaucic et al. 2025), made O(3)-aware.

For node features ``h`` with natural-parity irreps ``0e + 1o + ... + L`` (channel-last ``[N, dim, C]``):

1. lift: ``g = Linear(h)`` to ``U`` channels (an equivariant linear map, per degree);
2. to the sphere: ``f_u(r̂_k) = Σ_lm g_{lm,u} Ŷ_lm(r̂_k)`` on a Gauss–Legendre × uniform grid ``{r̂_k, w_k}``;
3. a small MLP shared by all grid points, ``U -> hidden -> U`` (SiLU), in ``heads`` independent groups of
   channels;
4. back: ``z_{lm,u} = Σ_k w_k Ŷ_lm(r̂_k) MLP(f)_u(r̂_k)``;
5. output: ``Linear([z ; scalars of h])`` to ``irreps_out``.

A pointwise function of ``f`` commutes with rotations of the sphere, so steps 2–4 would be exactly equivariant on
the continuous sphere; on a finite grid the MLP's output is not band-limited and its projection aliases. The
error is measured (``equivariance_error`` in the tests) and falls as the grid is refined. Inversion
``r̂ -> -r̂`` maps the grid onto itself when ``n_α`` is even (Gauss–Legendre nodes are symmetric in cos β), and
natural-parity coefficients transform exactly as ``f(-r̂)``, so the layer is exactly inversion-equivariant. The
public Facet code treats features as SO(3) irreps only. Here pseudo-tensor irreps (e.g. ``1e``), whose
functions would be odd under inversion, do not enter the grid; they pass through the output linear map.

Shapes: ``h [N, irreps_in.dim, C_in]`` -> ``[N, irreps_out.dim, C_out]``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mlip.kernels.gaunt import SphereGrid, orthonormal_sh
from mlip.kernels.irreps import Irreps
from mlip.kernels.linear import EquivariantLinear

__all__ = ["GridMLP"]


class GridMLP(nn.Module):
    """The layer of the module docstring.

    Args:
        irreps_in, irreps_out: per-channel irreps of input and output.
        channels_in, channels_out: ``C_in``, ``C_out``.
        grid_channels: ``U``, channels on the grid (divisible by ``heads``).
        hidden: hidden width of the per-point MLP (per head).
        heads: independent channel groups of the per-point MLP.
        resolution: ``n_β``; the grid has ``n_β x 2 n_β`` points (``n_α`` even, for exact inversion). Default
            ``2L + 4``: the grid then integrates degree ``4L + 7`` exactly, so the projection of the MLP's
            polynomial terms up to ``f^{(3L+7)/L}`` (``f^6`` for ``L = 2``) does not alias. What the MLP adds
            above that degree aliases; the error falls roughly exponentially with ``n_β`` (measured for a trained
            3BPA Facet in ``docs/backbones.md``).
    """

    def __init__(
        self,
        *,
        irreps_in: Irreps,
        irreps_out: Irreps,
        channels_in: int,
        channels_out: int,
        grid_channels: int = 16,
        hidden: int = 32,
        heads: int = 1,
        resolution: int | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        natural = [ir for ir in Irreps(irreps_in) if ir.p == (-1) ** ir.l]
        if not natural:
            raise ValueError(f"irreps_in {irreps_in} has no natural-parity irrep to put on the grid")
        self.lmax = max(ir.l for ir in natural)
        self.irreps_grid = Irreps.spherical_harmonics(self.lmax)
        if grid_channels % heads:
            raise ValueError(f"grid_channels ({grid_channels}) must be divisible by heads ({heads})")
        self.resolution = resolution or 2 * self.lmax + 4
        if self.resolution < math.ceil((2 * self.lmax + 1) / 2):
            raise ValueError(f"resolution {self.resolution} cannot represent degree {self.lmax} on the grid")
        self.heads, self.grid_channels = heads, grid_channels
        self.lift = EquivariantLinear(
            irreps_in, self.irreps_grid, channels_in=channels_in, channels_out=grid_channels, dtype=dtype
        )
        self.grid = SphereGrid(n_beta=self.resolution, n_alpha=2 * self.resolution)
        points, weights = self.grid.points_and_weights()
        sh = orthonormal_sh(self.lmax, points)  # [G, d]
        self.register_buffer("to_grid", sh.T.contiguous().to(dtype), persistent=False)  # [d, G]
        self.register_buffer("from_grid", (weights[:, None] * sh).contiguous().to(dtype), persistent=False)
        u = grid_channels // heads
        self.w1 = nn.Parameter(torch.randn(heads, u, hidden, dtype=dtype))
        self.w2 = nn.Parameter(torch.randn(heads, hidden, u, dtype=dtype) * 0.1)
        # Linear([z ; h]) = Linear_z(z) + Linear_h(h): the input's scalars (and pseudo-tensors) reach the output
        self.output = EquivariantLinear(
            self.irreps_grid, irreps_out, channels_in=grid_channels, channels_out=channels_out, dtype=dtype
        )
        self.skip = EquivariantLinear(
            irreps_in, irreps_out, channels_in=channels_in, channels_out=channels_out, dtype=dtype
        )

    def mlp(self, f: torch.Tensor) -> torch.Tensor:
        """Per-point MLP on ``f [N, G, U]`` (heads act on contiguous channel groups)."""
        n, g, _ = f.shape
        x = f.view(n * g, self.heads, -1).transpose(0, 1)  # [heads, N G, U / heads]
        x = torch.nn.functional.silu(torch.bmm(x, self.w1 / math.sqrt(self.w1.shape[1])))
        x = torch.bmm(x, self.w2 / math.sqrt(self.w2.shape[1]))
        return x.transpose(0, 1).reshape(n, g, self.grid_channels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        g = self.lift(h)  # [N, d, U]
        f = torch.matmul(self.to_grid.to(h.dtype).T, g)  # [N, G, U]
        z = torch.matmul(self.from_grid.to(h.dtype).T, self.mlp(f))  # [N, d, U]
        return self.output(z) + self.skip(h)
