"""Labelled frames and atomic graphs (``dict[str, Tensor]`` with the keys of :mod:`mlip.keys`).

Geometry is kept in float64 whatever dtype the network runs in (design note "Numbers and precision").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import ase
import numpy as np
import torch

from mlip import keys as K
from mlip.data.neighbors import neighbor_list
from mlip.errors import MLIPInputError

MIN_DISTANCE = 0.1
"""Å. Two atoms closer than this are reported as overlapping."""


__all__ = [
    "Frame",
    "weight_by_config_type",
    "check_config_types_present",
    "validate_structure",
    "check_overlaps",
    "checked_edges",
    "atoms_to_graph",
    "frame_to_graph",
    "MIN_DISTANCE",
]


@dataclass
class Frame:
    """One structure with its reference labels (units: eV, eV/Å, eV/Å³ with ASE's stress sign).

    Attributes:
        atoms: the structure (positions, numbers, cell, pbc).
        energy: total energy, or None when unlabelled.
        forces: ``[N, 3]`` or None.
        stress: ``[3, 3]`` or None.
        charges: ``[N]`` reference partial charges (e) or None; the net charge is ``atoms.info["charge"]``.
        fixed: ``[N]`` bool, atoms held fixed in the reference calculation (their forces are left out of the loss
            and the metrics), or None for none.
        weight: overall configuration weight (``config_weight``).
        config_type: free-form label (``IsolatedAtom`` marks isolated-atom reference frames).
        info: other metadata (kept for the user, never read by the models).
        source: where the frame was read, ``"file.xyz[17]"`` (named in every error about it); None for frames
            made in memory.
    """

    atoms: ase.Atoms
    energy: float | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    charges: np.ndarray | None = None
    fixed: np.ndarray | None = None
    weight: float = 1.0
    config_type: str | None = None
    info: dict = field(default_factory=dict)
    source: str | None = None


def weight_by_config_type(frame: Frame, weights: dict[str, float]) -> Frame:
    """``frame`` with its ``weight`` multiplied by ``weights[frame.config_type]`` (unchanged when its type is not
    listed); the loss weight of mace-torch's ``config_type_weights``."""
    w = weights.get(frame.config_type) if frame.config_type is not None else None
    return frame if w is None else dataclasses.replace(frame, weight=frame.weight * float(w))


def check_config_types_present(weights: dict[str, float], present: set, *, where: str) -> None:
    """Refuse ``data.config_type_weights`` naming a type that no frame of ``where`` has (``present``)."""
    missing = sorted(set(weights) - set(present))
    if missing:
        have = sorted(str(t) for t in present if t is not None)
        raise MLIPInputError(
            f"data.config_type_weights names {missing}, which no training frame of {where} has "
            f"(config_type values there: {have[:20] or 'none'})"
        )


def validate_structure(
    positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, *, where: str = "structure"
) -> None:
    """Raise ``ValueError`` for geometry no model should see: empty, NaN/inf coordinates, singular cell."""
    if len(positions) == 0:
        raise MLIPInputError(f"{where}: has no atoms")
    bad = np.flatnonzero(~np.isfinite(positions).all(axis=1))
    if len(bad):
        raise MLIPInputError(f"{where}: positions of atoms {bad[:10].tolist()} are NaN or infinite")
    if not np.isfinite(cell).all():
        raise MLIPInputError(f"{where}: the cell contains NaN or infinite values")
    if pbc.any():
        periodic = cell[pbc]
        if np.linalg.matrix_rank(periodic, tol=1e-6) < len(periodic):
            raise MLIPInputError(
                f"{where}: the cell is singular along its periodic directions "
                f"(pbc={pbc.tolist()}, cell={cell.round(6).tolist()}); give non-zero, independent lattice vectors"
            )


def check_overlaps(edge_index: np.ndarray, vectors: np.ndarray, where: str, min_distance: float) -> None:
    """Raise :class:`MLIPInputError` naming the closest pair when an edge ``vectors [E, 3]`` (Å) is shorter than
    ``min_distance`` Å (overlapping atoms, or positions not in Å)."""
    if len(vectors) == 0:
        return
    d = np.linalg.norm(vectors, axis=1)
    k = int(np.argmin(d))
    if d[k] < min_distance:
        j, i = edge_index[:, k]
        raise MLIPInputError(
            f"{where}: atoms {i} and {j} are {d[k]:.4f} Å apart (overlapping atoms; minimum is {min_distance} Å; "
            "positions must be Å)"
        )


def checked_edges(
    positions: np.ndarray,
    cell: np.ndarray,
    pbc: np.ndarray,
    r_max: float,
    *,
    where: str = "structure",
    min_distance: float = MIN_DISTANCE,
    neighbors: Callable | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(edge_index [2, E], shifts [E, 3])`` within ``r_max`` Å (:func:`~mlip.data.neighbors.neighbor_list`, or
    ``neighbors`` with its signature) of a structure checked first (:func:`validate_structure`) and then for
    overlapping atoms (:func:`check_overlaps`): every graph mlip builds goes through here."""
    validate_structure(positions, cell, pbc, where=where)
    edge_index, shifts = (neighbors or neighbor_list)(positions, cell, pbc, r_max)
    vectors = positions[edge_index[0]] - positions[edge_index[1]] + shifts @ cell
    check_overlaps(edge_index, vectors, where, min_distance)
    return edge_index, shifts


def atoms_to_graph(
    atoms: ase.Atoms,
    r_max: float,
    *,
    where: str = "structure",
    min_distance: float = MIN_DISTANCE,
    neighbors: Callable | None = None,
) -> dict[str, torch.Tensor]:
    """Graph of ``atoms`` with edges within ``r_max`` Å (no labels). See :mod:`mlip.keys` for the fields.

    The net charge ``TOTAL_CHARGE`` is ``atoms.info["charge"]`` (0 when absent), as in ASE and fairchem.
    ``neighbors`` replaces :func:`~mlip.data.neighbors.neighbor_list` (same signature), e.g. a
    :class:`~mlip.data.verlet.VerletNeighborList` that is reused across the steps of a simulation.
    """
    positions = np.asarray(atoms.get_positions(), dtype=np.float64)
    cell = np.asarray(atoms.get_cell().array, dtype=np.float64)
    pbc = np.asarray(atoms.get_pbc(), dtype=bool)
    edge_index, shifts = checked_edges(
        positions, cell, pbc, r_max, where=where, min_distance=min_distance, neighbors=neighbors
    )
    n = len(atoms)
    total_charge = float(np.asarray(atoms.info.get("charge", 0.0)).reshape(()))
    if not np.isfinite(total_charge):
        raise MLIPInputError(f"{where}: atoms.info['charge'] is {total_charge}")
    return {
        K.TOTAL_CHARGE: torch.tensor([total_charge], dtype=torch.float64),
        K.POSITIONS: torch.from_numpy(positions),
        K.ATOMIC_NUMBERS: torch.from_numpy(np.asarray(atoms.numbers, dtype=np.int64)),
        K.CELL: torch.from_numpy(cell).unsqueeze(0),
        K.PBC: torch.from_numpy(pbc).unsqueeze(0),
        K.EDGE_INDEX: torch.from_numpy(edge_index),
        K.EDGE_SHIFTS: torch.from_numpy(shifts.astype(np.float64)),
        K.N_ATOMS: torch.tensor([n], dtype=torch.int64),
    }


def frame_to_graph(frame: Frame, r_max: float, *, where: str = "frame") -> dict[str, torch.Tensor]:
    """Graph with labels. Missing labels are stored as zeros with a zero loss weight (masked, never used)."""
    g = atoms_to_graph(frame.atoms, r_max, where=where)
    n = len(frame.atoms)
    f64 = torch.float64
    g[K.ENERGY] = torch.tensor([frame.energy if frame.energy is not None else 0.0], dtype=f64)
    g[K.ENERGY_WEIGHT] = torch.tensor([1.0 if frame.energy is not None else 0.0], dtype=f64)
    forces = np.zeros((n, 3)) if frame.forces is None else np.asarray(frame.forces, dtype=np.float64)
    if forces.shape != (n, 3):
        raise MLIPInputError(f"{where}: forces have shape {forces.shape}, expected ({n}, 3)")
    g[K.FORCES] = torch.from_numpy(forces.copy())
    g[K.FORCES_WEIGHT] = torch.tensor([1.0 if frame.forces is not None else 0.0], dtype=f64)
    fixed = (
        np.zeros(n, dtype=bool) if frame.fixed is None else np.asarray(frame.fixed, dtype=bool).reshape(-1)
    )
    if fixed.shape != (n,):
        raise MLIPInputError(f"{where}: the fixed-atom mask has shape {fixed.shape}, expected ({n},)")
    g[K.FORCES_MASK] = torch.from_numpy((~fixed).astype(np.float64))
    stress = np.zeros((3, 3)) if frame.stress is None else np.asarray(frame.stress, dtype=np.float64)
    g[K.STRESS] = torch.from_numpy(stress.reshape(1, 3, 3).copy())
    g[K.STRESS_WEIGHT] = torch.tensor([1.0 if frame.stress is not None else 0.0], dtype=f64)
    charges = (
        np.zeros(n) if frame.charges is None else np.asarray(frame.charges, dtype=np.float64).reshape(-1)
    )
    if charges.shape != (n,):
        raise MLIPInputError(f"{where}: charges have shape {charges.shape}, expected ({n},)")
    g[K.CHARGES] = torch.from_numpy(charges.copy())
    g[K.CHARGES_WEIGHT] = torch.tensor([1.0 if frame.charges is not None else 0.0], dtype=f64)
    g[K.WEIGHT] = torch.tensor([frame.weight], dtype=f64)
    for name in (K.ENERGY, K.FORCES, K.STRESS, K.CHARGES):
        if not torch.isfinite(g[name]).all():
            raise MLIPInputError(f"{where}: the {name} label contains NaN or infinite values")
    return g
