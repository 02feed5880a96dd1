r"""Training-set statistics, one routine for frames in memory and for a preprocessed store.

Both storages hand over the same arrays (:func:`mlip.data.store.shard_arrays`: a store's shards as they lie on
disk, frames in memory as one such chunk), and one vectorised pass accumulates, over the frames with an energy
label (weighted by how often a split selects them):

* the normal equations of the E0 fit, ``A^T A`` and ``A^T y`` with ``A_{fZ} = n_{f,Z}`` (atoms of element Z in
  frame f) and ``y_f = E_f``: the least-squares E0s ``argmin_e Σ_f (E_f − Σ_Z n_{f,Z} e_Z)²`` (mace-torch's
  ``E0s="average"``) are their solution (:func:`mlip.data.e0.resolve_e0`);
* ``shift``: the mean over those frames of ``(E_f − Σ_Z n_{f,Z} e_Z) / N_f``, eV/atom, after the E0s;
* ``scale``: the RMS force component over the frames with force labels, eV/Å (mace-torch's
  ``rms_forces_scaling``; 1 without forces);
* the elements present and the numbers of energy- and force-labelled frames.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from mlip.data.e0 import resolve_e0

__all__ = ["LabelSums", "accumulate", "label_statistics"]

_NZ = 119  # atomic numbers 0..118


@dataclass
class LabelSums:
    """Sums of one pass (module docstring), over all 119 element columns."""

    ata: np.ndarray = field(default_factory=lambda: np.zeros((_NZ, _NZ)))
    aty: np.ndarray = field(default_factory=lambda: np.zeros(_NZ))
    c_per_atom: np.ndarray = field(default_factory=lambda: np.zeros(_NZ))
    present: np.ndarray = field(default_factory=lambda: np.zeros(_NZ))
    e_per_atom: float = 0.0
    n_energy: float = 0.0
    n_forces: float = 0.0
    f_sq: float = 0.0
    f_n: float = 0.0

    def add(self, arrays: dict, multiplicity: np.ndarray | None = None) -> None:
        """Add one chunk of :func:`~mlip.data.store.shard_arrays` form; ``multiplicity`` ``[F]``: how often each
        of its frames counts (0 leaves it out; default: once)."""
        sizes = np.diff(np.asarray(arrays["offsets"]))
        mult = np.ones(len(sizes)) if multiplicity is None else np.asarray(multiplicity, dtype=np.float64)
        atom_frame = np.repeat(np.arange(len(sizes)), sizes)
        nums = np.asarray(arrays["numbers"], dtype=np.int64)
        counts = np.bincount(atom_frame * _NZ + nums, minlength=len(sizes) * _NZ).reshape(len(sizes), _NZ)
        counts = counts.astype(np.float64)
        self.present += mult @ counts
        has = np.asarray(arrays["has"])
        w = mult * has[:, 0]  # labelled energies, with multiplicity
        energy = np.asarray(arrays["energy"])
        n_atoms = np.maximum(counts.sum(1), 1.0)
        self.ata += (counts * w[:, None]).T @ counts
        self.aty += counts.T @ (w * energy)
        self.e_per_atom += float((w * energy / n_atoms).sum())
        self.c_per_atom += (w / n_atoms) @ counts
        self.n_energy += float(w.sum())
        self.n_forces += float((mult * has[:, 1]).sum())
        fw = (mult * has[:, 1])[atom_frame]
        self.f_sq += float((fw * np.square(np.asarray(arrays["forces"])).sum(1)).sum())
        self.f_n += 3.0 * float(fw.sum())

    def elements(self) -> list[int]:
        return np.flatnonzero(self.present > 0).tolist()


def accumulate(chunks: Iterable[tuple[dict, np.ndarray | None]]) -> LabelSums:
    """:class:`LabelSums` of ``(arrays, multiplicity)`` chunks."""
    sums = LabelSums()
    for arrays, mult in chunks:
        sums.add(arrays, mult)
    return sums


def label_statistics(sums: LabelSums, *, e0_spec, isolated: dict[int, float]) -> dict:
    """``{"elements", "e0", "shift", "scale", "n_energy_labels", "n_forces_labels"}`` from ``sums``; ``e0_spec``
    and ``isolated`` (``{Z: eV}`` of the isolated atoms) as :func:`mlip.data.e0.resolve_e0` takes them.
    ``e0`` is keyed by ``str(Z)`` (JSON-ready)."""
    zs = sums.elements()
    e0 = resolve_e0(
        e0_spec, isolated=isolated, atomic_numbers=zs,
        normal_equations=(sums.ata[np.ix_(zs, zs)], sums.aty[zs], sums.n_energy),
    )  # fmt: skip
    e0_vec = np.array([e0[z] for z in zs])
    shift = (sums.e_per_atom - sums.c_per_atom[zs] @ e0_vec) / sums.n_energy if sums.n_energy else 0.0
    scale = float(np.sqrt(sums.f_sq / sums.f_n)) if sums.f_n else 1.0
    return {
        "elements": zs,
        "e0": {str(z): e0[z] for z in zs},
        "shift": float(shift),
        "scale": scale if scale > 1e-8 else 1.0,
        "n_energy_labels": int(sums.n_energy),
        "n_forces_labels": int(sums.n_forces),
    }
