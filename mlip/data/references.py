"""Per-system reference energies: total DFT energies -> referenced (adsorption) energies, as OC20 defines them.

OC20 trains on E_ads = E_total − E_ref, where E_ref = E_slab + Σ E_gas(adsorbate atoms) is fixed for a system
(Chanussot et al., ACS Catal. 2021, 11, 6059, eq. 1). Its releases carry E_ref in two forms, both read by
:func:`load_energy_references`:

* the S2EF text files next to each ``*.extxyz`` (``random<sid>,frame<fid>,<E_ref>`` per frame, eV), or any
  ``.txt`` / ``.csv`` of ``system,reference`` or ``system,frame,reference`` lines;
* ``oc20_ref.pkl``, a pickled ``{system id: E_ref}`` dictionary (also accepted as ``.json``).

System ids are compared in a normal form (:func:`system_id`): ``"random1000156"``, ``1000156`` and
``"1000156"`` are the same system. A frame finds its system under ``info["sid"]`` (the extxyz key, the legacy
LMDB field, and what :func:`mlip.data.sources.iter_atoms` sets for ``random<sid>.traj`` files).

Energies stored already referenced (the S2EF LMDBs made with ``--ref-energy``) must not be referenced again;
this module never guesses, it subtracts only when asked.
"""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import re
from pathlib import Path

from mlip.data.graph import Frame
from mlip.errors import MLIPFileNotFoundError, MLIPInputError

__all__ = ["EnergyReferences", "load_energy_references", "system_id"]

_RANDOM = re.compile(r"^(?:random)?(\d+)$")


def system_id(value) -> str:
    """The normal form of an OC20 system id: ``"random123"``, ``123``, ``"123"`` -> ``"123"``; other strings
    are kept as they are."""
    if hasattr(value, "item"):
        value = value.item()
    text = str(value).strip()
    match = _RANDOM.match(text)
    return str(int(match.group(1))) if match else text


class _DictUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "scalar":
            return super().find_class(module, name)
        if (module, name) == ("numpy", "dtype"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"a reference-energy pickle holds only numbers; found {module}.{name}")


def _read_lines(path: Path) -> dict[str, float]:
    refs: dict[str, float] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        parts = [p.strip() for p in line.split(",")]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            sid, energy = system_id(parts[0]), float(parts[-1])
        except ValueError:
            if lineno == 1:  # a header line
                continue
            raise MLIPInputError(
                f"{path}:{lineno}: expected 'system,[frame,]reference_eV', got {line!r}"
            ) from None
        if len(parts) < 2:
            raise MLIPInputError(f"{path}:{lineno}: expected 'system,[frame,]reference_eV', got {line!r}")
        if sid in refs and abs(refs[sid] - energy) > 1e-6:
            raise MLIPInputError(f"{path}:{lineno}: system {parts[0]} has two reference energies")
        refs[sid] = energy
    return refs


def load_energy_references(path: str | Path) -> dict[str, float]:
    """``{system id (normal form): E_ref in eV}`` from a ``.pkl``, ``.json``, ``.txt`` or ``.csv`` file."""
    path = Path(path)
    if not path.is_file():
        raise MLIPFileNotFoundError(f"no such reference-energy file: {path}")
    if path.suffix in (".pkl", ".pickle"):
        raw = _DictUnpickler(io.BytesIO(path.read_bytes())).load()
    elif path.suffix == ".json":
        raw = json.loads(path.read_text())
    elif path.suffix in (".txt", ".csv"):
        return _read_lines(path)
    else:
        raise MLIPInputError(f"{path}: reference energies must be .pkl, .json, .txt or .csv")
    if not isinstance(raw, dict):
        raise MLIPInputError(f"{path}: expected a {{system id: energy}} mapping, got {type(raw).__name__}")
    return {system_id(k): float(v) for k, v in raw.items()}


@dataclasses.dataclass(frozen=True)
class EnergyReferences:
    """Subtract a per-system reference energy from labelled frames.

    Attributes:
        energies: ``{system id: E_ref}`` in eV (keys in :func:`system_id` normal form).
        key: the ``info`` key holding each frame's system id.
    """

    energies: dict[str, float]
    key: str = "sid"

    @classmethod
    def from_file(cls, path: str | Path, *, key: str = "sid") -> EnergyReferences:
        return cls(load_energy_references(path), key)

    def apply(self, frame: Frame, *, where: str = "frame") -> Frame:
        """``frame`` with ``energy − E_ref[sid]`` (unlabelled frames pass unchanged); raises when the frame has
        no system id or the id has no reference."""
        if frame.energy is None:
            return frame
        if self.key not in frame.info:
            raise MLIPInputError(f"{where}: no info[{self.key!r}] to look up a reference energy by")
        sid = system_id(frame.info[self.key])
        if sid not in self.energies:
            raise MLIPInputError(f"{where}: system {frame.info[self.key]!r} has no reference energy")
        info = {**frame.info, "energy_reference": self.energies[sid]}
        return dataclasses.replace(frame, energy=frame.energy - self.energies[sid], info=info)
