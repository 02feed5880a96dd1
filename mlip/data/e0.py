"""Isolated-atom (reference) energies E0: from isolated-atom frames, a user dict, or least squares."""

from __future__ import annotations

import numpy as np

from mlip.data.graph import Frame
from mlip.errors import MLIPInputError

__all__ = ["fit_e0_least_squares", "resolve_e0"]


def fit_e0_least_squares(frames: list[Frame], atomic_numbers: list[int]) -> dict[int, float]:
    """``argmin_e sum_f (E_f - sum_Z n_{f,Z} e_Z)^2`` over labelled frames (mace-torch's ``E0s="average"``).

    Returns ``{Z: e_Z}`` in eV.
    """
    labelled = [f for f in frames if f.energy is not None]
    if not labelled:
        raise MLIPInputError("cannot fit E0s by least squares: no frame has an energy label")
    zs = list(atomic_numbers)
    counts = np.array([[np.sum(f.atoms.numbers == z) for z in zs] for f in labelled], dtype=np.float64)
    energies = np.array([f.energy for f in labelled])
    e0, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return {z: float(e) for z, e in zip(zs, e0)}


def resolve_e0(
    spec: str | dict, *, frames: list[Frame], isolated: dict[int, float], atomic_numbers: list[int]
) -> dict[int, float]:
    """E0 per element from ``spec``: ``"isolated"`` (isolated-atom frames), ``"average"`` (least squares over
    ``frames``), ``"zero"``, or a dict ``{Z or symbol: eV}``. Every element of ``atomic_numbers`` must get one."""
    from ase.data import atomic_numbers as symbol_to_z
    from ase.data import chemical_symbols

    if isinstance(spec, dict):
        e0 = {
            int(symbol_to_z[k]) if isinstance(k, str) and not k.isdigit() else int(k): float(v)
            for k, v in spec.items()
        }
    elif spec == "isolated":
        e0 = dict(isolated)
    elif spec == "average":
        e0 = fit_e0_least_squares(frames, atomic_numbers)
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
