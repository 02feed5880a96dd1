"""The data specification: how every frame of a run is labelled, in one frozen object.

A :class:`DataSpec` says where labels live (:class:`~mlip.data.readers.LabelKeys`: label keys, fixed tags, the
unit check, the stress transform), which per-system reference energies are subtracted, which MPtrj energy is read,
whether stress labels are checked against strained pairs, which frames are isolated-atom references and which file
adds more of them. Training (files or a preprocessed store), ``mlip-preprocess``, replay, ``mlip-eval`` and
:func:`mlip.predict`'s callers read frames through one spec, so a frame is labelled the same way wherever it goes.

Part of a spec is applied when frames are read (:meth:`DataSpec.applied_when_read`: keys, references, MPtrj
energy, fixed tags, stress transform, unit check, isolated-atom rule). ``mlip-preprocess`` records that part in
the store's manifest, verbatim, and training from a store refuses a config whose spec differs from it
(:meth:`DataSpec.check_store`). The rest (the stress check, the E0 file) is applied by training, from files and
from a store alike.

Isolated atoms (one rule, :func:`mlip.data.readers.is_isolated_atom`): a frame of ``config_type`` IsolatedAtom (any case), or one
atom without periodic boundaries. They carry the element's reference energy ``E0``, are taken out of every data
set (training, validation, test, replay, evaluation) and out of a store's shards, and are kept as ``{Z: E0}``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mlip.data.graph import Frame
from mlip.data.readers import LabelKeys, iter_frames, split_isolated_atoms
from mlip.data.references import EnergyReferences
from mlip.data.stress_check import StressTransform
from mlip.errors import MLIPInputError

__all__ = ["DataSpec", "MPTRJ_ENERGIES"]

MPTRJ_ENERGIES = ("uncorrected", "corrected")


@dataclass(frozen=True, kw_only=True)
class DataSpec:
    """How frames are labelled (module docstring).

    Attributes:
        keys: label keys, fixed tags, unit check and stress transform.
        mptrj_energy: ``"uncorrected"`` or ``"corrected"`` energies of MPtrj JSON files.
        energy_references: a file of per-system reference energies subtracted from every frame
            (:mod:`mlip.data.references`), or None.
        system_key: the ``info`` key holding each frame's system id (for ``energy_references``).
        check_stress: compare the training stresses with the energies of strained pairs
            (:func:`mlip.data.stress_check.require_consistent_stress`).
        e0_file: a file whose isolated-atom frames add reference energies, or None.
    """

    keys: LabelKeys = field(default_factory=LabelKeys)
    mptrj_energy: str = "uncorrected"
    energy_references: str | None = None
    system_key: str = "sid"
    check_stress: bool = True
    e0_file: str | None = None

    def __post_init__(self) -> None:
        if self.mptrj_energy not in MPTRJ_ENERGIES:
            raise MLIPInputError(
                f"mptrj_energy must be one of {list(MPTRJ_ENERGIES)}, got {self.mptrj_energy!r}"
            )
        if not isinstance(self.keys, LabelKeys):
            raise MLIPInputError(f"DataSpec.keys must be a LabelKeys, got {type(self.keys).__name__}")

    @classmethod
    def from_options(
        cls,
        *,
        energy_key: str | None = None,
        forces_key: str | None = None,
        stress_key: str | None = None,
        virials_key: str | None = None,
        charges_key: str | None = None,
        fixed_tags=(),
        check_units: bool = True,
        stress_transform: str = "none",
        mptrj_energy: str = "uncorrected",
        energy_references: str | None = None,
        system_key: str = "sid",
        check_stress: bool = True,
        e0_file: str | None = None,
        pbc=None,
    ) -> DataSpec:
        """The spec of the flat options a training config's ``data`` section and the command lines use (the one
        place label keys are assembled; names as :class:`mlip.training.config.DataConfig`'s)."""
        keys = LabelKeys(
            energy_key=energy_key, forces_key=forces_key, stress_key=stress_key, virials_key=virials_key,
            charges_key=charges_key, fixed_tags=tuple(int(t) for t in fixed_tags), check_units=check_units,
            stress_transform=StressTransform(stress_transform),
            pbc=None if pbc is None else _pbc(pbc),
        )  # fmt: skip
        refs = None if energy_references is None else str(energy_references)
        return cls(keys=keys, mptrj_energy=mptrj_energy, energy_references=refs, system_key=system_key,
                   check_stress=check_stress, e0_file=e0_file)  # fmt: skip

    def references(self) -> EnergyReferences | None:
        """The reference energies, read from ``energy_references`` (None when not set)."""
        if self.energy_references is None:
            return None
        return EnergyReferences.from_file(self.energy_references, key=self.system_key)

    def iter_frames(
        self,
        path: str | Path,
        *,
        require_keys: bool = False,
        check: bool = True,
        references: EnergyReferences | None = None,
    ) -> Iterator[Frame]:
        """Stream the labelled frames of ``path`` (:func:`mlip.data.readers.iter_frames`), isolated atoms
        included. ``references``: the table of :meth:`references` when the caller has read it already."""
        refs = self.references() if references is None else references
        return iter_frames(
            path, self.keys, mptrj_energy=self.mptrj_energy, references=refs, require_keys=require_keys,
            check=check,
        )  # fmt: skip

    def read(
        self, path: str | Path, *, require_keys: bool = False, references: EnergyReferences | None = None
    ) -> tuple[list[Frame], dict[int, float]]:
        """``(frames, {Z: E0})``: the frames of ``path`` without its isolated atoms, and their energies."""
        frames = self.iter_frames(path, require_keys=require_keys, references=references)
        return split_isolated_atoms(frames)

    def e0_file_energies(self) -> dict[int, float]:
        """``{Z: E0}`` of the isolated-atom frames of ``e0_file`` (empty without one); read with the label keys
        but without reference energies (an isolated atom has no system)."""
        if self.e0_file is None:
            return {}
        plain = dataclasses.replace(self, energy_references=None)
        _, e0 = plain.read(self.e0_file)
        if not e0:
            raise MLIPInputError(
                f"data.e0_file {self.e0_file}: no isolated-atom frame (one atom without periodic boundaries, or "
                "config_type IsolatedAtom)"
            )
        return e0

    def applied_when_read(self) -> dict:
        """The part of the spec applied as frames are read, as JSON-ready data: what a store's manifest records
        (``data_spec``) and what training from that store must match."""
        keys = {k: v for k, v in dataclasses.asdict(self.keys).items() if k not in ("fixed_tags", "pbc")}
        keys["stress_transform"] = StressTransform(self.keys.stress_transform).value
        if self.keys.pbc is not None:  # recorded only when set, so stores written before it still match
            keys["pbc"] = [bool(x) for x in self.keys.pbc]
        return {
            "label_keys": keys,
            "fixed_tags": [int(t) for t in self.keys.fixed_tags],
            "mptrj_energy": self.mptrj_energy,
            "energy_references": None
            if self.energy_references is None
            else str(Path(self.energy_references).resolve()),
            "system_key": self.system_key if self.energy_references is not None else None,
            "isolated_atoms": "config_type IsolatedAtom, or one atom without periodic boundaries",
        }

    def check_store(self, recorded: dict | None, path: str | Path) -> None:
        """Refuse a store (``path``) written with another spec (``recorded``: its manifest's ``data_spec``): the
        labels were fixed when it was written, so a config that differs would be silently ignored."""
        if recorded is None:
            raise MLIPInputError(
                f"{path} was written by an older mlip-preprocess that did not record its label keys and isolated "
                "atoms; run mlip-preprocess again into a new directory"
            )
        wanted = self.applied_when_read()
        for key in sorted(set(wanted) | set(recorded)):
            if wanted.get(key) == recorded.get(key):
                continue
            if key == "label_keys":
                mine, theirs = wanted[key], recorded.get(key) or {}
                for name in [*mine, *(n for n in theirs if n not in mine)]:
                    if mine.get(name) != theirs.get(name):
                        _refuse(path, f"data.{name}", mine.get(name), theirs.get(name))
            _refuse(path, f"data.{key}", wanted.get(key), recorded.get(key))


def _refuse(path, name: str, mine, theirs) -> None:
    flag = "--" + name.removeprefix("data.").replace("_", "-")
    raise MLIPInputError(
        f"{name} is {mine!r} but {path} was written with {theirs!r}; it is applied by mlip-preprocess ({flag}), "
        "so rerun it into a new directory or change the config"
    )


def _pbc(value) -> tuple[bool, bool, bool]:
    """Three periodicity flags (``true``/``false``), or a clear error."""
    flags = list(value) if isinstance(value, (list, tuple)) else None
    if flags is None or len(flags) != 3 or not all(isinstance(x, bool) for x in flags):
        raise MLIPInputError(f"pbc must be three true/false flags, e.g. [true, true, false], got {value!r}")
    return (flags[0], flags[1], flags[2])
