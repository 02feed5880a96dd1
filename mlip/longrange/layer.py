"""The Coulomb energy of a batch of structures, per atom, for a model's long-range term: a tensor program.

``E_i = (k_e / 2) q_i φ_i`` (eV), summed over a structure's atoms its Coulomb energy (half of each pair energy to
each partner, what ``NODE_ENERGY`` reports). Two steps, so that the network with this term compiles as one graph:

:func:`plan_long_range` (eager, in the model's ``forward``, before the network runs)
    checks periodicity (each structure periodic in all three directions, in two (a slab), or in none) and the
    method, and builds the index tensors whose *sizes* depend on the data: each periodic structure's
    reciprocal-lattice coordinates (``LR_KGRID``, zero-padded, with ``LR_KVALID``), each slab's padded height
    (``LR_SLAB_HEIGHT``) and every ordered pair of each free structure summed directly (``LR_FREE_PAIRS``). Torch
    operations only, no neighbour search, no NumPy.
:func:`coulomb_node_energies` (inside the network, compiled or not)
    the arithmetic, with data-independent control flow. Periodic structures: the Ewald sum of
    :mod:`mlip.longrange.ewald` with its real-space pairs taken from **the model's own edge list**, which holds
    every pair within ``r_max``; hence ``σ = r_max / √p`` with ``p = −ln(accuracy)`` (or the configured ``sigma``
    when smaller), so that the real-space cutoff ``r_c = σ√p`` is at most ``r_max``, and ``k_c = 2√p/σ``. Free
    structures: ``φ_i = Σ_{j≠i} q_j / r_ij`` over ``LR_FREE_PAIRS``. Slabs: the Ewald sum of the cell padded along
    the plane normal to ``LR_SLAB_HEIGHT`` (at least ``r_max``, so the model's in-plane edges are all its
    real-space pairs) plus the Yeh–Berkowitz correction (:mod:`mlip.longrange.slab`).

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
from mlip.longrange.slab import GAP_PERIODS

__all__ = [
    "MODEL_DIRECT_MAX_ATOMS",
    "coulomb_node_energies",
    "model_sigma",
    "padded_cells",
    "plan_long_range",
    "slab_normals",
]

MODEL_DIRECT_MAX_ATOMS = 2000
"""Largest free structure whose Coulomb sum the model evaluates over all ordered pairs (``n (n − 1)`` of them)."""


def model_sigma(r_max: float, config: LongRangeConfig) -> float:
    """The Ewald width ``σ`` (Å) of the model's term: ``r_max/√p``, or ``config.sigma`` when smaller."""
    sigma = r_max / math.sqrt(-math.log(config.accuracy))
    return sigma if config.sigma is None else min(float(config.sigma), sigma)


def plan_long_range(
    cell: torch.Tensor,
    pbc: torch.Tensor,
    batch: torch.Tensor,
    *,
    r_max: float,
    config: LongRangeConfig,
    positions: torch.Tensor | None = None,
    total_charge: torch.Tensor | None = None,
) -> tuple[dict[str, torch.Tensor], tuple[int, ...]]:
    """``({LR_KGRID, LR_KVALID, LR_FREE_PAIRS, LR_SLAB_HEIGHT}, large_free)`` for a batch (``cell [G, 3, 3]`` Å,
    ``pbc [G, 3]``, ``batch [N]``; ``positions [N, 3]`` Å and ``total_charge [G]`` e are needed when the batch
    holds slabs); ``large_free`` lists the free structures left to Chebyshev–Tucker (module docstring)."""
    periodic = pbc.all(dim=1)
    slab = pbc.sum(dim=1) == 2
    wire = pbc.sum(dim=1) == 1
    if wire.any():
        b = int(torch.nonzero(wire)[0])
        raise MLIPInputError(
            f"structure {b} has pbc={pbc[b].tolist()}: the long-range term takes bulk cells, slabs (two periodic "
            "directions) and free structures, not wires"
        )
    height = _slab_heights(cell, pbc, batch, slab, positions, total_charge, r_max)
    method = Method(config.kind)
    periodic = periodic | slab  # a slab is summed in its padded cell
    if periodic.any() and method not in (Method.AUTO, Method.EWALD):
        raise MLIPInputError(
            f"long_range.kind {method.value!r} cannot handle periodic structures; use 'ewald'"
        )
    if (~periodic).any() and method is Method.EWALD:
        raise MLIPInputError("long_range.kind 'ewald' cannot handle a free structure; use 'auto'")
    k_cut = 2.0 * math.sqrt(-math.log(config.accuracy)) / model_sigma(r_max, config)
    ewald_cell = padded_cells(cell.double(), pbc, height)
    grids = [
        reciprocal_integers(ewald_cell[b], k_cut)
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
    plan = {K.LR_KGRID: kgrid, K.LR_KVALID: kvalid.reshape(cell.shape[0], -1), K.LR_FREE_PAIRS: free,
            K.LR_SLAB_HEIGHT: height}  # fmt: skip
    return plan, tuple(large)


def slab_normals(cell: torch.Tensor, pbc: torch.Tensor) -> torch.Tensor:
    """``[G, 3]``: the unit normal of each slab's periodic plane (the cross product of its two periodic lattice
    vectors); an arbitrary unit vector for other structures. Differentiable in ``cell``."""
    crosses = torch.stack(
        [torch.linalg.cross(cell[:, (d + 1) % 3], cell[:, (d + 2) % 3]) for d in range(3)], 1
    )
    normal = ((~pbc).to(cell.dtype)[:, :, None] * crosses).sum(1)
    norm = normal.norm(dim=-1, keepdim=True)
    fallback = torch.zeros_like(normal)
    fallback[:, 2] = 1.0
    return torch.where(norm > 0, normal / norm.clamp(min=1e-300), fallback)


def padded_cells(cell: torch.Tensor, pbc: torch.Tensor, height: torch.Tensor) -> torch.Tensor:
    """``[G, 3, 3]``: each slab's cell with its free lattice vector replaced by ``n̂ · height`` (the padded cell of
    :mod:`mlip.longrange.slab`); other structures' cells as they are."""
    normal = slab_normals(cell, pbc)
    padded = torch.where(pbc[:, :, None], cell, normal[:, None, :] * height[:, None, None].to(cell.dtype))
    return torch.where((height > 0)[:, None, None], padded, cell)


def _slab_heights(cell, pbc, batch, slab, positions, total_charge, r_max) -> torch.Tensor:
    """``[G]`` float64 Å: each slab's padded height (its thickness plus the gap of
    :func:`mlip.longrange.slab.slab_cell`, and at least ``r_max``, so that no real-space pair crosses the gap and
    the model's in-plane edges are all the real-space pairs); 0 for other structures."""
    height = torch.zeros(cell.shape[0], dtype=torch.float64, device=cell.device)
    if not slab.any():
        return height
    if positions is None:
        raise ValueError("plan_long_range needs positions for a batch holding slabs")
    normal = slab_normals(cell.detach().double(), pbc)
    for b in torch.nonzero(slab).squeeze(1).tolist():
        if total_charge is not None and abs(float(total_charge[b])) > 1e-12:
            raise MLIPInputError(
                f"structure {b} is a slab with net charge {float(total_charge[b]):g} e: the long-range term sums "
                "neutral slabs only (a charged one needs a neutralising sheet placed by choice)"
            )
        z = positions[batch == b].detach().double() @ normal[b]
        thickness = float(z.max() - z.min()) if z.numel() else 0.0
        rows = [cell[b, d].detach().double().norm() for d in range(3) if bool(pbc[b, d])]
        gap = max(GAP_PERIODS * float(max(rows)), 2.0 * thickness, 10.0, float(r_max))
        height[b] = thickness + gap
    return height


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
    pbc = batch[K.PBC]
    height = batch[K.LR_SLAB_HEIGHT]
    slab = height > 0
    periodic = pbc.all(dim=1) | slab  # a slab is summed in its padded cell (mlip.longrange.slab)
    cell = padded_cells(cell, pbc, height)
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
    # slabs: the Yeh-Berkowitz correction (4π/V) M_z z_i of the replicas' dipoles, M_z = Σ_j q_j z_j
    z = (positions * slab_normals(cell, pbc)[atom_graph]).sum(-1)
    dipole = torch.zeros_like(volume).index_add(0, atom_graph, charges * z)
    phi = phi + torch.where(slab[atom_graph], (4.0 * math.pi / volume * dipole)[atom_graph] * z, 0.0)
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
