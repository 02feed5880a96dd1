"""A neighbour list that is reused across calls (Verlet skin) and still gives exactly the fresh list's edges.

Built with the cutoff ``r_max + skin`` at reference positions ``x0`` and box ``B0``; later calls only filter that
candidate list by the current distances, until a pair that was not a candidate could have come within ``r_max``.

The rebuild test covers moving atoms, atoms wrapped back into the cell and a changing cell (NPT). Write the current
box as ``B = B0 M`` (``M = B0⁻¹ B``, the homogeneous deformation since the build; row-vector convention of
:mod:`mlip.keys`), and each atom's position as ``x = (x0 M + u) + n B``: ``n`` the whole lattice translations it
made (integers, atoms wrapped across a face), ``u`` what is left, its own displacement. For every candidate pair the
list stays valid with the shifts ``S' = S - n_j + n_i``; for every pair that was not a candidate (``|r0| >= r_max +
skin``) its current vector is ``r = r0 M + u_j - u_i``, so ::

    |r| >= (r_max + skin) σ_min(M) - 2 max|u|,

and the list is reused while that bound is still ``>= r_max``. Without a cell change it is the textbook rule (no
atom moved more than skin/2). Along non-periodic directions nothing wraps (``n = 0``); a structure that is not
periodic in all three directions is rebuilt when its periodic lattice vectors change at all.
"""

from __future__ import annotations

import numpy as np

from mlip.data.neighbors import neighbor_list

__all__ = ["VerletNeighborList"]


class VerletNeighborList:
    """``VerletNeighborList(skin=0.5)``: call it like :func:`mlip.data.neighbor_list`.

    Args:
        skin: Å added to the cutoff when the list is built (0: build every call).

    ``nl(positions, cell, pbc, r_max)`` returns ``edge_index [2, E]`` and integer ``shifts [E, 3]``, the same edges
    as ``neighbor_list(positions, cell, pbc, r_max)`` (order may differ). ``builds`` and ``calls`` count how often
    the list was built and asked for.
    """

    def __init__(self, skin: float = 0.5):
        if not np.isfinite(skin) or skin < 0:
            raise ValueError(f"skin must be a finite number >= 0 Å, got {skin}")
        self.skin = float(skin)
        self.builds = 0
        self.calls = 0
        self._ref: dict | None = None

    def reset(self) -> None:
        """Forget the stored list; the next call builds a new one."""
        self._ref = None

    def __call__(
        self, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, r_max: float
    ) -> tuple[np.ndarray, np.ndarray]:
        positions = np.asarray(positions, dtype=np.float64)
        cell = np.asarray(cell, dtype=np.float64)
        pbc = np.asarray(pbc, dtype=bool)
        self.calls += 1
        wraps = self._reusable(positions, cell, pbc, r_max)
        if wraps is None:
            edge_index, shifts = neighbor_list(positions, cell, pbc, r_max + self.skin)
            if self.skin == 0:
                self.builds += 1
                return edge_index, shifts
            self._ref = dict(
                x0=positions.copy(), cell0=cell.copy(), pbc=pbc.copy(), r_max=float(r_max), box0=_box(cell, pbc),
                edge_index=edge_index, shifts=shifts, cartesian=shifts.astype(np.float64) @ cell,
            )  # fmt: skip
            self.builds += 1
            wraps = np.zeros((len(positions), 3), dtype=np.int64)
        ref = self._ref
        j, i = ref["edge_index"]
        # continuous positions y = x - n B: the stored shifts hold for them (module docstring)
        unwrapped = positions - wraps @ cell if wraps.any() else positions
        offsets = ref["cartesian"] if np.array_equal(cell, ref["cell0"]) else ref["shifts"] @ cell
        vectors = np.take(unwrapped, j, axis=0) - np.take(unwrapped, i, axis=0) + offsets
        keep = np.flatnonzero(np.einsum("ij,ij->i", vectors, vectors) < r_max * r_max)
        edge_index, shifts = np.take(ref["edge_index"], keep, axis=1), np.take(ref["shifts"], keep, axis=0)
        if wraps.any():
            shifts = shifts - wraps[edge_index[0]] + wraps[edge_index[1]]
        return edge_index, shifts

    def _reusable(self, positions, cell, pbc, r_max) -> np.ndarray | None:
        """``n [N, 3]`` int64, the whole lattice translations of each atom since the build, or ``None`` when the
        list must be rebuilt."""
        ref = self._ref
        if ref is None or self.skin == 0 or ref["r_max"] != float(r_max):
            return None
        if len(positions) != len(ref["x0"]) or not np.array_equal(pbc, ref["pbc"]):
            return None
        if pbc.any() and not pbc.all() and not np.array_equal(cell[pbc], ref["cell0"][pbc]):
            return None
        box0 = ref["box0"]
        if not pbc.any():
            wraps, own, sigma_min = np.zeros((len(positions), 3)), positions - ref["x0"], 1.0
        else:
            same_box = not pbc.all() or np.array_equal(cell, ref["cell0"])
            box = box0 if same_box else cell
            deform = np.eye(3) if same_box else np.linalg.solve(box0, box)  # M = B0⁻¹ B
            frac = np.linalg.solve(box.T, (positions - ref["x0"] @ deform).T).T
            wraps = np.where(pbc, np.rint(frac), 0.0)  # n
            own = positions - wraps @ box - ref["x0"] @ deform  # u
            sigma_min = 1.0 if same_box else float(np.linalg.svd(deform, compute_uv=False).min())
        max_u = float(np.sqrt(np.einsum("ij,ij->i", own, own).max())) if len(own) else 0.0
        if (r_max + self.skin) * sigma_min - 2.0 * max_u < r_max + 1e-9:
            return None
        return wraps.astype(np.int64)


def _box(cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """An invertible box: the lattice vectors along periodic directions, orthonormal completions elsewhere."""
    if pbc.all():
        return cell.copy()
    box = np.eye(3)
    if pbc.any():
        periodic = cell[pbc]
        _, _, vh = np.linalg.svd(periodic)
        box[pbc] = periodic
        box[~pbc] = vh[len(periodic) :]
    return box
