"""Chebyshev–Tucker evaluation of the smooth long-range potential of a finite (non-periodic) structure.

After Benner, Khoromskij, Khoromskaia and Sun, "A mesh-free hybrid Chebyshev–Tucker tensor format" (arXiv
2503.01696, 2025). The target is, at every atom, with Gaussian width ``σ`` (e/Å),

.. math::

    φ_L(x) = \\sum_j q_j \\frac{\\operatorname{erf}(|x - x_j|/σ)}{|x - x_j|}.

1. **Gaussian sum.** ``erf(r/σ)/r = (2/(σ√π)) ∫₀¹ exp(−s²r²/σ²) ds ≈ Σ_k w_k exp(−a_k r²)`` by ``K``-point
   Gauss–Legendre on ``[0, 1]`` (``w_k = 2ω_k/(σ√π)``, ``a_k = s_k²/σ²``). Each term is a product of three 1-D
   Gaussians, one per axis. ``K`` is the smallest that meets the accuracy for every distance in the box.
2. **Chebyshev grid.** ``n`` first-kind Chebyshev nodes ``ξ_d`` per axis on the bounding box; the grid values are
   the canonical (CP) tensor ``T = Σ_{k,j} w_k q_j F¹_{kj} ⊗ F²_{kj} ⊗ F³_{kj}`` with factors
   ``F^d_{kj}[a] = exp(−a_k (ξ_{d,a} − x_{j,d})²)``: ``[K, n, N]`` per axis.
3. **Tucker compression.** Per axis, the leading ``r`` left singular vectors ``Q_d [n, r]`` of the ``[n, K·N]``
   matrix of factors scaled by ``|w_k q_j|^{1/3}`` (a reduced HOSVD of the CP form); the core is
   ``C = Σ_{k,j} w_k q_j (Q_1ᵀF¹_{kj}) ⊗ (Q_2ᵀF²_{kj}) ⊗ (Q_3ᵀF³_{kj})``: ``[r, r, r]``.
4. **Evaluation.** With the barycentric Lagrange basis ``ℓ_d(x) [n]`` of the nodes, ``v_d = ℓ_d(x_{i,d}) Q_d`` and
   ``φ_L(x_i) = C ×₁ v_1 ×₂ v_2 ×₃ v_3``.

Cost ``O(K N n² + K N r³ + N r³)``. Forces come from autograd through the factors and the Lagrange basis; the
bases ``Q_d`` are detached (SVD gradients are unstable at near-degenerate singular values, and ``Q_d`` only needs to
span the factors, which it does to the truncation accuracy at the perturbed positions as well).

Choosing ``n`` and ``r`` from a requested relative accuracy ``ε`` (``p = ln(1/ε)``): ``n = ⌈1.1 (L/σ) √p⌉ + 4``
per axis (``L`` the box edge; a Gaussian of width ``σ`` needs a fixed number of nodes per ``σ``), and ``r`` the
smallest rank whose discarded singular values have a relative norm below ``ε/10``. Both can be fixed by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

DEGREE_FACTOR = 1.0
"""``n = ⌈DEGREE_FACTOR · (L/σ) · √(ln 1/ε)⌉ + 4`` Chebyshev nodes per axis of length ``L``."""
RANK_TOLERANCE = 0.5
"""The rank keeps singular values until the discarded ones have relative norm ``<= RANK_TOLERANCE · ε``."""

__all__ = [
    "ChebyshevTuckerPlan",
    "chebyshev_tucker_potential",
    "gaussian_sum",
    "plan_chebyshev_tucker",
    "DEGREE_FACTOR",
    "RANK_TOLERANCE",
]


@dataclass(frozen=True, kw_only=True)
class ChebyshevTuckerPlan:
    """Resolution of one evaluation: ``degree`` nodes and ``rank`` per axis, ``n_gauss`` Gaussians."""

    degree: tuple[int, int, int]
    rank: tuple[int, int, int] | None
    n_gauss: int


def gaussian_sum(sigma: float, r_max: float, accuracy: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``w_k`` (1/Å) and exponents ``a_k`` (1/Å²) with ``|Σ w_k e^{−a_k r²} − erf(r/σ)/r|`` below
    ``accuracy · 2/(σ√π)`` (``2/(σ√π)`` is the function's maximum) for all ``0 <= r <= r_max``.
    """
    from scipy.special import erf

    r = np.linspace(1e-9, max(r_max, sigma), 4001)
    exact = erf(r / sigma) / r
    scale = 2.0 / (sigma * math.sqrt(math.pi))
    for k in range(4, 257, 2):
        s, omega = np.polynomial.legendre.leggauss(k)
        s, omega = 0.5 * (s + 1.0), 0.5 * omega
        w, a = scale * omega, (s / sigma) ** 2
        approx = np.exp(-np.outer(r**2, a)) @ w
        if np.abs(approx - exact).max() <= accuracy * scale:
            return w, a
    raise ValueError(
        f"no Gauss–Legendre rule up to 256 points reaches {accuracy:g} for r <= {r_max:g} Å, σ = {sigma:g} Å"
    )


def plan_chebyshev_tucker(
    positions: torch.Tensor,
    sigma: float,
    accuracy: float,
    *,
    degree: int | None = None,
    rank: int | None = None,
) -> ChebyshevTuckerPlan:
    """Pick the degrees (and, if given, the rank) for a structure; see the module docstring for the rule."""
    return _plan(positions, sigma, accuracy, degree=degree, rank=rank)[0]


def _plan(positions, sigma, accuracy, *, degree, rank) -> tuple[ChebyshevTuckerPlan, np.ndarray, np.ndarray]:
    """The plan and the Gaussian sum ``(w, a)`` it was made with (computed once per evaluation)."""
    extent = (positions.detach().amax(0) - positions.detach().amin(0)).double().cpu().numpy()
    p = math.log(1.0 / accuracy)
    if degree is None:
        deg = tuple(int(math.ceil(DEGREE_FACTOR * (e / sigma) * math.sqrt(p))) + 4 for e in extent)
    else:
        deg = (int(degree),) * 3
    w, a = gaussian_sum(sigma, float(np.linalg.norm(extent)), accuracy)
    plan = ChebyshevTuckerPlan(degree=deg, rank=None if rank is None else (int(rank),) * 3, n_gauss=len(w))
    return plan, w, a


def _chebyshev_nodes(lo: torch.Tensor, hi: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """First-kind nodes on ``[lo, hi]`` and their barycentric weights ``(−1)^a sin((2a+1)π/(2n))``."""
    theta = (2 * torch.arange(n, dtype=lo.dtype, device=lo.device) + 1) * math.pi / (2 * n)
    nodes = 0.5 * (lo + hi) + 0.5 * (hi - lo) * torch.cos(theta)
    signs = 1.0 - 2.0 * (torch.arange(n, device=lo.device) % 2).to(lo.dtype)
    return nodes, signs * torch.sin(theta)


def _lagrange_basis(x: torch.Tensor, nodes: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Barycentric Lagrange basis ``ℓ_a(x)``: ``[M, n]`` for points ``x [M]``; exact at the nodes as well."""
    diff = x[:, None] - nodes[None, :]
    tiny = 1e-14 * (nodes.max() - nodes.min()).clamp(min=1.0)
    diff = torch.where(diff.abs() < tiny, torch.where(diff < 0, -tiny, tiny), diff)
    terms = weights[None, :] / diff
    return terms / terms.sum(1, keepdim=True)


def _axis_basis(
    factors: torch.Tensor, scale: torch.Tensor, rank: int | None, accuracy: float
) -> torch.Tensor:
    """``Q [n, r]``: leading left singular vectors of the ``[n, K·N]`` scaled factor matrix (via its Gram matrix)."""
    # float64 always: the Gram matrix squares the singular values, so float32 would cut the basis at √eps ≈ 3e-4
    a = (factors.detach() * scale[:, None, :]).permute(1, 0, 2).reshape(factors.shape[1], -1).double()
    evals, evecs = torch.linalg.eigh(a @ a.T)  # ascending
    evals, evecs = evals.flip(0).clamp(min=0.0), evecs.flip(1)
    if rank is None:
        tail = evals.flip(0).cumsum(0).flip(0)  # tail[r] = Σ_{i>=r} s_i²
        ok = (tail / tail[0].clamp(min=1e-300)).sqrt() <= RANK_TOLERANCE * accuracy
        rank = int(torch.nonzero(ok)[0]) if ok.any() else evals.numel()
    return evecs[:, : max(1, min(rank, evals.numel()))].to(factors.dtype)


def _khatri_rao(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[ra·rb, M]`` with row ``i·rb + j`` equal to ``a[i] * b[j]``."""
    return (a[:, None, :] * b[None, :, :]).reshape(a.shape[0] * b.shape[0], -1)


def _cp_core(u: torch.Tensor, v: torch.Tensor, w: torch.Tensor, chunk: int) -> torch.Tensor:
    """``C[a, b, c] = Σ_m u[a, m] v[b, m] w[c, m]`` in chunks of ``m`` (memory ``chunk · r²``)."""
    core = u.new_zeros(u.shape[0], v.shape[0] * w.shape[0])
    for uc, vc, wc in zip(u.split(chunk, 1), v.split(chunk, 1), w.split(chunk, 1)):
        core = core + uc @ _khatri_rao(vc, wc).T
    return core.reshape(u.shape[0], v.shape[0], w.shape[0])


class _CPToTuckerCore(torch.autograd.Function):
    """:func:`_cp_core` with a chunked backward that recomputes its intermediates instead of storing them. With
    ``P[a, b, m] = Σ_c G[a, b, c] w[c, m]``: ``∂u[a, m] = Σ_b P[a, b, m] v[b, m]``,
    ``∂v[b, m] = Σ_a P[a, b, m] u[a, m]`` and ``∂w = G_(3) (u ⊙ v)`` (Khatri–Rao). The backward is made of
    differentiable operations, so it can be differentiated again (forces in a loss)."""

    @staticmethod
    def forward(ctx, u, v, w, chunk):
        ctx.save_for_backward(u, v, w)
        ctx.chunk = chunk
        return _cp_core(u, v, w, chunk)

    @staticmethod
    def backward(ctx, grad):
        u, v, w = ctx.saved_tensors
        r1, r2, r3 = grad.shape
        g12 = grad.reshape(r1 * r2, r3)
        g3 = grad.permute(2, 0, 1).reshape(r3, r1 * r2)
        du, dv, dw = [], [], []
        for uc, vc, wc in zip(u.split(ctx.chunk, 1), v.split(ctx.chunk, 1), w.split(ctx.chunk, 1)):
            p = (g12 @ wc).reshape(r1, r2, -1)  # [r1, r2, M]
            du.append((p * vc[None]).sum(1))
            dv.append((p * uc[:, None]).sum(0))
            dw.append(g3 @ _khatri_rao(uc, vc))
        return torch.cat(du, 1), torch.cat(dv, 1), torch.cat(dw, 1), None


def chebyshev_tucker_potential(
    positions: torch.Tensor,
    charges: torch.Tensor,
    sigma: float,
    *,
    accuracy: float = 1e-6,
    degree: int | None = None,
    rank: int | None = None,
    chunk: int = 1024,
) -> tuple[torch.Tensor, ChebyshevTuckerPlan]:
    """``φ_L(x_i)`` in e/Å at every atom of a free structure, and the resolution used.

    Args:
        positions: ``[N, 3]`` Å. charges: ``[N]`` e. sigma: Gaussian width, Å.
        accuracy: requested relative accuracy (module docstring); ``degree``/``rank`` override the choice.
        chunk: rank-one terms contracted into the core at once (memory ``chunk · r²``).

    Returns:
        ``(phi [N], plan)``; ``plan.rank`` holds the ranks actually used.
    """
    plan, w_np, a_np = _plan(positions, sigma, accuracy, degree=degree, rank=rank)
    w, a = positions.new_tensor(w_np), positions.new_tensor(a_np)
    lo = positions.detach().amin(0) - 1e-3 * sigma
    hi = positions.detach().amax(0) + 1e-3 * sigma
    wq = w[:, None] * charges[None, :]  # [K, N]
    scale = wq.detach().abs().pow(1.0 / 3.0)
    projected, bases, ranks = [], [], []
    for d in range(3):
        nodes, bary = _chebyshev_nodes(lo[d], hi[d], plan.degree[d])
        factors = torch.exp(-a[:, None, None] * (nodes[None, :, None] - positions[None, None, :, d]).square())
        q = _axis_basis(factors, scale, None if plan.rank is None else plan.rank[d], accuracy)
        projected.append(torch.einsum("ar,kan->rkn", q, factors).reshape(q.shape[1], -1))
        bases.append((nodes, bary, q))
        ranks.append(q.shape[1])
    g1, g2, g3 = projected  # [r_d, K·N]
    core = _CPToTuckerCore.apply(g1 * wq.reshape(-1), g2, g3, chunk)  # [r1, r2, r3]
    v = [_lagrange_basis(positions[:, d], nodes, bary) @ q for d, (nodes, bary, q) in enumerate(bases)]
    t = (v[0] @ core.reshape(ranks[0], -1)).reshape(-1, ranks[1], ranks[2])  # [N, r2, r3]
    phi = ((t @ v[2].unsqueeze(-1)).squeeze(-1) * v[1]).sum(-1)
    used = ChebyshevTuckerPlan(degree=plan.degree, rank=tuple(ranks), n_gauss=len(w_np))
    return phi, used
