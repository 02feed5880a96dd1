"""The Coulomb energy of a batch of structures, per atom, for a model's long-range term: a tensor program.

``E_i = (k_e / 2) q_i φ_i`` (eV), summed over a structure's atoms its Coulomb energy (half of each pair energy to
each partner, what ``NODE_ENERGY`` reports). Two steps, so that the network with this term compiles as one graph:

:func:`plan_long_range` (eager, in the model's ``forward``, before the network runs)
    checks periodicity (each structure periodic in all three directions or in none) and the method, and builds the
    index tensors whose *sizes* depend on the data: each periodic structure's reciprocal-lattice coordinates
    (``LR_KGRID``, zero-padded, with ``LR_KVALID``) and every ordered pair of each free structure summed directly
    (``LR_FREE_PAIRS``). Torch operations only, no neighbour search, no NumPy.
:func:`coulomb_node_energies` (inside the network, compiled or not)
    the arithmetic, with data-independent control flow. Periodic structures: the Ewald sum of
    :mod:`mlip.longrange.ewald` with its real-space pairs taken from **the model's own edge list**, which holds
    every pair within ``r_max``; hence ``σ = r_max / √p`` with ``p = −ln(accuracy)`` (or the configured ``sigma``
    when smaller), so that the real-space cutoff ``r_c = σ√p`` is at most ``r_max``, and ``k_c = 2√p/σ``. Free
    structures: ``φ_i = Σ_{j≠i} q_j / r_ij`` over ``LR_FREE_PAIRS``.

Free structures of more than :data:`MODEL_DIRECT_MAX_ATOMS` atoms (with ``kind: auto``), or with
``kind: chebyshev_tucker``, go through ``mlip.longrange.api.split_free_potential`` eagerly (its short-range
part builds a host neighbour list): a compiled network refuses them.
"""

from __future__ import annotations

import math

import torch

from mlip import keys as K
from mlip.errors import MLIPInputError
from mlip.longrange.api import Method, split_free_potential
from mlip.longrange.config import LongRangeConfig
from mlip.longrange.constants import K_E
from mlip.longrange.ewald import reciprocal_integers, reciprocal_sum

__all__ = ["MODEL_DIRECT_MAX_ATOMS", "coulomb_node_energies", "model_sigma", "plan_long_range"]

MODEL_DIRECT_MAX_ATOMS = 2000
"""Largest free structure whose Coulomb sum the model evaluates over all ordered pairs (``n (n − 1)`` of them)."""


def model_sigma(r_max: float, config: LongRangeConfig) -> float:
    """The Ewald width ``σ`` (Å) of the model's term: ``r_max/√p``, or ``config.sigma`` when smaller."""
    sigma = r_max / math.sqrt(-math.log(config.accuracy))
    return sigma if config.sigma is None else min(float(config.sigma), sigma)


def plan_long_range(
    cell: torch.Tensor, pbc: torch.Tensor, batch: torch.Tensor, *, r_max: float, config: LongRangeConfig
) -> tuple[dict[str, torch.Tensor], tuple[int, ...]]:
    """``({LR_KGRID, LR_KVALID, LR_FREE_PAIRS}, large_free)`` for a batch (``cell [G, 3, 3]`` Å, ``pbc [G, 3]``,
    ``batch [N]``); ``large_free`` lists the free structures left to Chebyshev–Tucker (module docstring)."""
    periodic = pbc.all(dim=1)
    mixed = pbc.any(dim=1) & ~periodic
    if mixed.any():
        b = int(torch.nonzero(mixed)[0])
        raise MLIPInputError(
            f"structure {b} has pbc={pbc[b].tolist()}: the long-range term needs full or no periodicity "
            "(pad a slab's vacuum direction and make it periodic)"
        )
    method = Method(config.kind)
    if periodic.any() and method not in (Method.AUTO, Method.EWALD):
        raise MLIPInputError(
            f"long_range.kind {method.value!r} cannot handle periodic structures; use 'ewald'"
        )
    if (~periodic).any() and method is Method.EWALD:
        raise MLIPInputError("long_range.kind 'ewald' cannot handle a free structure; use 'auto'")
    k_cut = 2.0 * math.sqrt(-math.log(config.accuracy)) / model_sigma(r_max, config)
    grids = [
        reciprocal_integers(cell[b].double(), k_cut)
        if periodic[b]
        else cell.new_zeros(0, 3, dtype=torch.float64)
        for b in range(cell.shape[0])
    ]
    pad = torch.nn.utils.rnn.pad_sequence
    kgrid = pad(grids, batch_first=True).reshape(cell.shape[0], -1, 3)
    kvalid = pad([torch.ones(len(g), dtype=torch.bool, device=cell.device) for g in grids], batch_first=True)
    pairs, large = [], []
    for b in torch.nonzero(~periodic).squeeze(1).tolist():
        idx = torch.nonzero(batch == b).squeeze(1)
        n = idx.numel()
        if method is Method.CHEBYSHEV_TUCKER or (method is Method.AUTO and n > MODEL_DIRECT_MAX_ATOMS):
            large.append(b)
            continue
        receiver, sender = torch.meshgrid(idx, idx, indexing="ij")
        keep = receiver != sender
        pairs.append(torch.stack([sender[keep], receiver[keep]]))
    free = torch.cat(pairs, dim=1) if pairs else torch.zeros(2, 0, dtype=torch.int64, device=batch.device)
    plan = {K.LR_KGRID: kgrid, K.LR_KVALID: kvalid.reshape(cell.shape[0], -1), K.LR_FREE_PAIRS: free}
    return plan, tuple(large)


def coulomb_node_energies(
    vectors: torch.Tensor,
    positions: torch.Tensor,
    charges: torch.Tensor,
    cell: torch.Tensor,
    batch: dict[str, torch.Tensor],
    *,
    sigma: float,
    config: LongRangeConfig,
    large_free: tuple[int, ...] = (),
) -> torch.Tensor:
    """Per-atom Coulomb energies ``[N]`` (eV).

    Args:
        vectors: the model's edge vectors ``[E, 3]`` (Å, float64; ``EDGE_INDEX`` of ``batch``: sender, receiver).
        positions: ``[N, 3]`` Å and ``cell`` ``[G, 3, 3]`` Å (strained, float64). charges: ``[N]`` e.
        batch: the batch with ``PBC``, ``BATCH``, ``EDGE_INDEX`` and the entries of :func:`plan_long_range`.
        sigma: the Ewald width (:func:`model_sigma`). config: the term's settings. large_free: from the plan.
    """
    sender, receiver = batch[K.EDGE_INDEX]
    atom_graph = batch[K.BATCH]
    periodic = batch[K.PBC].all(dim=1)
    on_periodic = periodic[atom_graph]
    # real space: erfc(r/σ)/r over the model's edges (every pair within r_max >= r_c) of periodic structures
    r = torch.linalg.norm(vectors, dim=-1)
    real = torch.where(on_periodic[receiver], charges[sender] * torch.erfc(r / sigma) / r, 0.0)
    phi = torch.zeros_like(charges).index_add(0, receiver, real)
    # reciprocal space: (4π/V) Σ_k e^{-k²σ²/4}/k² Re[...], ±k folded (factor 2); free structures have no rows
    eye = torch.eye(3, dtype=cell.dtype, device=cell.device).expand_as(cell)
    safe_cell = torch.where(periodic[:, None, None], cell, eye)
    recip = 2.0 * math.pi * torch.linalg.inv(safe_cell).transpose(1, 2)
    k = torch.bmm(batch[K.LR_KGRID].to(cell.dtype), recip)
    valid = batch[K.LR_KVALID]
    k2 = torch.where(valid, k.square().sum(-1), 1.0)
    volume = torch.linalg.det(safe_cell).abs()
    weight = torch.where(valid, 8.0 * math.pi / volume[:, None] * torch.exp(-k2 * sigma**2 / 4.0) / k2, 0.0)
    phi = phi + reciprocal_sum(positions, charges, atom_graph, k, weight)
    # self term and the neutralising background of a charged cell
    total = torch.zeros_like(volume).index_add(0, atom_graph, charges)
    correction = (
        2.0 * charges / (sigma * math.sqrt(math.pi)) + (math.pi * sigma**2 * total / volume)[atom_graph]
    )
    phi = phi - torch.where(on_periodic, correction, 0.0)
    # free structures: Σ_{j≠i} q_j / r_ij over every ordered pair
    j, i = batch[K.LR_FREE_PAIRS]
    d = positions[j] - positions[i]
    phi = phi.index_add(0, i, charges[j] / d.square().sum(-1).sqrt())
    for b in large_free:  # eager only (module docstring)
        idx = torch.nonzero(atom_graph == b).squeeze(1)
        part = split_free_potential(
            positions[idx], charges[idx], sigma=config.sigma, accuracy=config.accuracy
        )
        phi = phi.index_add(0, idx, part)
    return 0.5 * K_E * charges * phi
