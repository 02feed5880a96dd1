"""Energy, forces and stress of a large structure in spatial chunks, exactly, with memory set by the chunk size.

The energy is a sum of atomic energies, ``E = Σ_i E_i``, and with ``T`` message-passing layers ``E_i`` depends
only on the atoms within ``T`` hops of ``i`` in the neighbour graph. So the atoms are split into spatial blocks
("cores", about ``chunk_atoms`` each); for each block a free cluster is built from the core atoms and every
periodic image of an atom within ``T`` hops of them (the halo), with all edges whose receiver lies within ``T - 1``
hops (so every core atom and every atom feeding it sees its complete neighbourhood). Then, per cluster,

    E_core = Σ_{i ∈ core} E_i,    F_a -= ∂E_core/∂x_k  for every cluster atom k that is an image of a,
    σ += (1/V) Σ_k x_k ⊗ ∂E_core/∂x_k   (ASE's sign; translation invariance makes it origin-free),

summed over blocks: the energy, forces and stress of the whole structure, to rounding, while autograd only ever
holds one cluster. Cost: each halo atom is evaluated again with every block it borders, so larger blocks waste
less (a block of side ``s`` with a halo of width ``w = T r_max`` costs about ``((s + 2w)/s)³`` of its share).
Models with a long-range term are refused (their energy is not a sum of local terms).
"""

from __future__ import annotations

import math

import ase
import numpy as np
import torch

from mlip import keys as K
from mlip.data import neighbor_list, validate_structure
from mlip.errors import MLIPInputError

__all__ = ["chunked_evaluate"]


def chunked_evaluate(model, atoms: ase.Atoms, *, chunk_atoms: int = 8000, device: str = "cpu") -> dict:
    """``{"energy", "forces" [N, 3], "stress" [3, 3] (periodic cells)}``, float64, eV / eV/Å / eV/Å³, of ``atoms``
    by blocks of about ``chunk_atoms`` core atoms (module docstring). ``model`` is an mlip ``nn.Module``."""
    if getattr(model, "charge_head", None) is not None:
        raise MLIPInputError("chunked evaluation needs a local model; this one has a long-range term")
    if chunk_atoms < 1:
        raise MLIPInputError(f"chunk_atoms must be >= 1, got {chunk_atoms}")
    positions = np.asarray(atoms.positions, dtype=np.float64)
    cell, pbc = np.asarray(atoms.cell.array, dtype=np.float64), np.asarray(atoms.pbc, dtype=bool)
    validate_structure(positions, cell, pbc, where="chunked input")
    model.species.check(torch.as_tensor(atoms.numbers))
    edge_index, shifts = neighbor_list(positions, cell, pbc, model.r_max)
    hops = int(model.config.num_interactions)
    n = len(atoms)
    order = np.argsort(edge_index[1], kind="stable")  # edges grouped by receiver
    receivers_start = np.searchsorted(edge_index[1][order], np.arange(n + 1))
    energy, forces, virial = 0.0, np.zeros((n, 3)), np.zeros((3, 3))
    for core in _blocks(positions, cell, pbc, chunk_atoms):
        nodes, local_edges = _cluster(core, edge_index, shifts, order, receivers_start, hops)
        images = positions[nodes[:, 0]] + nodes[:, 1:].astype(np.float64) @ cell
        e, grad = _core_energy(model, atoms.numbers[nodes[:, 0]], images, local_edges, len(core), device)
        energy += e
        np.add.at(forces, nodes[:, 0], -grad)
        virial += images.T @ grad
    out = {"energy": energy, "forces": forces}
    if pbc.all() or (pbc.any() and abs(np.linalg.det(cell)) > 1e-12):
        volume = abs(np.linalg.det(cell))
        out["stress"] = 0.5 * (virial + virial.T) / volume
    return out


def _blocks(positions, cell, pbc, chunk_atoms: int):
    """Core atom indices of each spatial block (a grid over fractional or Cartesian coordinates)."""
    n = len(positions)
    count = max(1, math.ceil(n / chunk_atoms))
    if count == 1:
        yield np.arange(n)
        return
    if pbc.all():
        coords = np.linalg.solve(cell.T, positions.T).T % 1.0
    else:
        lo, hi = positions.min(axis=0), positions.max(axis=0)
        coords = (positions - lo) / np.maximum(hi - lo, 1e-9)
    per_axis = [1, 1, 1]
    while math.prod(per_axis) < count:  # split the longest block edge first
        lengths = (np.linalg.norm(cell, axis=1) if pbc.all() else np.ptp(positions, axis=0)) / per_axis
        per_axis[int(np.argmax(lengths))] += 1
    bins = np.minimum((coords * per_axis).astype(np.int64), np.array(per_axis) - 1)
    block = (bins[:, 0] * per_axis[1] + bins[:, 1]) * per_axis[2] + bins[:, 2]
    for b in np.unique(block):
        yield np.flatnonzero(block == b)


_OFF = 1 << 10  # image shifts are encoded in [-1024, 1024) per component


def _encode(atom: np.ndarray, shift: np.ndarray) -> np.ndarray:
    s = shift + _OFF
    return ((atom * (2 * _OFF) + s[:, 0]) * (2 * _OFF) + s[:, 1]) * (2 * _OFF) + s[:, 2]


def _cluster(core, edge_index, shifts, order, receivers_start, hops: int):
    """Cluster nodes ``[M, 4]`` (atom, image shift), the core first, and local edges ``[2, E']`` (sender,
    receiver) of every receiver within ``hops - 1`` hops of the core."""
    nodes = np.concatenate([core[:, None], np.zeros((len(core), 3), dtype=np.int64)], axis=1)
    codes = _encode(nodes[:, 0], nodes[:, 1:])
    frontier = np.arange(len(nodes))
    senders, receivers = [], []
    for _ in range(hops):
        atoms = nodes[frontier, 0]
        starts, counts = receivers_start[atoms], receivers_start[atoms + 1] - receivers_start[atoms]
        flat = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
        edges = order[flat]
        receiver = np.repeat(frontier, counts)
        sender_atom = edge_index[0][edges]
        sender_shift = shifts[edges] + nodes[receiver, 1:]
        sender_code = _encode(sender_atom, sender_shift)
        fresh, first = np.unique(sender_code, return_index=True)
        known = np.isin(fresh, codes)
        added = first[~known]
        nodes = np.concatenate(
            [nodes, np.stack([sender_atom[added], *sender_shift[added].T], axis=1)], axis=0
        )
        codes = np.concatenate([codes, sender_code[added]])
        sorter = np.argsort(codes)
        senders.append(sorter[np.searchsorted(codes, sender_code, sorter=sorter)])
        receivers.append(receiver)
        frontier = np.arange(len(nodes) - len(added), len(nodes))
    return nodes, np.stack([np.concatenate(senders), np.concatenate(receivers)])


def _core_energy(model, numbers, images, local_edges, n_core: int, device: str):
    """``(E_core, ∂E_core/∂x [M, 3])`` of one free cluster."""
    m = len(images)
    positions = torch.tensor(images, dtype=torch.float64, device=device, requires_grad=True)
    batch = {
        K.POSITIONS: positions,
        K.ATOMIC_NUMBERS: torch.as_tensor(numbers, dtype=torch.int64, device=device),
        K.CELL: torch.zeros(1, 3, 3, dtype=torch.float64, device=device),
        K.PBC: torch.zeros(1, 3, dtype=torch.bool, device=device),
        K.EDGE_INDEX: torch.as_tensor(local_edges, device=device),
        K.EDGE_SHIFTS: torch.zeros(local_edges.shape[1], 3, dtype=torch.float64, device=device),
        K.N_ATOMS: torch.tensor([m], device=device),
        K.BATCH: torch.zeros(m, dtype=torch.int64, device=device),
        K.TOTAL_CHARGE: torch.zeros(1, dtype=torch.float64, device=device),
    }
    out = model(batch, compute_forces=False, compute_stress=False)
    e_core = out[K.NODE_ENERGY][:n_core].sum()
    (grad,) = torch.autograd.grad(e_core, positions)
    return float(e_core.detach()), grad.detach().cpu().numpy()
