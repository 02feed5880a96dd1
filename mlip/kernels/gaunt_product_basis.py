"""Many-body product basis from repeated Gaunt products: an alternative to MACE's symmetric contraction.

Following Luo, Chen, Krishnapriyan (ICLR 2024, sec. 4.3), the powers of the atomic basis ``A`` are built by
chaining Gaunt products with per-degree, per-element, per-channel weights, each truncated to the degrees of
``A``:

.. math::  A^{(1)} = A, \\qquad
           A^{(ν)}_{n} = \\mathrm{Gaunt}\\big(U^{(ν)}_{z_n} ⊙ A^{(ν-1)}_n,\\ V^{(ν)}_{z_n} ⊙ A_n\\big)_{l \\le L_A}, \\qquad
           B_n = \\sum_{ν=1}^{ν_{max}} W^{(ν)}_{z_n} ⊙ A^{(ν)}_n \\big|_{l \\le L_{out}}

``(w ⊙ a)_{lm,c} = w_{lc}\\, a_{lm,c}``. Each Gaunt product is the grid (default) or Fourier route of
:mod:`mlip.kernels.gaunt_grid` / :mod:`mlip.kernels.gaunt_fft`, exact, so ``B`` is O(3)-equivariant. Cost per
node ``O(ν_max C L^3)`` against the symmetric contraction's ``O(C · #monomials)``; the price is expressivity:
only even couplings, and weights per degree instead of per coupling path.

Shapes: ``A [N, (L_A+1)^2, C]``, element indices ``[N]`` -> ``[N, (L_out+1)^2, C]``.
"""

from __future__ import annotations

import torch
from torch import nn

from mlip.kernels.gaunt import degree_index
from mlip.kernels.gaunt_fft import GauntFFTTP
from mlip.kernels.gaunt_grid import GauntGridTP

__all__ = ["GauntProductBasis"]


class GauntProductBasis(nn.Module):
    """The product basis of the module docstring.

    Args:
        lmax_in: ``L_A``, degrees of ``A`` (natural parity ``0e+1o+...``).
        lmax_out: ``L_out <= L_A``.
        correlation: ``ν_max`` in ``1..4``.
        channels: ``C``.
        num_elements: number of element indices.
        route: ``"grid"`` or ``"fft"``.
    """

    def __init__(
        self,
        *,
        lmax_in: int,
        lmax_out: int,
        correlation: int,
        channels: int,
        num_elements: int,
        route: str = "grid",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if not 0 <= lmax_out <= lmax_in:
            raise ValueError(f"need 0 <= lmax_out <= lmax_in, got lmax_out={lmax_out}, lmax_in={lmax_in}")
        if not 1 <= correlation <= 4:
            raise ValueError(f"correlation must be in 1..4, got {correlation}")
        if route not in ("grid", "fft"):
            raise ValueError(f"route must be 'grid' or 'fft', got {route!r}")
        self.lmax_in, self.lmax_out, self.correlation = lmax_in, lmax_out, correlation
        tp = GauntGridTP if route == "grid" else GauntFFTTP
        self.products = nn.ModuleList(tp(lmax_in, lmax_in, lmax_in) for _ in range(correlation - 1))
        shape_in = (correlation - 1, num_elements, lmax_in + 1, channels)
        self.u = nn.Parameter(torch.ones(shape_in, dtype=dtype))
        self.v = nn.Parameter(torch.ones(shape_in, dtype=dtype))
        # output weights ~ N(0, 1) / ν_max, so that B starts at the scale of A
        w = torch.randn(correlation, num_elements, lmax_out + 1, channels, dtype=dtype) / correlation
        self.w = nn.Parameter(w)
        self.register_buffer("deg_in", degree_index(lmax_in), persistent=False)
        self.register_buffer("deg_out", degree_index(lmax_out), persistent=False)

    def _per_node(self, weight: torch.Tensor, species: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
        """``weight [num_elements, L+1, C]`` -> ``[N, (L+1)^2, C]`` for the nodes' elements."""
        return weight.index_select(0, species).index_select(1, degrees)

    def forward(self, a: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        d_in, d_out = (self.lmax_in + 1) ** 2, (self.lmax_out + 1) ** 2
        if a.dim() != 3 or a.shape[1] != d_in or a.shape[2] != self.w.shape[-1]:
            raise ValueError(f"A must be [N, {d_in}, {self.w.shape[-1]}], got {tuple(a.shape)}")
        if species.shape != (a.shape[0],):
            raise ValueError(f"species must be [N={a.shape[0]}], got {tuple(species.shape)}")
        power = a
        out = self._per_node(self.w[0], species, self.deg_out) * a[:, :d_out]
        for k, product in enumerate(self.products):
            left = self._per_node(self.u[k], species, self.deg_in) * power
            right = self._per_node(self.v[k], species, self.deg_in) * a
            power = product(left, right)
            out = out + self._per_node(self.w[k + 1], species, self.deg_out) * power[:, :d_out]
        return out
