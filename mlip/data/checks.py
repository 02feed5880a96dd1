"""The checks every labelled frame passes before it is stored or trained on: real elements, finite labels and
(``units=True``) label magnitudes inside the bounds of :mod:`mlip.data.units`.

:func:`check_frame` checks one frame and raises :class:`~mlip.errors.MLIPInputError` naming ``frame.source``.
:func:`check_frames` checks many at once: one vectorised pass over the concatenated labels flags every frame that
may fail (a superset of the failing ones), and only the flagged frames go through :func:`check_frame`, so each
bound and message has one implementation while a shard of 10,000 MPtrj frames costs a few numpy calls instead of
eight small reductions per frame.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from mlip.data.graph import Frame
from mlip.data.store import shard_arrays
from mlip.data.units import (
    MAX_FORCE,
    MAX_STRESS,
    bound_per_atom,
    check_energy,
    check_forces,
    check_stress,
    largest,
)
from mlip.errors import MLIPInputError

__all__ = ["check_frame", "check_frames", "require_known_elements"]

_MAX_Z = 118


def _finite_largest(a: np.ndarray, where: str, name: str) -> float:
    """``max |a|`` (:func:`mlip.data.units.largest`), or a clear error if ``a`` holds a NaN or an infinity."""
    m = largest(a)
    if not math.isfinite(m):
        raise MLIPInputError(f"{where}: the {name} label contains NaN or infinite values")
    return m


def check_frame(frame: Frame, *, units: bool = True) -> None:
    """Raise naming ``frame.source`` if an atomic number is not an element (1..118), a label (energy eV, forces
    ``[N, 3]`` eV/Å, stress ``[3, 3]`` eV/Å³, charges ``[N]`` e) holds a NaN or an infinity, or (``units``) a
    label lies outside the bounds of :mod:`mlip.data.units`."""
    where = frame.source or "frame"
    numbers = frame.atoms.numbers
    if len(numbers) and (numbers.min() < 1 or numbers.max() > _MAX_Z):
        bad = int(np.flatnonzero((numbers < 1) | (numbers > _MAX_Z))[0])
        raise MLIPInputError(f"{where}: atom {bad} has atomic number {numbers[bad]}, not an element")
    if frame.energy is not None and not math.isfinite(frame.energy):
        raise MLIPInputError(f"{where}: the energy label is {frame.energy}")
    f_max = None if frame.forces is None else _finite_largest(frame.forces, where, "forces")
    s_max = None if frame.stress is None else _finite_largest(frame.stress, where, "stress")
    if frame.charges is not None:
        _finite_largest(frame.charges, where, "charges")
    if units:
        if s_max is not None:
            check_stress(s_max, where=where)
        if f_max is not None:
            check_forces(f_max, where=where)
        if frame.energy is not None:
            check_energy(frame.energy, numbers, where=where)


def _outside(x: np.ndarray, bound: np.ndarray | float | None) -> np.ndarray:
    """True where ``x`` is NaN, infinite or (``bound`` given) above ``bound``."""
    return ~np.isfinite(x) if bound is None else ~(x <= bound)  # ~(x <= bound) is true for NaN too


def check_frames(
    frames: Sequence[Frame], *, units: bool = True, arrays: Mapping[str, np.ndarray] | None = None
) -> None:
    """:func:`check_frame` for each of ``frames`` (the first failing frame raises), vectorised over their
    concatenated labels: ``arrays`` is :func:`mlip.data.store.shard_arrays` of ``frames``, made here if not given
    (zeros stand for missing labels, which pass)."""
    if not frames:
        return
    a = shard_arrays(frames) if arrays is None else arrays
    counts = np.diff(a["offsets"])
    owner = np.repeat(np.arange(len(frames)), counts)  # frame of each atom
    numbers = np.concatenate([f.atoms.numbers for f in frames])  # as read (the store keeps int16)
    atom_bad = (numbers < 1) | (numbers > _MAX_Z)
    atom_bad |= _outside(np.abs(a["forces"]).max(axis=1, initial=0.0), MAX_FORCE if units else None)
    atom_bad |= _outside(a["charges"], None)
    flagged = np.zeros(len(frames), dtype=bool)
    flagged[owner[atom_bad]] = True
    flagged |= _outside(np.abs(a["stress"]).reshape(-1, 9).max(axis=1), MAX_STRESS if units else None)
    energy = a["energy"]
    if units:
        # Σ_i bound(Z_i) per frame; summed in another order than energy_bound, hence the relative margin
        per_atom = bound_per_atom(np.clip(numbers, 0, _MAX_Z))
        bound = np.zeros(len(frames))
        nonempty = counts > 0
        if nonempty.any():
            bound[nonempty] = np.add.reduceat(per_atom, a["offsets"][:-1][nonempty])
        flagged |= _outside(np.abs(energy), bound * (1.0 - 1e-9))
    else:
        flagged |= _outside(energy, None)
    for i in np.flatnonzero(flagged):
        check_frame(frames[i], units=units)


def require_known_elements(
    present,
    known,
    *,
    where: str,
    message: str = "{where} contains elements {unknown} absent from the training set",
) -> None:
    """Refuse elements in ``present`` (atomic numbers of a data set) that are not in ``known`` (those of the
    training set or the model): the one unknown-element check of validation, test and replay sets. ``message``
    is formatted with ``where`` and ``unknown`` (the sorted atomic numbers)."""
    unknown = sorted({int(z) for z in present} - {int(z) for z in known})
    if unknown:
        raise MLIPInputError(message.format(where=where, unknown=unknown))
