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

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ase
import ase.io
import numpy as np

from mlip.data.graph import Frame
from mlip.data.references import EnergyReferences

ISOLATED_ATOM_TYPES = frozenset({"isolatedatom", "isolated_atom"})


@dataclass(frozen=True)
class LabelKeys:
    """Where labels live in ``atoms.info`` / ``atoms.arrays``; ``None`` means the default search order."""

    energy_key: str | None = None
    forces_key: str | None = None
    stress_key: str | None = None
    virials_key: str | None = None
    charges_key: str | None = None
    weight_key: str = "config_weight"
    config_type_key: str = "config_type"
    fixed_tags: tuple[int, ...] = ()


def _as_stress(value, where: str) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64).reshape(-1)
    if a.size == 6:
        xx, yy, zz, yz, xz, xy = a
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    if a.size == 9:
        return a.reshape(3, 3)
    raise ValueError(f"{where}: stress must have 6 (Voigt) or 9 components, got {a.size}")


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


def atoms_to_frame(atoms: ase.Atoms, keys: LabelKeys = LabelKeys(), *, where: str = "frame") -> Frame:
    """Labels of one ``Atoms`` (see the module docstring for the lookup order)."""
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
        stress = None if raw is None else -_as_stress(raw, where) / atoms.get_volume()
    else:
        if "REF_stress" in atoms.info:
            stress = _as_stress(atoms.info["REF_stress"], where)
        elif "REF_virials" in atoms.info:
            stress = -_as_stress(atoms.info["REF_virials"], where) / atoms.get_volume()
        elif res.get("stress") is not None:
            stress = _as_stress(res["stress"], where)
        elif "stress" in atoms.info:
            stress = _as_stress(atoms.info["stress"], where)
    config_type = atoms.info.get(keys.config_type_key)
    weight = float(atoms.info.get(keys.weight_key, 1.0))
    fixed = fixed_atoms(atoms, tuple(keys.fixed_tags))
    bare = ase.Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    if "charge" in atoms.info:
        bare.info["charge"] = float(np.asarray(atoms.info["charge"]).reshape(()))
    return Frame(
        atoms=bare,
        energy=None if energy is None else float(np.asarray(energy).reshape(())),
        forces=None if forces is None else np.asarray(forces, dtype=np.float64).reshape(len(atoms), 3),
        stress=stress,
        charges=None if charges is None else np.asarray(charges, dtype=np.float64).reshape(len(atoms)),
        fixed=fixed if fixed.any() else None,
        weight=weight,
        config_type=None if config_type is None else str(config_type),
        info={k: v for k, v in atoms.info.items() if not isinstance(v, np.ndarray)},
    )


def read_mptrj_json(path: str | Path, *, energy: str = "uncorrected") -> list[Frame]:
    """Every frame of an MPtrj JSON file (streamed by :func:`mlip.data.mptrj.read_mptrj`) as labelled frames
    whose ``info`` keeps ``mp_id`` and ``frame_id``. ``energy``: ``"uncorrected"`` or ``"corrected"``."""
    from mlip.data.mptrj import read_mptrj

    name = Path(path).name
    return [
        atoms_to_frame(a, where=f"{name}:{a.info['mp_id']}/{a.info['frame_id']}")
        for a in read_mptrj(path, energy=energy)
    ]


def _is_mptrj_json(path: Path) -> bool:
    """True when the file opens as MPtrj's ``{mp_id: {frame_id: {"structure", ...}}}`` (first record only)."""
    from mlip.data.mptrj import iter_mptrj_records

    with open(path) as fh:
        if not fh.read(64).lstrip().startswith("{"):
            return False
    try:
        _, _, record = next(iter(iter_mptrj_records(path, chunk_size=1 << 16)))
    except (ValueError, StopIteration):
        return False
    return "structure" in record and "uncorrected_total_energy" in record


def labelled_frame(
    atoms: ase.Atoms, keys: LabelKeys, references: EnergyReferences | None = None, *, where: str = "frame"
) -> Frame:
    """:func:`atoms_to_frame`, then the per-system reference energy subtracted when ``references`` is given."""
    frame = atoms_to_frame(atoms, keys, where=where)
    return frame if references is None else references.apply(frame, where=where)


def iter_frames(
    path: str | Path,
    keys: LabelKeys | None = None,
    *,
    index: str = ":",
    mptrj_energy: str = "uncorrected",
    references: EnergyReferences | None = None,
) -> Iterator[Frame]:
    """Stream the labelled frames of ``path`` (arguments as :func:`read_frames`)."""
    from mlip.data.sources import iter_atoms

    keys = LabelKeys() if keys is None else keys
    name = Path(path).name
    for i, atoms in enumerate(iter_atoms(path, mptrj_energy=mptrj_energy, index=index)):
        where = f"{name}[{i}]"
        if "mp_id" in atoms.info:
            where = f"{name}:{atoms.info['mp_id']}/{atoms.info['frame_id']}"
        yield labelled_frame(atoms, keys, references, where=where)


def read_frames(
    path: str | Path,
    keys: LabelKeys = LabelKeys(),
    *,
    index: str = ":",
    mptrj_energy: str = "uncorrected",
    references: EnergyReferences | None = None,
) -> list[Frame]:
    """Every frame of ``path`` with its labels.

    Formats: those of :func:`mlip.data.sources.iter_atoms` (MPtrj JSON, ``aselmdb``, legacy OC20 LMDB, files or
    directories; ASE databases and anything ``ase.io`` reads). ``mptrj_energy`` picks MPtrj's uncorrected or
    corrected energy; ``index`` selects frames of ASE-read files; ``references`` turns total energies into
    referenced ones (:class:`mlip.data.references.EnergyReferences`).
    """
    return list(iter_frames(path, keys, index=index, mptrj_energy=mptrj_energy, references=references))


def split_isolated_atoms(frames: list[Frame]) -> tuple[list[Frame], dict[int, float]]:
    """Separate isolated-atom reference frames (one atom, no periodic neighbour within the cutoff, or
    ``config_type`` IsolatedAtom) from the rest; return ``(other frames, {Z: E0})``."""
    rest, e0 = [], {}
    for f in frames:
        marked = f.config_type is not None and f.config_type.lower() in ISOLATED_ATOM_TYPES
        if marked or (len(f.atoms) == 1 and not f.atoms.pbc.any()):
            if len(f.atoms) != 1 or f.energy is None:
                raise ValueError("an IsolatedAtom frame must hold exactly one atom and an energy label")
            e0[int(f.atoms.numbers[0])] = f.energy
        else:
            rest.append(f)
    return rest, e0
