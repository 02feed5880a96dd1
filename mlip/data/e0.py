"""Isolated-atom (reference) energies E0: from isolated-atom frames, a user dict, or least squares."""

from __future__ import annotations

import numpy as np

from mlip.data.graph import Frame
from mlip.errors import MLIPInputError

__all__ = ["fit_e0_least_squares", "resolve_e0", "solve_normal_equations"]


def _counts(frames: list[Frame], zs: list[int]) -> tuple[np.ndarray, np.ndarray]:
    labelled = [f for f in frames if f.energy is not None]
    counts = np.array([[np.sum(f.atoms.numbers == z) for z in zs] for f in labelled], dtype=np.float64)
    return counts.reshape(len(labelled), len(zs)), np.array([f.energy for f in labelled], dtype=np.float64)


def solve_normal_equations(ata: np.ndarray, aty: np.ndarray, atomic_numbers: list[int]) -> dict[int, float]:
    """The least-squares E0s from the normal equations ``A^T A e = A^T y`` (:mod:`mlip.data.statistics`): the
    minimum-norm solution, which is that of ``A e ≈ y`` itself (``pinv(A^T A) A^T = pinv(A)``)."""
    sol, *_ = np.linalg.lstsq(ata, aty, rcond=None)
    return {int(z): float(e) for z, e in zip(atomic_numbers, sol)}


def fit_e0_least_squares(frames: list[Frame], atomic_numbers: list[int]) -> dict[int, float]:
    """``argmin_e sum_f (E_f - sum_Z n_{f,Z} e_Z)^2`` over labelled frames (mace-torch's ``E0s="average"``).

    Returns ``{Z: e_Z}`` in eV.
    """
    zs = list(atomic_numbers)
    counts, energies = _counts(frames, zs)
    if not len(energies):
        raise MLIPInputError("cannot fit E0s by least squares: no frame has an energy label")
    return solve_normal_equations(counts.T @ counts, counts.T @ energies, zs)


def resolve_e0(
    spec: str | dict,
    *,
    frames: list[Frame] | None = None,
    isolated: dict[int, float],
    atomic_numbers: list[int],
    normal_equations: tuple[np.ndarray, np.ndarray, float] | None = None,
) -> dict[int, float]:
    """E0 per element from ``spec``: ``"isolated"`` (isolated-atom frames), ``"average"`` (least squares over
    ``frames``, or from ``normal_equations`` ``(A^T A, A^T y, labelled frames)`` over ``atomic_numbers`` when
    given), ``"zero"``, or a dict ``{Z or symbol: eV}``. Every element of ``atomic_numbers`` must get one."""
    from ase.data import atomic_numbers as symbol_to_z
    from ase.data import chemical_symbols

    if isinstance(spec, dict):
        e0 = {
            int(symbol_to_z[k]) if isinstance(k, str) and not k.isdigit() else int(k): float(v)
            for k, v in spec.items()
        }
    elif spec == "isolated":
        e0 = dict(isolated)
    elif spec == "average" and normal_equations is not None:
        ata, aty, n_labelled = normal_equations
        if not n_labelled:
            raise MLIPInputError("cannot fit E0s by least squares: no training frame has an energy label")
        e0 = solve_normal_equations(ata, aty, atomic_numbers)
    elif spec == "average":
        e0 = fit_e0_least_squares(frames or [], atomic_numbers)
    elif spec == "zero":
        e0 = {z: 0.0 for z in atomic_numbers}
    else:
        raise MLIPInputError(f"unknown E0s option {spec!r}: use 'isolated', 'average', 'zero' or a dict")
    missing = [chemical_symbols[z] for z in atomic_numbers if z not in e0]
    if missing:
        raise MLIPInputError(
            f"no E0 for elements {missing} (E0s={spec!r}); add isolated-atom frames "
            "(config_type=IsolatedAtom), give a dict, or use E0s: average"
        )
    return {z: e0[z] for z in atomic_numbers}
