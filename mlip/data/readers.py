"""Readers: every source of :mod:`mlip.data.sources` (ASE formats and databases, MPtrj JSON, fairchem
``aselmdb``, legacy OC20 LMDB) -> labelled :class:`~mlip.data.graph.Frame`.

Label lookup (``LabelKeys``). A key that is given is looked up in ``info`` / ``arrays`` and the attached
calculator's results; a frame without it is unlabelled for that quantity (masked in the loss; a training set
with no labels at all is an error). When a key is not given, the first found of:

* energy: ``info["REF_energy"]``, then the calculator's ``energy``, then ``info["energy"]``;
* forces: ``arrays["REF_forces"]``, then the calculator's ``forces``, then ``arrays["forces"]``;
* stress: ``info["REF_stress"]``, then ``-info["REF_virials"] / V``, then the calculator's ``stress``, then
  ``info["stress"]``;
* charges (partial charges, e): ``arrays["REF_charges"]``, then the calculator's ``charges``, then
  ``arrays["charges"]``.

The net charge of a structure is ``info["charge"]`` (0 when absent).

Fixed atoms (left out of the force loss): a ``FixAtoms`` constraint, ``arrays["move_mask"]`` false,
``arrays["fixed"]`` true, and, when ``LabelKeys.fixed_tags`` is given, atoms whose tag is in it (OC20: tag 0
marks subsurface slab atoms, held fixed in its relaxations).

Stress may be 6 Voigt numbers (xx, yy, zz, yz, xz, xy, ASE order) or a 3x3 / 9-vector, always eV/Å³ with ASE's
sign. MPtrj JSON holds kBar with VASP's sign; :func:`read_mptrj_json` converts it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import ase
import ase.io
import numpy as np

from mlip.data.checks import check_frame
from mlip.data.graph import Frame
from mlip.data.mptrj import read_mptrj
from mlip.data.references import EnergyReferences
from mlip.data.sources import iter_atoms
from mlip.data.stress_check import StressTransform, apply_stress_transform
from mlip.errors import MLIPInputError

ISOLATED_ATOM_TYPES = frozenset({"isolatedatom", "isolated_atom"})


__all__ = [
    "LabelKeys",
    "fixed_atoms",
    "atoms_to_frame",
    "read_mptrj_json",
    "labelled_frame",
    "iter_frames",
    "read_frames",
    "split_isolated_atoms",
    "is_isolated_atom",
    "ISOLATED_ATOM_TYPES",
]


@dataclass(frozen=True)
class LabelKeys:
    """Where labels live in ``atoms.info`` / ``atoms.arrays``; ``None`` means the default search order.

    ``check_units`` refuses labels outside the bounds of :mod:`mlip.data.units` (stress in kBar, energies in
    kcal/mol, ...). ``stress_transform`` fixes every stress label as it is read
    (:class:`mlip.data.stress_check.StressTransform`). ``pbc``, when given, is the periodicity every frame is given
    as it is read, e.g. ``(True, True, False)`` for slabs stored periodic in all three directions with vacuum
    (OC20's frames), so that a long-range model sums them as slabs."""

    energy_key: str | None = None
    forces_key: str | None = None
    stress_key: str | None = None
    virials_key: str | None = None
    charges_key: str | None = None
    weight_key: str = "config_weight"
    config_type_key: str = "config_type"
    fixed_tags: tuple[int, ...] = ()
    check_units: bool = True
    stress_transform: StressTransform = StressTransform.NONE
    pbc: tuple[bool, bool, bool] | None = None

    def given(self) -> dict[str, str]:
        """``{"energy": key, ...}`` of the label keys set explicitly (stress for ``virials_key`` too)."""
        names = {"energy": self.energy_key, "forces": self.forces_key, "stress": self.stress_key,
                 "charges": self.charges_key}  # fmt: skip
        if self.virials_key is not None and self.stress_key is None:
            names["stress"] = self.virials_key
        return {k: v for k, v in names.items() if v is not None}


def _floats(value, where: str, name: str) -> np.ndarray:
    """``value`` as a float64 array, or a clear error for a label that is not numeric."""
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise MLIPInputError(f"{where}: the {name} label is not numeric ({str(value)[:60]!r})") from None


def _scalar(value, where: str, name: str) -> float:
    a = _floats(value, where, name)
    if a.size != 1:
        raise MLIPInputError(f"{where}: the {name} label has {a.size} values, expected one")
    x = float(a.reshape(()))
    if not math.isfinite(x):
        raise MLIPInputError(f"{where}: the {name} label is {x}")
    return x


def _shaped(value, where: str, name: str, shape: tuple[int, ...]) -> np.ndarray:
    a = _floats(value, where, name)
    if a.size != math.prod(shape):
        raise MLIPInputError(f"{where}: the {name} label has {a.size} values, expected shape {shape}")
    return a.reshape(shape)


def _as_stress(value, where: str) -> np.ndarray:
    """6 Voigt numbers (xx, yy, zz, yz, xz, xy) or 9 numbers -> ``[3, 3]``."""
    a = _floats(value, where, "stress").reshape(-1)
    if a.size == 6:
        xx, yy, zz, yz, xz, xy = a
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    if a.size == 9:
        return a.reshape(3, 3)
    raise MLIPInputError(f"{where}: stress must have 6 (Voigt) or 9 components, got {a.size}")


def _virials_to_stress(value, atoms: ase.Atoms, where: str) -> np.ndarray:
    """``stress = -virial / V`` (:mod:`mlip.keys`)."""
    volume = abs(float(np.linalg.det(atoms.cell.array)))
    if volume < 1e-9:
        raise MLIPInputError(f"{where}: virials need a cell with a volume to become a stress")
    return -_as_stress(value, where) / volume


def _calc_results(atoms: ase.Atoms) -> dict:
    calc = atoms.calc
    return dict(getattr(calc, "results", {}) or {}) if calc is not None else {}


def _lookup(atoms, results, key, kind):
    store = atoms.arrays if kind == "array" else atoms.info
    if key in store:
        return store[key]
    if key in results:
        return results[key]
    return None


def _label(atoms: ase.Atoms, results: dict, key: str | None, kind: str, name: str):
    """The given ``key``, else ``REF_<name>``, then the calculator's ``name``, then ``info``/``arrays[name]``."""
    if key is not None:
        return _lookup(atoms, results, key, kind)
    store = atoms.arrays if kind == "array" else atoms.info
    for value in (store.get(f"REF_{name}"), results.get(name), store.get(name)):
        if value is not None:
            return value
    return None


def fixed_atoms(atoms: ase.Atoms, fixed_tags: tuple[int, ...] = ()) -> np.ndarray:
    """``[N]`` bool: atoms fixed by a ``FixAtoms`` constraint, ``arrays["move_mask"]`` false (OC20 extxyz; ASE turns
    it into FixAtoms on reading), ``arrays["fixed"]`` true (fairchem's graphs) or a tag in ``fixed_tags``."""
    from ase.constraints import FixAtoms

    fixed = np.zeros(len(atoms), dtype=bool)
    for c in atoms.constraints:
        if isinstance(c, FixAtoms):
            fixed[c.get_indices()] = True
    if "move_mask" in atoms.arrays:
        fixed |= ~np.asarray(atoms.arrays["move_mask"], dtype=bool)
    if "fixed" in atoms.arrays:
        fixed |= np.asarray(atoms.arrays["fixed"], dtype=bool)
    if fixed_tags:
        fixed |= np.isin(atoms.get_tags(), np.asarray(fixed_tags, dtype=np.int64))
    return fixed


def atoms_to_frame(
    atoms: ase.Atoms, keys: LabelKeys = LabelKeys(), *, where: str = "frame", check: bool = True
) -> Frame:
    """Labels of one ``Atoms`` (see the module docstring for the lookup order), numeric and of the right shape;
    errors name ``where``. ``check``: also :func:`mlip.data.checks.check_frame` (real elements, finite labels,
    and with ``keys.check_units`` plausible magnitudes); a caller that turns it off checks the frames itself, in
    bulk (:func:`mlip.data.checks.check_frames`)."""
    res = _calc_results(atoms)
    energy = _label(atoms, res, keys.energy_key, "info", "energy")
    forces = _label(atoms, res, keys.forces_key, "array", "forces")
    charges = _label(atoms, res, keys.charges_key, "array", "charges")
    stress = None
    if keys.stress_key is not None:
        raw = _lookup(atoms, res, keys.stress_key, "info")
        stress = None if raw is None else _as_stress(raw, where)
    elif keys.virials_key is not None:
        raw = _lookup(atoms, res, keys.virials_key, "info")
        stress = None if raw is None else _virials_to_stress(raw, atoms, where)
    else:
        if "REF_stress" in atoms.info:
            stress = _as_stress(atoms.info["REF_stress"], where)
        elif "REF_virials" in atoms.info:
            stress = _virials_to_stress(atoms.info["REF_virials"], atoms, where)
        elif res.get("stress") is not None:
            stress = _as_stress(res["stress"], where)
        elif "stress" in atoms.info:
            stress = _as_stress(atoms.info["stress"], where)
    if stress is not None and keys.stress_transform != StressTransform.NONE:
        stress = apply_stress_transform(stress, keys.stress_transform)
    config_type = atoms.info.get(keys.config_type_key)
    try:
        weight = float(atoms.info.get(keys.weight_key, 1.0))
    except (TypeError, ValueError):
        raise MLIPInputError(f"{where}: info[{keys.weight_key!r}] is not a number") from None
    if not (math.isfinite(weight) and weight >= 0):
        raise MLIPInputError(f"{where}: info[{keys.weight_key!r}] must be a finite weight >= 0, got {weight}")
    fixed = fixed_atoms(atoms, tuple(keys.fixed_tags))
    pbc = atoms.pbc if keys.pbc is None else np.asarray(keys.pbc, dtype=bool)
    bare = ase.Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=pbc)
    if "charge" in atoms.info:
        bare.info["charge"] = _scalar(atoms.info["charge"], where, "net charge (info['charge'])")
    n = len(atoms)
    if energy is not None:
        energy = _scalar(energy, where, "energy")
    if forces is not None:
        forces = _shaped(forces, where, "forces", (n, 3))
    if charges is not None:
        charges = _shaped(charges, where, "charges", (n,))
    frame = Frame(
        atoms=bare,
        energy=energy,
        forces=forces,
        stress=stress,
        charges=charges,
        fixed=fixed if fixed.any() else None,
        weight=weight,
        config_type=None if config_type is None else str(config_type),
        info={k: v for k, v in atoms.info.items() if not isinstance(v, np.ndarray)},
        source=where,
    )
    if check:
        check_frame(frame, units=keys.check_units)
    return frame


def read_mptrj_json(path: str | Path, *, energy: str = "uncorrected") -> list[Frame]:
    """Every frame of an MPtrj JSON file (streamed by :func:`mlip.data.mptrj.read_mptrj`) as labelled frames
    whose ``info`` keeps ``mp_id`` and ``frame_id``. ``energy``: ``"uncorrected"`` or ``"corrected"``."""
    name = Path(path).name
    return [
        atoms_to_frame(a, where=f"{name}:{a.info['mp_id']}/{a.info['frame_id']}")
        for a in read_mptrj(path, energy=energy)
    ]


def labelled_frame(
    atoms: ase.Atoms,
    keys: LabelKeys,
    references: EnergyReferences | None = None,
    *,
    where: str = "frame",
    check: bool = True,
) -> Frame:
    """:func:`~mlip.data.readers.atoms_to_frame` (``check`` as there), then the per-system reference energy subtracted when
    ``references`` is given."""
    frame = atoms_to_frame(atoms, keys, where=where, check=check)
    return frame if references is None else references.apply(frame, where=where)


def _available_keys(atoms: ase.Atoms) -> str:
    results = sorted(_calc_results(atoms))
    return (
        f"info: {sorted(atoms.info)}, arrays: {sorted(k for k in atoms.arrays if k not in ('numbers', 'positions'))}"
        + (f", calculator: {results}" if results else "")
    )


def iter_frames(
    path: str | Path,
    keys: LabelKeys | None = None,
    *,
    index: str = ":",
    mptrj_energy: str = "uncorrected",
    references: EnergyReferences | None = None,
    require_keys: bool = False,
    check: bool = True,
) -> Iterator[Frame]:
    """Stream the labelled frames of ``path`` (arguments as :func:`~mlip.data.readers.read_frames`; ``check`` as in
    :func:`~mlip.data.readers.atoms_to_frame`).

    ``require_keys``: a label key given explicitly in ``keys`` that no frame of the file holds is an error naming
    the key and the keys the file does hold (a misspelt ``energy_key`` would otherwise leave the set unlabelled).
    """
    keys = LabelKeys() if keys is None else keys
    name = Path(path).name
    missing = dict(keys.given()) if require_keys else {}
    first = None
    for i, atoms in enumerate(iter_atoms(path, mptrj_energy=mptrj_energy, index=index)):
        where = f"{name}[{i}]"
        if "mp_id" in atoms.info:
            where = f"{name}:{atoms.info['mp_id']}/{atoms.info['frame_id']}"
        frame = labelled_frame(atoms, keys, references, where=where, check=check)
        if missing:
            first = _available_keys(atoms) if first is None else first
            for label in [k for k in missing if getattr(frame, k) is not None]:
                del missing[label]
        yield frame
    if missing:
        label, key = next(iter(missing.items()))
        raise MLIPInputError(
            f"{name}: the {label} key {key!r} is in no frame; check energy_key / forces_key / stress_key "
            f"(the first frame has {first})"
        )


def read_frames(
    path: str | Path,
    keys: LabelKeys = LabelKeys(),
    *,
    index: str = ":",
    mptrj_energy: str = "uncorrected",
    references: EnergyReferences | None = None,
    require_keys: bool = False,
) -> list[Frame]:
    """Every frame of ``path`` with its labels.

    Formats: those of :func:`mlip.data.sources.iter_atoms` (MPtrj JSON, ``aselmdb``, legacy OC20 LMDB, files or
    directories; ASE databases and anything ``ase.io`` reads). ``mptrj_energy`` picks MPtrj's uncorrected or
    corrected energy; ``index`` selects frames of ASE-read files; ``references`` turns total energies into
    referenced ones (:class:`mlip.data.references.EnergyReferences`); ``require_keys``: see :func:`iter_frames`.
    """
    return list(
        iter_frames(
            path,
            keys,
            index=index,
            mptrj_energy=mptrj_energy,
            references=references,
            require_keys=require_keys,
        )
    )


def is_isolated_atom(frame: Frame) -> bool:
    """Whether ``frame`` is an isolated-atom reference (the one rule of training, preprocessing, replay and
    evaluation): ``config_type`` IsolatedAtom (any case), or one atom without periodic boundaries. A frame marked
    IsolatedAtom must hold one atom and an energy label."""
    marked = frame.config_type is not None and frame.config_type.lower() in ISOLATED_ATOM_TYPES
    if not (marked or (len(frame.atoms) == 1 and not frame.atoms.pbc.any())):
        return False
    if len(frame.atoms) != 1 or frame.energy is None:
        where = frame.source or "a frame"
        raise MLIPInputError(f"{where}: an IsolatedAtom frame must hold exactly one atom and an energy label")
    return True


def split_isolated_atoms(frames: Iterable[Frame]) -> tuple[list[Frame], dict[int, float]]:
    """Separate isolated-atom reference frames (:func:`is_isolated_atom`) from the rest; return
    ``(other frames, {Z: E0})`` (eV)."""
    rest, e0 = [], {}
    for f in frames:
        if is_isolated_atom(f):
            e0[int(f.atoms.numbers[0])] = f.energy
        else:
            rest.append(f)
    return rest, e0
