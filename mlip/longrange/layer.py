"""The Coulomb energy of a batch of structures, per atom, for a model's long-range term.

``E_i = (k_e / 2) q_i φ_i`` (eV) with ``φ`` from :mod:`mlip.longrange.api` for every structure of the batch:
periodic structures go through one batched Ewald call, free ones through the direct sum or Chebyshev–Tucker.
Summed over a structure's atoms this is its Coulomb energy; the split per atom is the usual one (half of each
pair energy to each partner) and is what ``NODE_ENERGY`` reports.
"""

from __future__ import annotations

import torch

from mlip.longrange.api import AUTO_DIRECT_MAX_ATOMS, Method, split_free_potential
from mlip.longrange.config import LongRangeConfig
from mlip.longrange.constants import K_E
from mlip.longrange.direct import coulomb_potential_direct
from mlip.longrange.ewald import ewald_potential

__all__ = ["coulomb_node_energies"]


def coulomb_node_energies(
    positions: torch.Tensor,
    charges: torch.Tensor,
    cell: torch.Tensor,
    pbc: torch.Tensor,
    batch: torch.Tensor,
    config: LongRangeConfig,
) -> torch.Tensor:
    """Per-atom Coulomb energies ``[N]`` (eV).

    Args:
        positions: ``[N, 3]`` Å. charges: ``[N]`` e. cell: ``[G, 3, 3]`` Å (rows are lattice vectors).
        pbc: ``[G, 3]`` bool; each structure must be periodic in all three directions or in none.
        batch: ``[N]`` structure index of each atom.
        config: the method, ``σ`` and accuracy.
    """
    n_graphs = cell.shape[0]
    periodic = pbc.all(dim=1)
    mixed = pbc.any(dim=1) & ~periodic
    if mixed.any():
        b = int(torch.nonzero(mixed)[0])
        raise ValueError(
            f"structure {b} has pbc={pbc[b].tolist()}: the long-range term needs full or no periodicity "
            "(pad a slab's vacuum direction and make it periodic)"
        )
    method = Method(config.kind)
    phi = torch.zeros_like(charges)
    if periodic.any():
        if method not in (Method.AUTO, Method.EWALD):
            raise ValueError(
                f"long_range.kind {method.value!r} cannot handle periodic structures; use 'ewald'"
            )
        graphs = torch.nonzero(periodic).squeeze(1)
        remap = torch.full((n_graphs,), -1, dtype=torch.long, device=batch.device)
        remap[graphs] = torch.arange(len(graphs), device=batch.device)
        atoms = torch.nonzero(periodic[batch]).squeeze(1)
        phi_p = ewald_potential(
            positions[atoms], charges[atoms], cell[graphs], remap[batch[atoms]],
            sigma=config.sigma, accuracy=config.accuracy,
        )  # fmt: skip
        phi = phi.index_add(0, atoms, phi_p)
    for b in torch.nonzero(~periodic).squeeze(1).tolist():
        atoms = torch.nonzero(batch == b).squeeze(1)
        phi = phi.index_add(0, atoms, _free_potential(positions[atoms], charges[atoms], method, config))
    return 0.5 * K_E * charges * phi


def _free_potential(
    x: torch.Tensor, q: torch.Tensor, method: Method, config: LongRangeConfig
) -> torch.Tensor:
    if method is Method.EWALD:
        raise ValueError("long_range.kind 'ewald' cannot handle a free structure; use 'auto'")
    use_direct = method is Method.DIRECT or (method is Method.AUTO and len(x) <= AUTO_DIRECT_MAX_ATOMS)
    if use_direct:
        return coulomb_potential_direct(x, q)
    return split_free_potential(x, q, sigma=config.sigma, accuracy=config.accuracy)
