"""Edge (message) forms of the Gaunt, vector-grid and CP products: gather, weight by degree, multiply, scatter.

For an edge ``e = (j -> i)`` with weights ``w_e = (u_{e,l1,c}, v_{e,l2,c})`` (the radial network's output)

.. math::  x'_{e, l_1 m_1, c} = u_{e l_1 c}\\, x_{j, l_1 m_1, c}, \\qquad
           y'_{e, l_2 m_2, c} = v_{e l_2 c}\\, y_{e, l_2 m_2}, \\qquad
           m_i = \\sum_{e \\to i} \\mathrm{P}(x'_e, y'_e)

with ``P`` the Gaunt product (grid or Fourier route), Gaunt plus vector product, or the CP-factored product.
Each ``P`` is bilinear and ends with a fixed linear map (projection back to spherical harmonics, or the CP
factor ``C``), so the sum over edges is taken *before* that map: per edge the cost is the two input transforms
and one pointwise product, and the output transform runs once per receiving node.

Shapes: ``x [N, (L1+1)^2, C]``, ``y [E, (L2+1)^2]``, ``w [E, (L1+1) + (L2+1), C]``, ``senders, receivers [E]``
-> ``[num_receivers, irreps_out.dim, C]`` (see :class:`~mlip.kernels.product.EdgeProductDescriptor`).
"""

from __future__ import annotations

import torch
from torch import nn

from mlip.kernels.cp import CPFactors, default_rank, fit_cp
from mlip.kernels.gaunt import SphereGrid, degree_index, orthonormal_sh
from mlip.kernels.gaunt_fft import (
    half_spectrum_layout,
    half_spectrum_projection,
    interleave,
    samples,
    sh_to_fourier,
    spectrum_to_sh,
)
from mlip.kernels.product_descriptor import EdgeProductDescriptor, ProductKind
from mlip.kernels.vector_grid import tangent_gradients

__all__ = ["degree_blocks", "GauntEdgeProduct", "CPEdgeProduct", "cp_coupling"]


def degree_blocks(basis: torch.Tensor, lmax: int) -> torch.Tensor:
    """``basis [(lmax+1)^2, K]`` -> ``[(lmax+1)^2, (lmax+1) * K]`` with row ``lm`` placed in column block ``l``:
    ``y @ blocks`` gives, per degree, ``Σ_m y_lm basis_lm`` (so per-degree weights apply after the transform)."""
    d, k = basis.shape
    out = basis.new_zeros(d, lmax + 1, k)
    out[torch.arange(d), degree_index(lmax)] = basis
    return out.reshape(d, (lmax + 1) * k)


def _scatter(t: torch.Tensor, receivers: torch.Tensor, num_receivers: int) -> torch.Tensor:
    return t.new_zeros(num_receivers, *t.shape[1:]).index_add_(0, receivers, t)


class _DegreeWeighted(nn.Module):
    """Shared input handling: gather ``x``, split ``w`` into ``u`` (x degrees) and ``v`` (y degrees)."""

    def __init__(self, descriptor: EdgeProductDescriptor) -> None:
        super().__init__()
        self.descriptor = descriptor
        self.lmax1, self.lmax2 = descriptor.lmax1, descriptor.lmax2
        self.register_buffer("deg1", degree_index(self.lmax1), persistent=False)

    def _inputs(self, x, y, w, senders):
        d = self.descriptor
        if x.dim() != 3 or x.shape[1] != d.irreps_in1.dim:
            raise ValueError(f"x must be [N, {d.irreps_in1.dim}, C] for {d.irreps_in1}, got {tuple(x.shape)}")
        if y.dim() != 2 or y.shape[1] != d.irreps_in2.dim:
            raise ValueError(f"y must be [E, {d.irreps_in2.dim}] for {d.irreps_in2}, got {tuple(y.shape)}")
        if w.shape != (y.shape[0], d.num_weights, x.shape[2]):
            raise ValueError(
                f"w must be [E={y.shape[0]}, {d.num_weights}, C={x.shape[2]}], got {tuple(w.shape)}"
            )
        xe = x.index_select(0, senders) if senders is not None else x
        u, v = w[:, : self.lmax1 + 1], w[:, self.lmax1 + 1 :]
        return xe * u.index_select(1, self.deg1), v


class GauntEdgeProduct(_DegreeWeighted):
    """Gaunt (``GAUNT_GRID``, ``GAUNT_FFT``) and Gaunt + vector (``VECTOR_GRID``) edge products.

    Grid route (Xie et al. 2025): ``f_x(g) = Σ x'_lm Ŷ_lm(g)``, ``f_y`` likewise, on the smallest exact
    :class:`~mlip.kernels.gaunt.SphereGrid`; ``m_i = Π Σ_e f_x f_y`` with the quadrature projection ``Π``.
    The vector part uses the surface gradients, ``Σ_e (∇f_x × ∇f_y)·r̂``, projected the same way.
    Fourier route (Luo et al. 2024): torus samples from the 2D Fourier coefficients, product, then the
    projection of :func:`~mlip.kernels.gaunt_fft.fourier_to_sh` after one FFT per node.
    """

    def __init__(self, descriptor: EdgeProductDescriptor) -> None:
        super().__init__(descriptor)
        kind = descriptor.kind
        if kind not in (ProductKind.GAUNT_GRID, ProductKind.GAUNT_FFT, ProductKind.VECTOR_GRID):
            raise ValueError(f"GauntEdgeProduct does not compute kind {kind.value!r}")
        irreps_out = descriptor.irreps_out
        self.lmax_even = max(ir.l for ir in irreps_out if ir.p == (-1) ** ir.l)
        self.pseudo = [ir for ir in irreps_out if ir.p != (-1) ** ir.l]
        self.fft = kind is ProductKind.GAUNT_FFT
        l1, l2, lo = self.lmax1, self.lmax2, self.lmax_even
        if self.fft:
            self.freq = l1 + l2
            n = (
                2 * self.freq + 1
            )  # zero-padded size: the product's frequencies reach ±(l1 + l2), no wrap-around
            c1 = half_spectrum_layout(sh_to_fourier(l1), n).flatten(1)  # [d1, K], K = n (freq + 1)
            c2 = half_spectrum_layout(sh_to_fourier(l2), n).flatten(1)
            self.register_buffer("sh2f1", interleave(c1), persistent=False)  # [d1, 2K], (Re, Im) interleaved
            self.register_buffer("sh2f2", degree_blocks(interleave(c2), l2), persistent=False)
            self.register_buffer(
                "f2sh", half_spectrum_projection(lo, self.freq), persistent=False
            )  # [2K, d_out]
            return
        lo_all = max(lo, max((ir.l for ir in self.pseudo), default=0))
        extra = 2 if self.pseudo else 0
        self.grid = SphereGrid.exact_for(l1 + l2 + lo_all + extra)
        points, weights = self.grid.points_and_weights()
        sh = orthonormal_sh(max(l1, l2, lo_all), points)  # [G, d]
        self.register_buffer("to_grid1", sh[:, : (l1 + 1) ** 2].T.contiguous(), persistent=False)
        self.register_buffer("to_grid2", degree_blocks(sh[:, : (l2 + 1) ** 2].T, l2), persistent=False)
        self.register_buffer(
            "project", (weights[:, None] * sh[:, : (lo + 1) ** 2]).contiguous(), persistent=False
        )
        if self.pseudo:
            g1, g2 = tangent_gradients(l1, points), tangent_gradients(l2, points)  # [G, d, 2]
            self.register_buffer("grad1_theta", g1[:, :, 0].T.contiguous(), persistent=False)  # [d1, G]
            self.register_buffer("grad1_phi", g1[:, :, 1].T.contiguous(), persistent=False)
            self.register_buffer("grad2_theta", degree_blocks(g2[:, :, 0].T, l2), persistent=False)
            self.register_buffer("grad2_phi", degree_blocks(g2[:, :, 1].T, l2), persistent=False)
            rows = torch.cat([torch.arange(ir.l * ir.l, (ir.l + 1) ** 2) for ir in self.pseudo])
            self.register_buffer(
                "project_pseudo", (weights[:, None] * sh[:, rows]).contiguous(), persistent=False
            )

    def _weighted_y(self, y: torch.Tensor, v: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
        """``Σ_l v_{e l c} (y_e @ blocks)_l`` -> ``[E, K, C]`` (per-degree transform, then the weights)."""
        t = (y @ blocks.to(y.dtype)).view(y.shape[0], self.lmax2 + 1, -1)
        return torch.bmm(t.transpose(1, 2), v)

    def forward(self, x, y, w, senders=None, receivers=None, num_receivers=None) -> torch.Tensor:
        xw, v = self._inputs(x, y, w, senders)
        if receivers is None:
            receivers, num_receivers = torch.arange(y.shape[0], device=y.device), y.shape[0]
        if self.fft:
            return self._forward_fft(xw, y, v, receivers, num_receivers)
        dtype = xw.dtype
        fx = torch.matmul(self.to_grid1.to(dtype).T, xw)  # [E, G, C]
        fy = self._weighted_y(y, v, self.to_grid2)
        prod = _scatter(fx * fy, receivers, num_receivers)
        out = torch.matmul(self.project.to(dtype).T, prod)  # [N, d_out, C]
        if not self.pseudo:
            return out
        # (∇f_x × ∇f_y)·r̂ = ∂_θ f_x ∂_φ f_y - ∂_φ f_x ∂_θ f_y in the tangent frame (e_θ, e_φ)
        x_theta = torch.matmul(self.grad1_theta.to(dtype).T, xw)
        x_phi = torch.matmul(self.grad1_phi.to(dtype).T, xw)
        y_theta = self._weighted_y(y, v, self.grad2_theta)
        y_phi = self._weighted_y(y, v, self.grad2_phi)
        pseudo = _scatter(x_theta * y_phi - x_phi * y_theta, receivers, num_receivers)
        return torch.cat([out, torch.matmul(self.project_pseudo.to(dtype).T, pseudo)], dim=1)

    def _forward_fft(self, xw, y, v, receivers, num_receivers):
        n = 2 * self.freq + 1
        fx = samples(torch.matmul(xw.transpose(1, 2), self.sh2f1.to(xw.dtype)), n)  # [E, C, n, n]
        t = (y @ self.sh2f2.to(y.dtype)).view(y.shape[0], self.lmax2 + 1, -1)
        fy = samples(torch.bmm(v.transpose(1, 2), t), n)
        prod = _scatter(fx * fy, receivers, num_receivers)  # [N, C, n, n]
        return spectrum_to_sh(prod, self.f2sh.to(xw.dtype))


class CPEdgeProduct(_DegreeWeighted):
    """CP-factored edge product with path-weight sharing (TDN, Lin et al. 2025).

    The coupling tensor ``M[i, j, k]`` sums the CG paths of ``descriptor.channelwise`` (normalised
    ``sqrt(2l3+1) C``, as the CG kind) into one block per output irrep; with ``M ≈ Σ_r A_ir B_jr C_kr``

    .. math::  m_{i, k c} = \\sum_r C_{k r} \\sum_{e \\to i} (A^T x'_e)_{r c}\\, (B^T y'_e)_{r c}

    Factors from :func:`~mlip.kernels.cp.fit_cp` (exact when the rank reaches the number of non-zero fibres);
    ``relative_error`` records the fit.
    """

    def __init__(self, descriptor: EdgeProductDescriptor, factors: CPFactors | None = None) -> None:
        super().__init__(descriptor)
        self.coupling = cp_coupling(descriptor)
        if factors is None:
            lmax = max(self.lmax1, self.lmax2, descriptor.lmax_out)
            rank = descriptor.cp_rank or default_rank(lmax)
            factors = fit_cp(self.coupling, rank)
        self.relative_error = factors.relative_error
        self.rank = factors.A.shape[1]
        # persistent: a saved model keeps its own factors (an ALS refit elsewhere could land on other ones)
        self.register_buffer("A", factors.A.clone())  # [d1, R]
        self.register_buffer("B", degree_blocks(factors.B, self.lmax2))  # [d2, (l2+1) R]
        self.register_buffer("C", factors.C.contiguous())  # [d_out, R]

    def forward(self, x, y, w, senders=None, receivers=None, num_receivers=None) -> torch.Tensor:
        xw, v = self._inputs(x, y, w, senders)
        ax = torch.matmul(self.A.to(xw.dtype).T, xw)  # [E, R, C]
        t = (y @ self.B.to(y.dtype)).view(y.shape[0], self.lmax2 + 1, self.rank)
        by = torch.bmm(t.transpose(1, 2), v)  # [E, R, C]
        prod = ax * by
        if receivers is not None:
            prod = _scatter(prod, receivers, num_receivers)
        return torch.matmul(self.C.to(xw.dtype), prod)


def cp_coupling(descriptor: EdgeProductDescriptor) -> torch.Tensor:
    """``M [irreps_in1.dim, irreps_in2.dim, irreps_out.dim]`` (float64) of :class:`CPEdgeProduct`."""
    cw = descriptor.channelwise
    out = descriptor.irreps_out
    m = torch.zeros(cw.irreps_in1.dim, cw.irreps_in2.dim, out.dim, dtype=torch.float64)
    s1, s2, so = cw.irreps_in1.slices(), cw.irreps_in2.slices(), out.slices()
    for p, c in zip(cw.paths, cw.path_coefficients()):
        m[s1[p.i1], s2[p.i2], so[out.index(p.ir_out)]] += c
    return m
