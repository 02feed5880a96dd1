"""Stress labels checked against the energies of strained copies of one structure, and the fixes a file may need.

Why: a stress label in the wrong convention (shear components in another order, the opposite sign) passes every
magnitude check of :mod:`mlip.data.units`, and a model trained on it is pulled between its energies and its
stresses: the energies of the sheared frames come out wrong by several meV/atom while nothing reports an error.
Whenever a data set holds the same structure at several nearby cells (elastic-constant and equation-of-state
frames), the energies themselves say which convention the stresses follow.

The relation. Write a cell as rows ``h`` (Å), fractional coordinates ``s`` (positions ``r = s h``), forces ``f``
(eV/Å) and stress ``σ`` (eV/Å³, ASE's sign: ``σ = (1/V) ∂E/∂ε``). Along the straight path from frame A to frame B
(``h(t) = h_A + t Δh``, ``s(t) = s_A + t Δs``) the energy changes by the work

.. math::

    \\frac{dE}{dt} = V σ : (h^{-1} Δh)^T − Σ_i f_i · (Δs_i h),

and the trapezoid rule over the two end points gives ``ΔE_pred`` with an error of order ``|Δ|³`` (for the
2% strain steps of an elastic data set, below 0.1 meV/atom). The pairs used are frames of the same atoms in the
same order whose cells differ by at most ``max_strain`` (largest entry of ``h_A^{-1} Δh``) and whose atoms move by
at most ``max_shift`` Å beyond the homogeneous strain (along larger displacements, as between two MD snapshots,
the forces change too fast for the trapezoid rule), each frame with its nearest such copy; pairs whose cells are equal carry no stress information and are skipped.

:func:`check_stress_labels` compares ``ΔE_pred`` with the labelled ``E_B − E_A`` for the stresses as written and
for each :class:`StressTransform`, and :func:`require_consistent_stress` turns a clear mismatch into a one-line
error that names the file and the fix (``data.stress_transform``). Only these single fixes are tried: labels wrong
in another way (a cyclic shift of the three shear components, a wrong unit factor; the second is caught by
:mod:`mlip.data.units` when large) show up as a large ``rms`` that no transform cures, which is reported by
:func:`check_stress_labels` but not refused, since noisy data look the same.
"""

from __future__ import annotations

import enum
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mlip.data.graph import Frame
from mlip.errors import MLIPInputError

__all__ = [
    "StressCheck",
    "StressTransform",
    "apply_stress_transform",
    "check_stress_labels",
    "require_consistent_stress",
]


class StressTransform(str, enum.Enum):
    """A fix applied to every stress label as it is read (``data.stress_transform``).

    ``swap_xz_yz`` exchanges the xz and yz shear components (the two are easily exchanged when six numbers are
    reordered from one code's Voigt order to another's); ``swap_xy_xz`` and ``swap_xy_yz`` likewise; ``negate``
    flips the sign (a pressure or a virial stored as a stress)."""

    NONE = "none"
    SWAP_XZ_YZ = "swap_xz_yz"
    SWAP_XY_XZ = "swap_xy_xz"
    SWAP_XY_YZ = "swap_xy_yz"
    NEGATE = "negate"


_SWAPS = {
    StressTransform.SWAP_XZ_YZ: ((0, 2), (1, 2)),
    StressTransform.SWAP_XY_XZ: ((0, 1), (0, 2)),
    StressTransform.SWAP_XY_YZ: ((0, 1), (1, 2)),
}


def apply_stress_transform(stress: np.ndarray, transform: StressTransform | str) -> np.ndarray:
    """``stress`` (``[..., 3, 3]``, any unit) with ``transform`` applied; a new array, symmetric if the input was."""
    transform = StressTransform(transform)
    out = np.array(stress, dtype=np.float64, copy=True)
    if transform is StressTransform.NEGATE:
        return -out
    if transform in _SWAPS:
        (a, b), (c, d) = _SWAPS[transform]
        first, second = out[..., a, b].copy(), out[..., c, d].copy()
        out[..., a, b] = out[..., b, a] = second
        out[..., c, d] = out[..., d, c] = first
    return out


@dataclass(frozen=True)
class StressCheck:
    """What the strained pairs of a data set say about its stress labels.

    Attributes:
        pairs: number of frame pairs used.
        rms: ``{transform: rms of (E_B − E_A) − ΔE_pred}`` in meV/atom, ``"none"`` for the labels as written.
        work_rms: rms of the stress work ``ΔE_pred`` itself (meV/atom): how much the pairs can tell.
    """

    pairs: int
    rms: dict[str, float]
    work_rms: float

    @property
    def best(self) -> str:
        """The transform (or ``"none"``) that fits the energies best."""
        return min(self.rms, key=self.rms.get)

    def mismatch(self, *, tolerance: float = 1.0, ratio: float = 0.3) -> str | None:
        """The transform the labels need, or None when they fit as written: a transform is named only when the
        labels as written miss by more than ``tolerance`` meV/atom (rms) and the transform cuts that miss to at
        most ``ratio`` of it."""
        written = self.rms[StressTransform.NONE.value]
        best = self.best
        if self.pairs == 0 or best == StressTransform.NONE.value or written <= tolerance:
            return None
        return best if self.rms[best] <= ratio * written else None


_GRID_OFFSET = 0.0371  # keeps the bucket edges off high-symmetry fractional coordinates (multiples of 1/24)


def _pair_key(frame: Frame, grid: float) -> tuple | None:
    """Frames of one bucket may be strained copies: same numbers, fully periodic, similar fractional coordinates
    (a pair split by a bucket edge is missed, which loses a pair, never a wrong one)."""
    atoms = frame.atoms
    if frame.energy is None or frame.forces is None or frame.stress is None or len(atoms) == 0:
        return None
    if not atoms.pbc.all():
        return None
    s = np.mod(atoms.get_scaled_positions(wrap=False) + _GRID_OFFSET, 1.0)
    cells = np.mod(np.floor(s / grid).astype(np.int64), int(round(1.0 / grid)))
    return atoms.numbers.tobytes(), cells.tobytes()


def _stress_work(stress: np.ndarray, h: np.ndarray, dh: np.ndarray) -> float:
    """``V σ : (h^{-1} Δh)^T`` at one end of a pair (eV)."""
    return abs(np.linalg.det(h)) * float(np.sum(stress * np.linalg.solve(h, dh).T))


def _pairs(frames: Sequence[Frame], max_strain: float, max_shift: float, grid: float):
    """Each frame with its nearest strained copy (smallest largest strain entry), every pair once, as
    ``(a, b, Δh, Δs)``."""
    buckets: dict[tuple, list[int]] = defaultdict(list)
    for i, frame in enumerate(frames):
        key = _pair_key(frame, grid)
        if key is not None:
            buckets[key].append(i)
    seen: set[tuple[int, int]] = set()
    for members in buckets.values():
        scaled = {j: frames[j].atoms.get_scaled_positions(wrap=False) for j in members}
        for i in members:
            h_a = frames[i].atoms.cell.array
            best = None
            for j in members:
                h_b = frames[j].atoms.cell.array
                strain = np.abs(np.linalg.solve(h_a, h_b - h_a)).max()
                if strain > max_strain or strain < 1e-6 or (best is not None and strain >= best[0]):
                    continue
                ds = scaled[j] - scaled[i]
                ds -= np.rint(ds)
                if np.abs(ds @ (0.5 * (h_a + h_b))).max() <= max_shift:
                    best = (strain, j, ds)
            if best is not None and (min(i, best[1]), max(i, best[1])) not in seen:
                seen.add((min(i, best[1]), max(i, best[1])))
                yield frames[i], frames[best[1]], frames[best[1]].atoms.cell.array - h_a, best[2]


def check_stress_labels(
    frames: Sequence[Frame],
    *,
    max_strain: float = 0.05,
    max_shift: float = 0.05,
    grid: float = 0.1,
) -> StressCheck:
    """Compare the stresses of ``frames`` with their energy differences over strained pairs (module docstring),
    for the labels as written and for every :class:`StressTransform`. Frames without energy, forces, stress or
    full periodicity are ignored; a data set without strained pairs gives ``pairs == 0``. Cost: one pass to
    bucket the frames by atoms and coarse fractional coordinates (``grid``), then all pairs within each bucket (a
    few seconds for a bucket of 1,000 frames; MD and relaxation data spread over many buckets)."""
    transforms = list(StressTransform)
    misses: dict[str, list[float]] = {t.value: [] for t in transforms}
    works: list[float] = []
    for a, b, dh, ds in _pairs(frames, max_strain, max_shift, grid):
        n = len(a.atoms)
        h_a, h_b = a.atoms.cell.array, b.atoms.cell.array
        observed = (b.energy - a.energy) / n
        force_work = -0.5 * (float(np.sum(a.forces * (ds @ h_a))) + float(np.sum(b.forces * (ds @ h_b))))
        for t in transforms:
            stress_work = 0.5 * (
                _stress_work(apply_stress_transform(a.stress, t), h_a, dh)
                + _stress_work(apply_stress_transform(b.stress, t), h_b, dh)
            )
            predicted = (stress_work + force_work) / n
            misses[t.value].append(1000.0 * (observed - predicted))
            if t is StressTransform.NONE:
                works.append(1000.0 * predicted)
    rms = {k: math.sqrt(float(np.mean(np.square(v)))) if v else 0.0 for k, v in misses.items()}
    work_rms = math.sqrt(float(np.mean(np.square(works)))) if works else 0.0
    return StressCheck(pairs=len(works), rms=rms, work_rms=work_rms)


def require_consistent_stress(
    frames: Sequence[Frame], *, where: str, applied: StressTransform | str = StressTransform.NONE
) -> StressCheck:
    """:func:`check_stress_labels`, raising :class:`~mlip.errors.MLIPInputError` (one line naming ``where``) when
    a transform fits the energies clearly better than the labels as read (:meth:`StressCheck.mismatch`).
    ``applied``: the ``data.stress_transform`` the frames were read with, named in the message; each transform is
    its own inverse, so one that the check asks to apply again is one to remove."""
    applied = StressTransform(applied)
    result = check_stress_labels(frames)
    fix = result.mismatch()
    if fix is None:
        return result
    read_as = (
        "as written"
        if applied is StressTransform.NONE
        else f"as read with data.stress_transform: {applied.value}"
    )
    if applied is StressTransform.NONE:
        advice = f"fix the file, or set data.stress_transform: {fix}"
    elif fix == applied.value:
        advice = "the file is right as it is: remove data.stress_transform"
    else:
        advice = (
            f"fix the file, or set data.stress_transform: {fix} in its place if that fits the file as written"
        )
    raise MLIPInputError(
        f"{where}: the stress labels disagree with the energies of {result.pairs} pairs of strained frames "
        f"(rms {result.rms[StressTransform.NONE.value]:.2f} meV/atom {read_as}, {result.rms[fix]:.2f} with "
        f"{fix} on top); {advice} (or data.check_stress: false to train on them as they are)"
    )
