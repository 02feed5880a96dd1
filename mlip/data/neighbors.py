"""Neighbour lists (vesin), periodic, free or mixed, with edge conventions from :mod:`mlip.keys`."""

from __future__ import annotations

import numpy as np

__all__ = ["neighbor_list"]


def neighbor_list(
    positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, r_max: float
) -> tuple[np.ndarray, np.ndarray]:
    """All ordered pairs closer than ``r_max``, images included.

    Args:
        positions: ``[N, 3]`` Å.
        cell: ``[3, 3]`` Å, lattice vectors as rows (ignored along non-periodic directions).
        pbc: ``[3]`` bool.
        r_max: cutoff, Å.

    Returns:
        ``edge_index [2, E]`` int64 (row 0 sender j, row 1 receiver i) and ``shifts [E, 3]`` int64 with
        ``r_ij = x_j - x_i + shifts @ cell``. Cells smaller than ``r_max`` give many images of one pair; an atom
        is its own neighbour only through a non-zero shift.
    """
    from vesin import NeighborList

    pbc = np.asarray(pbc, dtype=bool)
    box = np.array(cell, dtype=np.float64, copy=True)
    if not pbc.any():
        box = np.zeros((3, 3))
    elif not pbc.all():
        box = _complete_box(box, pbc, np.asarray(positions), r_max)
    nl = NeighborList(cutoff=float(r_max), full_list=True)
    i, j, s = nl.compute(
        points=np.asarray(positions, dtype=np.float64), box=box, periodic=pbc, quantities="ijS"
    )
    edge_index = np.stack([j, i]).astype(np.int64)
    return edge_index, s.astype(np.int64)


def _complete_box(box: np.ndarray, pbc: np.ndarray, positions: np.ndarray, r_max: float) -> np.ndarray:
    """Replace the non-periodic cell vectors by long vectors orthogonal to the periodic ones.

    Shifts along non-periodic directions are always zero, so this changes no edge vector; it only gives vesin
    the full, non-singular box it needs.
    """
    periodic = box[pbc]
    _, _, vh = np.linalg.svd(periodic)
    complement = vh[len(periodic) :]
    span = (float(np.ptp(positions, axis=0).max()) if len(positions) else 0.0) + 2 * r_max + 1.0
    out = box.copy()
    for k, d in enumerate(np.flatnonzero(~pbc)):
        out[d] = span * complement[k]
    return out
