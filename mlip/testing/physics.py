"""Physics checks for any mlip energy model (``model(batch, compute_forces=, compute_stress=)``).

Every check returns a *relative* error (a float) so that a test states its tolerance explicitly:

* ``rotation_error`` / ``reflection_error`` / ``translation_error`` / ``permutation_error``: energy invariance,
  force and stress covariance, ``max|f(Qx) - Q f(x)| / max|f(x)|`` over energy, forces and stress;
* ``force_fd_error``: forces against central differences of the energy, ``F = -dE/dx``;
* ``stress_fd_error``: stress against central differences under symmetric strain, ``σ = (1/V) dE/dε``;
* ``batch_error``: one batch of N structures against N single evaluations;
* ``cutoff_smoothness``: energy and force of a dimer just inside the cutoff, relative to their values at contact.
"""

from __future__ import annotations

import ase
import numpy as np

from mlip import keys as K
from mlip.data import atoms_to_graph
from mlip.data.batch import batch_on

__all__ = [
    "predict",
    "random_rotation",
    "rotation_error",
    "reflection_error",
    "translation_error",
    "permutation_error",
    "force_fd_error",
    "stress_fd_error",
    "batch_error",
    "cutoff_continuity",
    "cutoff_smoothness",
]


def predict(model, atoms_list: list[ase.Atoms], *, stress: bool = False) -> list[dict[str, np.ndarray]]:
    """Energy, forces (and stress) of each structure, as float64 numpy arrays, from one batched call."""
    device = next(model.parameters()).device
    batch = batch_on([atoms_to_graph(a, model.r_max) for a in atoms_list], device)
    out = model(batch, compute_forces=True, compute_stress=stress)
    result, start = [], 0
    for g, a in enumerate(atoms_list):
        n = len(a)
        item = {
            "energy": out[K.ENERGY][g].item(),
            "forces": out[K.FORCES][start : start + n].detach().cpu().numpy(),
        }
        if stress:
            item["stress"] = out[K.STRESS][g].detach().cpu().numpy()
        result.append(item)
        start += n
    return result


def _rel(a: np.ndarray, b: np.ndarray, scale: float) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) / max(scale, 1e-300)


def _transform_error(model, atoms: ase.Atoms, q: np.ndarray, shift: np.ndarray | None = None) -> float:
    """Apply ``x -> x Q^T + shift``, ``cell -> cell Q^T`` and compare with the transformed outputs."""
    periodic = bool(atoms.pbc.any())
    moved = atoms.copy()
    moved.positions = atoms.positions @ q.T + (0 if shift is None else shift)
    moved.set_cell(atoms.cell.array @ q.T, scale_atoms=False)
    a, b = predict(model, [atoms, moved], stress=periodic)
    errs = [
        abs(a["energy"] - b["energy"]) / max(abs(a["energy"]), 1e-300),
        _rel(b["forces"], a["forces"] @ q.T, np.abs(a["forces"]).max()),
    ]
    if periodic:
        errs.append(_rel(b["stress"], q @ a["stress"] @ q.T, np.abs(a["stress"]).max()))
    return max(errs)


def random_rotation(seed: int = 0) -> np.ndarray:
    """A random proper rotation ``[3, 3]`` (det +1)."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def rotation_error(model, atoms: ase.Atoms, seed: int = 0) -> float:
    """Largest relative violation of ``E(xQᵀ) = E(x)``, ``F(xQᵀ) = F(x) Qᵀ`` and ``σ(xQᵀ) = Q σ(x) Qᵀ`` (cell
    rotated too) for a random proper rotation ``Q`` (``seed``), each relative to its scale: ``|E|``, the largest
    force component, the largest stress entry."""
    return _transform_error(model, atoms, random_rotation(seed))


def reflection_error(model, atoms: ase.Atoms, seed: int = 0) -> float:
    """Improper rotation (a rotation times inversion, det -1)."""
    return _transform_error(model, atoms, -random_rotation(seed))


def translation_error(model, atoms: ase.Atoms, seed: int = 0) -> float:
    """As :func:`rotation_error` for a random rigid translation (about 3 Å in each direction)."""
    shift = np.random.default_rng(seed).normal(scale=3.0, size=3)
    return _transform_error(model, atoms, np.eye(3), shift)


def permutation_error(model, atoms: ase.Atoms, seed: int = 0) -> float:
    """Largest relative change of the energy, and of the forces (permuted back), when the atoms are listed in a
    random order (``seed``)."""
    perm = np.random.default_rng(seed).permutation(len(atoms))
    a, b = predict(model, [atoms, atoms[perm]])
    return max(
        abs(a["energy"] - b["energy"]) / max(abs(a["energy"]), 1e-300),
        _rel(b["forces"], a["forces"][perm], np.abs(a["forces"]).max()),
    )


def _energy(model, atoms: ase.Atoms) -> float:
    return predict(model, [atoms])[0]["energy"]


def force_fd_error(model, atoms: ase.Atoms, h: float = 1e-4, max_atoms: int = 4) -> float:
    """Forces of the first ``max_atoms`` atoms against ``-(E(x+h) - E(x-h)) / 2h``."""
    forces = predict(model, [atoms])[0]["forces"]
    fd = np.zeros((min(max_atoms, len(atoms)), 3))
    for i in range(fd.shape[0]):
        for d in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, d] += h
            minus.positions[i, d] -= h
            fd[i, d] = -(_energy(model, plus) - _energy(model, minus)) / (2 * h)
    return _rel(forces[: fd.shape[0]], fd, np.abs(forces).max())


def stress_fd_error(model, atoms: ase.Atoms, h: float = 1e-5) -> float:
    """Stress against ``(E(ε + h e_ij) - E(ε - h e_ij)) / (2 h V)`` with symmetric strains ``e_ij``."""
    stress = predict(model, [atoms], stress=True)[0]["stress"]
    fd = np.zeros((3, 3))
    volume = atoms.get_volume()
    for i in range(3):
        for j in range(i, 3):
            e = np.zeros((3, 3))
            e[i, j] = e[j, i] = 1.0 if i == j else 0.5
            values = []
            for sign in (1, -1):
                strained = atoms.copy()
                strained.set_cell(atoms.cell.array @ (np.eye(3) + sign * h * e), scale_atoms=True)
                values.append(_energy(model, strained))
            fd[i, j] = fd[j, i] = (values[0] - values[1]) / (2 * h * volume)
    return _rel(stress, fd, np.abs(stress).max())


def batch_error(model, atoms_list: list[ase.Atoms]) -> float:
    """One batched call against one call per structure (energies, forces, and stress where periodic)."""
    periodic = all(a.pbc.any() for a in atoms_list)
    together = predict(model, atoms_list, stress=periodic)
    errs = []
    for a, t in zip(atoms_list, together):
        s = predict(model, [a], stress=periodic)[0]
        errs.append(abs(s["energy"] - t["energy"]) / max(abs(s["energy"]), 1e-300))
        errs.append(_rel(s["forces"], t["forces"], np.abs(s["forces"]).max()))
        if periodic:
            errs.append(_rel(s["stress"], t["stress"], np.abs(s["stress"]).max()))
    return max(errs)


def cutoff_continuity(model, z1: int, z2: int, *, delta: float = 1e-5) -> tuple[float, float]:
    """A ``z1``–``z2`` dimer just inside and just outside ``r_max``: the jumps in energy and force across the
    cutoff relative to the contact values (at 1.5 Å). Both go to zero with ``delta`` for any continuous model,
    including one whose long-range term keeps a finite interaction beyond ``r_max``.
    """
    r_max = model.r_max

    def dimer(r: float) -> ase.Atoms:
        return ase.Atoms(numbers=[z1, z2], positions=[[0, 0, 0], [r, 0, 0]])

    near, inside, outside = predict(model, [dimer(1.5), dimer(r_max - delta), dimer(r_max + delta)])
    e_jump = abs(inside["energy"] - outside["energy"]) / max(abs(near["energy"] - outside["energy"]), 1e-300)
    f_jump = np.abs(inside["forces"] - outside["forces"]).max() / max(np.abs(near["forces"]).max(), 1e-300)
    return float(e_jump), float(f_jump)


def cutoff_smoothness(model, z: int, *, delta: float = 1e-3) -> tuple[float, float]:
    """A dimer of element ``z`` at ``r_max - delta``: ``(|E - E_far| / |E(1.5 Å) - E_far|, |F| / |F(1.5 Å)|)``.

    Both ratios go to zero with ``delta`` for an energy that is smooth at the cutoff.
    """
    r_max = model.r_max

    def dimer(r: float) -> ase.Atoms:
        return ase.Atoms(numbers=[z, z], positions=[[0, 0, 0], [r, 0, 0]])

    near, edge, far = predict(model, [dimer(1.5), dimer(r_max - delta), dimer(r_max + 1.0)])
    e_ratio = abs(edge["energy"] - far["energy"]) / max(abs(near["energy"] - far["energy"]), 1e-300)
    f_ratio = np.abs(edge["forces"]).max() / max(np.abs(near["forces"]).max(), 1e-300)
    return float(e_ratio), float(f_ratio)
