"""MPtrj (Deng et al. 2023, ``MPtrj_2022.9_full.json``) read as a stream: one frame in memory at a time.

Layout: ``{mp_id: {frame_id: record}}`` with ``record = {"structure": pymatgen Structure dict,
"uncorrected_total_energy": eV, "corrected_total_energy": eV (MP2020 corrections), "force": [N][3] eV/Å,
"stress": [3][3] kBar with VASP's sign (positive = compressive), "magmom": [N] μB or null, ...}``.

The file (11 GB for the full set) is never loaded whole. :func:`iter_mptrj_records` walks the two outer objects
with a small scanner and decodes each record with the C JSON decoder (``json.JSONDecoder.raw_decode``) from a
buffer that is refilled as needed, so memory is bounded by the largest record plus the buffer. Units follow
:mod:`mlip.keys`: stress ``σ_ASE = −0.1 GPa × σ_kBar`` in eV/Å³.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers

from mlip.errors import MLIPInputError

__all__ = ["is_mptrj_json", "iter_mptrj_records", "read_mptrj", "mptrj_record_to_atoms"]

_WS = " \t\n\r"
_KBAR_TO_EV_A3 = -0.1 * units.GPa  # VASP kBar (compressive positive) -> ASE eV/Å³ (tensile positive)


class _Scanner:
    """A refilling text buffer over a file with the few moves the MPtrj walk needs."""

    def __init__(self, fh, chunk: int, name: str = "MPtrj JSON") -> None:
        self.fh, self.chunk, self.name = fh, chunk, name
        self.buf, self.pos, self.offset, self.eof = "", 0, 0, False
        self.decoder = json.JSONDecoder()

    def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            data = self.fh.read(self.chunk)
        except UnicodeDecodeError as err:
            raise MLIPInputError(f"{self.name}: not UTF-8 text near character {self.offset + len(self.buf)} "
                                 f"({err.reason}; the file is corrupted)") from None  # fmt: skip
        if not data:
            self.eof = True
            return False
        self.offset += self.pos
        self.buf = self.buf[self.pos :] + data
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next non-whitespace character (consumed whitespace only), or '' at the end."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _WS:
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ""

    def expect(self, chars: str) -> str:
        c = self.peek()
        if c == "" or c not in chars:
            found = "the end of the file" if c == "" else repr(c)
            raise MLIPInputError(f"{self.name}: MPtrj JSON: expected one of {list(chars)} at character {self.offset + self.pos}, "
                             f"found {found} (truncated or not MPtrj's layout)")  # fmt: skip
        self.pos += 1
        return c

    def value(self):
        """Decode the JSON value starting at the next non-whitespace character."""
        self.peek()
        while True:
            try:
                obj, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as err:
                # the value may run past the buffer: read more and retry, unless the file has ended
                if self._fill():
                    continue
                raise MLIPInputError(f"{self.name}: MPtrj JSON: cannot decode the value at character {self.offset + self.pos}: "
                                 f"{err.msg} (the file is truncated or corrupted)") from None  # fmt: skip
            # a number or literal that ends exactly at the buffer end may continue in the next chunk
            partial = end == len(self.buf) and not isinstance(obj, (dict, list, str))
            if partial and self._fill():
                continue
            self.pos = end
            return obj


def iter_mptrj_records(path: str | Path, *, chunk_size: int = 1 << 20) -> Iterator[tuple[str, str, dict]]:
    """Yield ``(mp_id, frame_id, record)`` in file order, one record in memory at a time."""
    with open(path, encoding="utf-8") as fh:
        s = _Scanner(fh, chunk_size, Path(path).name)
        s.expect("{")
        if s.peek() == "}":
            return
        while True:
            mp_id = s.value()
            s.expect(":")
            s.expect("{")
            if s.peek() != "}":
                while True:
                    frame_id = s.value()
                    s.expect(":")
                    record = s.value()
                    if not isinstance(record, dict):
                        raise MLIPInputError(f"{s.name}: MPtrj frame {mp_id}/{frame_id} is not an object")
                    yield str(mp_id), str(frame_id), record
                    if s.expect(",}") == "}":
                        break
            else:
                s.expect("}")
            if s.expect(",}") == "}":
                return


def mptrj_record_to_atoms(record: dict, *, energy: str = "uncorrected", where: str = "MPtrj frame") -> Atoms:
    """One record -> periodic ``Atoms`` with a ``SinglePointCalculator`` holding energy (eV), forces (eV/Å),
    stress (eV/Å³, ASE sign) and, when present, magnetic moments."""
    key = {"uncorrected": "uncorrected_total_energy", "corrected": "corrected_total_energy"}.get(energy)
    if key is None:
        raise MLIPInputError(f"energy must be 'uncorrected' or 'corrected', got {energy!r}")
    try:
        structure = record["structure"]
        cell = np.asarray(structure["lattice"]["matrix"], dtype=np.float64).reshape(3, 3)
        numbers, positions = [], []
        for site in structure["sites"]:
            species = site["species"]
            if len(species) != 1 or abs(float(species[0].get("occu", 1.0)) - 1.0) > 1e-8:
                raise MLIPInputError(f"{where}: a disordered site ({species}) cannot become an atom")
            numbers.append(atomic_numbers[species[0]["element"]])
            positions.append(site["xyz"] if "xyz" in site else np.asarray(site["abc"]) @ cell)
        value = record[key]
        forces = np.asarray(record["force"], dtype=np.float64).reshape(len(numbers), 3)
    except KeyError as err:
        raise MLIPInputError(f"{where}: missing field {err} (MPtrj layout expected)") from None
    except (TypeError, ValueError, IndexError, AttributeError) as err:
        if isinstance(err, MLIPInputError):
            raise
        raise MLIPInputError(f"{where}: a malformed record ({type(err).__name__}: {err})") from None
    if value is None:
        raise MLIPInputError(f"{where}: {key} is null")
    atoms = Atoms(numbers=numbers, positions=np.asarray(positions, dtype=np.float64), cell=cell, pbc=True)
    results = {"energy": float(value), "forces": forces}
    if record.get("stress") is not None:
        sigma = _KBAR_TO_EV_A3 * np.asarray(record["stress"], dtype=np.float64).reshape(3, 3)
        results["stress"] = sigma[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]  # Voigt: xx, yy, zz, yz, xz, xy
    if record.get("magmom") is not None:
        results["magmoms"] = np.asarray(record["magmom"], dtype=np.float64)
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def read_mptrj(
    path: str | Path, energy: str = "uncorrected", *, chunk_size: int = 1 << 20
) -> Iterator[Atoms]:
    """Stream MPtrj JSON as ``ase.Atoms`` (labels on an attached SinglePointCalculator; ``info`` holds
    ``mp_id`` and ``frame_id``). ``energy`` picks ``uncorrected_total_energy`` (raw DFT, the default) or
    ``corrected_total_energy`` (with the MP2020 compatibility corrections)."""
    if energy not in ("uncorrected", "corrected"):
        raise MLIPInputError(f"energy must be 'uncorrected' or 'corrected', got {energy!r}")
    for mp_id, frame_id, record in iter_mptrj_records(path, chunk_size=chunk_size):
        atoms = mptrj_record_to_atoms(record, energy=energy, where=f"{Path(path).name}:{mp_id}/{frame_id}")
        atoms.info.update(mp_id=mp_id, frame_id=frame_id)
        yield atoms


def is_mptrj_json(path: Path) -> bool:
    """True when the file opens as MPtrj's ``{mp_id: {frame_id: {"structure", ...}}}`` (first record only)."""
    with open(path, "rb") as fh:
        if not fh.read(64).lstrip().startswith(b"{"):
            return False
    try:
        _, _, record = next(iter(iter_mptrj_records(path, chunk_size=1 << 16)))
    except (ValueError, StopIteration):
        return False
    return "structure" in record and "uncorrected_total_energy" in record
