"""Energy -> forces, stress and virials by autograd through a symmetric strain (one code path for all).

Given an energy model ``E(x, h)`` of positions ``x`` and cell ``h`` (rows are lattice vectors), apply a
symmetric strain ``ε`` to both, ``x' = x (1 + ε)``, ``h' = h (1 + ε)``, and differentiate at ``ε = 0``:

.. math::  F = -\\partial E / \\partial x, \\qquad W = -\\partial E / \\partial ε, \\qquad σ = -W / V

with ``V = |det h|`` (Knuth et al., Comput. Phys. Commun. 190, 33 (2015)). ``σ`` follows ASE's sign
(:mod:`mlip.keys`); structures without volume (free molecules) get zero stress.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mlip import keys as K

__all__ = ["edge_vectors", "energy_and_gradients"]


def edge_vectors(positions: torch.Tensor, cell: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """``r_ij = x_j - x_i + S_ij @ cell`` ``[E, 3]`` in the dtype of ``positions`` (float64 by design)."""
    sender, receiver = batch[K.EDGE_INDEX]
    graph_of_edge = batch[K.BATCH][receiver]
    shifts = torch.einsum("ei,eij->ej", batch[K.EDGE_SHIFTS].to(positions.dtype), cell[graph_of_edge])
    return positions[sender] - positions[receiver] + shifts


def energy_and_gradients(
    node_energy_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], dict[str, torch.Tensor]],
    batch: dict[str, torch.Tensor],
    *,
    compute_forces: bool = True,
    compute_stress: bool = False,
    training: bool = False,
) -> dict[str, torch.Tensor]:
    """Run ``node_energy_fn(edge_vectors, positions, cell)`` and derive the requested outputs.

    ``node_energy_fn`` gets the (strained) edge vectors ``[E, 3]``, positions ``[N, 3]`` and cells ``[G, 3, 3]``
    and returns a dict with ``NODE_ENERGY [N]`` (eV) and any other per-atom outputs (``CHARGES``), which are
    passed through. Returns ``ENERGY [G]`` (float64), ``NODE_ENERGY``, and when asked ``FORCES [N, 3]``,
    ``STRESS [G, 3, 3]``, ``VIRIALS [G, 3, 3]`` (float64). ``training=True`` keeps the graph for a loss on
    forces/stress.
    """
    positions = batch[K.POSITIONS].to(torch.float64)
    cell = batch[K.CELL].to(torch.float64)
    n_graphs = cell.shape[0]
    inputs = []
    if compute_forces:
        positions = positions.detach().requires_grad_(True)
        inputs.append(positions)
    strain = None
    if compute_stress:
        strain = torch.zeros(n_graphs, 3, 3, dtype=torch.float64, device=cell.device, requires_grad=True)
        inputs.append(strain)
        sym = 0.5 * (strain + strain.transpose(1, 2))
        x = positions + torch.einsum("ni,nij->nj", positions, sym[batch[K.BATCH]])
        h = cell + torch.bmm(cell, sym)
    else:
        x, h = positions, cell
    out = dict(node_energy_fn(edge_vectors(x, h, batch), x, h))
    node_energy = out[K.NODE_ENERGY].to(torch.float64)
    energy = torch.zeros(n_graphs, dtype=torch.float64, device=cell.device).index_add(
        0, batch[K.BATCH], node_energy
    )
    out.update({K.ENERGY: energy, K.NODE_ENERGY: node_energy})
    if not inputs:
        return out
    grads = torch.autograd.grad(
        energy.sum(), inputs, create_graph=training, retain_graph=training, allow_unused=True
    )
    grads = [torch.zeros_like(t) if g is None else g for g, t in zip(grads, inputs)]
    if compute_forces:
        out[K.FORCES] = -grads[0]
    if compute_stress:
        de_deps = grads[-1]
        volume = torch.linalg.det(cell).abs()
        safe = torch.where(volume > 1e-12, volume, torch.ones_like(volume))
        out[K.VIRIALS] = -de_deps
        out[K.STRESS] = torch.where((volume > 1e-12)[:, None, None], de_deps / safe[:, None, None], 0.0)
    return out
