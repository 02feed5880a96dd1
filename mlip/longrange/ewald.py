"""Ewald summation for periodic cells, batched over structures, differentiable in positions, cell and charges.

With the Gaussian width ``σ`` of the range separation (the same ``σ`` as in :mod:`mlip.longrange.direct`), the
potential at atom ``i`` of a cell of volume ``V`` (lattice vectors as rows of ``cell``) is, in e/Å,

.. math::

    φ_i = \\sum_{(j, n) \\ne (i, 0)}^{r < r_c} q_j \\frac{\\operatorname{erfc}(r_{ij,n}/σ)}{r_{ij,n}}
        + \\frac{4π}{V} \\sum_{0 < |k| < k_c} \\frac{e^{-k^2σ^2/4}}{k^2}
          \\operatorname{Re}\\Big[e^{-i k·x_i} \\sum_j q_j e^{i k·x_j}\\Big]
        - \\frac{2 q_i}{σ\\sqrt{π}} - \\frac{π σ^2}{V} Q,

``r_{ij,n} = |x_j − x_i + n·cell|``, ``k = 2π m·cell^{-T}`` for integer ``m``, and ``Q = Σ_j q_j``. The energy is
``E = (k_e/2) Σ_i q_i φ_i``. The last term is the neutralising background of a charged cell (a uniform charge
``−Q/V``; Hub, de Groot and van der Spoel, JCTC 10, 381 (2014)): it makes the sum converge and gives
``E_bg = −π σ² Q² k_e / (2V)``; it is zero for a neutral cell.

Parameters for a requested accuracy ``ε`` (Kolafa and Perram, Mol. Simul. 9, 351 (1992)): with ``p = −ln ε``,
``r_c = σ√p`` and ``k_c = 2√p/σ``, so that both truncated tails are ``≈ e^{−p} = ε`` relative to the sum.
Without a given ``σ`` the cost of the two sums is balanced, ``σ = (V²/N)^{1/6}/√π``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mlip.data.neighbors import neighbor_list

__all__ = [
    "EwaldParameters",
    "ewald_parameters",
    "ewald_potential",
    "reciprocal_integers",
    "reciprocal_sum",
    "reciprocal_vectors",
]


@dataclass(frozen=True, kw_only=True)
class EwaldParameters:
    """Range separation of one cell: ``sigma`` and ``r_cut`` in Å, ``k_cut`` in 1/Å."""

    sigma: float
    r_cut: float
    k_cut: float


def ewald_parameters(
    cell: torch.Tensor, n_atoms: int, *, accuracy: float = 1e-6, sigma: float | None = None
) -> EwaldParameters:
    """Choose ``σ`` (unless given), ``r_c`` and ``k_c`` for a relative accuracy ``accuracy`` (module docstring)."""
    if not 0.0 < accuracy < 1.0:
        raise ValueError(f"accuracy must lie in (0, 1), got {accuracy}")
    if sigma is not None and not sigma > 0:
        raise ValueError(f"sigma must be positive (Å), got {sigma}")
    volume = abs(float(torch.linalg.det(cell.detach().double())))
    if sigma is None:
        sigma = (volume**2 / max(n_atoms, 1)) ** (1.0 / 6.0) / math.sqrt(math.pi)
    p = -math.log(accuracy)
    return EwaldParameters(
        sigma=float(sigma), r_cut=float(sigma) * math.sqrt(p), k_cut=2.0 * math.sqrt(p) / sigma
    )


def reciprocal_integers(cell: torch.Tensor, k_cut: float) -> torch.Tensor:
    """Integer coordinates ``m`` ``[K, 3]`` (in ``cell``'s dtype) of half of the reciprocal lattice vectors with
    ``0 < |k| <= k_cut`` (1/Å), ``k = m @ (2π cell^{-T})``; chosen on the host from ``cell``'s values.

    One of each pair ``±k`` is kept (the first non-zero integer coordinate positive); the sum over the other half
    is the same, which callers account for with a factor 2.
    """
    cell = cell.detach()
    recip = 2.0 * math.pi * torch.linalg.inv(cell).transpose(0, 1)
    lengths = cell.norm(dim=1)
    m_max = [int(math.ceil(k_cut * float(length) / (2.0 * math.pi))) for length in lengths]
    axes = [torch.arange(-m, m + 1, device=cell.device) for m in m_max]
    m = torch.cartesian_prod(*axes).to(cell.dtype)
    first = torch.where(m[:, 0] != 0, m[:, 0], torch.where(m[:, 1] != 0, m[:, 1], m[:, 2]))
    m = m[first > 0]
    return m[(m @ recip).norm(dim=1) <= k_cut]


def reciprocal_vectors(cell: torch.Tensor, k_cut: float) -> torch.Tensor:
    """Half of the reciprocal lattice vectors with ``0 < |k| <= k_cut``: ``[K, 3]`` in 1/Å, differentiable in
    ``cell`` (:func:`reciprocal_integers` times ``2π cell^{-T}``)."""
    recip = 2.0 * math.pi * torch.linalg.inv(cell).transpose(0, 1)  # rows b_i with a_i · b_j = 2π δ_ij
    return reciprocal_integers(cell, k_cut) @ recip


def reciprocal_sum(
    positions: torch.Tensor, charges: torch.Tensor, batch: torch.Tensor, k: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """``Σ_k w_k Re[e^{−ik·x_i} Σ_j q_j e^{ik·x_j}]`` per atom ``[N]``, with each structure's half-space ``k``
    ``[B, K, 3]`` (1/Å) and weights ``w`` ``[B, K]`` (padding rows carry weight 0)."""
    n_graphs, k_max = weight.shape
    phase = torch.einsum("nd,nkd->nk", positions, k[batch])  # [N, K]
    cos, sin = phase.cos(), phase.sin()
    c_sum = positions.new_zeros(n_graphs, k_max).index_add(0, batch, charges[:, None] * cos)
    s_sum = positions.new_zeros(n_graphs, k_max).index_add(0, batch, charges[:, None] * sin)
    return (weight[batch] * (cos * c_sum[batch] + sin * s_sum[batch])).sum(1)


def _real_space_pairs(
    positions: torch.Tensor, cell: torch.Tensor, r_cut: float
) -> tuple[torch.Tensor, torch.Tensor]:
    edge_index, shifts = neighbor_list(
        positions.detach().cpu().double().numpy(),
        cell.detach().cpu().double().numpy(),
        np.ones(3, bool),
        r_cut,
    )
    device = positions.device
    return torch.as_tensor(edge_index, device=device), torch.as_tensor(
        shifts, device=device, dtype=positions.dtype
    )


def ewald_potential(
    positions: torch.Tensor,
    charges: torch.Tensor,
    cell: torch.Tensor,
    batch: torch.Tensor | None = None,
    *,
    sigma: float | None = None,
    accuracy: float = 1e-6,
) -> torch.Tensor:
    """Potential ``φ_i`` (e/Å; multiply by ``k_e`` for volts) at every atom of one or many periodic cells.

    Args:
        positions: ``[N, 3]`` Å (atoms of all structures, concatenated).
        charges: ``[N]`` e.
        cell: ``[3, 3]`` Å for one structure, or ``[B, 3, 3]`` with ``batch`` for many; lattice vectors as rows.
        batch: ``[N]`` int64 structure index of each atom, or ``None`` for one structure.
        sigma: Gaussian width in Å, one for all structures; chosen per structure from its density if ``None``.
        accuracy: relative accuracy of each truncated sum.

    Returns:
        ``[N]`` potential such that the energy of structure ``b`` is ``(k_e/2) Σ_{i∈b} q_i φ_i``.
    """
    if cell.ndim == 2:
        cell = cell.unsqueeze(0)
    if batch is None:
        batch = torch.zeros(positions.shape[0], dtype=torch.long, device=positions.device)
    n_graphs = cell.shape[0]
    counts = torch.bincount(batch, minlength=n_graphs).tolist()
    params = [ewald_parameters(cell[b], counts[b], accuracy=accuracy, sigma=sigma) for b in range(n_graphs)]
    sig = positions.new_tensor([p.sigma for p in params])
    volume = torch.linalg.det(cell).abs()
    phi = _real_space(positions, charges, cell, batch, params)
    phi = phi + _reciprocal(positions, charges, cell, batch, params, volume)
    total = torch.zeros(n_graphs, dtype=charges.dtype, device=charges.device).index_add(0, batch, charges)
    self_term = 2.0 * charges / (sig[batch] * math.sqrt(math.pi))
    background = math.pi * sig.square() * total / volume
    return phi - self_term - background[batch]


def _real_space(positions, charges, cell, batch, params) -> torch.Tensor:
    """``Σ q_j erfc(r/σ)/r`` over all images within ``r_c`` (the atom itself only through non-zero shifts)."""
    phi = torch.zeros_like(charges)
    for b, p in enumerate(params):
        idx = torch.nonzero(batch == b).squeeze(1)
        if idx.numel() == 0:
            continue
        x = positions[idx]
        (j, i), shifts = _real_space_pairs(x, cell[b], p.r_cut)
        r = (x[j] - x[i] + shifts @ cell[b]).norm(dim=1)
        contrib = charges[idx][j] * torch.erfc(r / p.sigma) / r
        phi = phi.index_add(0, idx[i], contrib)
    return phi


def _reciprocal(positions, charges, cell, batch, params, volume) -> torch.Tensor:
    """``(4π/V) Σ_k e^{−k²σ²/4}/k² Re[...]`` with the ``±k`` pairs folded (factor 2), padded across structures."""
    kvecs = [reciprocal_vectors(cell[b], p.k_cut) for b, p in enumerate(params)]
    k_max = max((k.shape[0] for k in kvecs), default=0)
    if k_max == 0:
        return torch.zeros_like(charges)
    weights = []
    for b, (kb, p) in enumerate(zip(kvecs, params)):
        k2 = kb.square().sum(1)
        weights.append(8.0 * math.pi / volume[b] * torch.exp(-k2 * p.sigma**2 / 4.0) / k2)
    k = torch.nn.utils.rnn.pad_sequence(kvecs, batch_first=True)  # [B, K, 3], zero rows pad
    weight = torch.nn.utils.rnn.pad_sequence(weights, batch_first=True)  # [B, K], zero weight on the padding
    return reciprocal_sum(positions, charges, batch, k, weight)
