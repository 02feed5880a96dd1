"""Committee model files: several models of one file, for a mean prediction and its spread.

A committee file is a ``torch.save``\\ d dict holding the members' model payloads, each exactly as
:func:`~mlip.models.io.save_model` writes it (config, weights, own checksum)::

    {"format": "mlip-committee", "format_version": 1, "members": [payload, ...], "provenance": {...},
     "checksum": "<sha256 of the members' checksums>"}

:func:`load_committee` checks every member as :func:`~mlip.models.load_model` checks a file and returns the
models; :class:`~mlip.calculators.MLIPCalculator` and ``mlip-eval`` take a committee file where they take a model
file, and report the members' mean with its variance (``energy_var``, ``forces_var``, ``stress_var``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from torch import nn

from mlip.errors import MLIPInputError
from mlip.fileio import torch_save_atomic
from mlip.models.io import build_from_payload, check_payload, load_file, model_payload

__all__ = ["COMMITTEE_FORMAT", "save_committee", "load_committee", "load_models"]

#: The ``format`` entry of a committee file.
COMMITTEE_FORMAT = "mlip-committee"


def _checksum(members: list[dict]) -> str:
    return hashlib.sha256("|".join(str(m.get("checksum")) for m in members).encode()).hexdigest()


def save_committee(models: list[nn.Module], path: str | Path, *, provenance: dict | None = None) -> None:
    """Write ``models`` (at least 2, same elements and cutoff) to one committee file, atomically."""
    if len(models) < 2:
        raise MLIPInputError(f"a committee needs at least 2 models, got {len(models)}")
    members = [model_payload(m, provenance=provenance) for m in models]
    first = members[0]
    for k, m in enumerate(members[1:], start=1):
        if m["atomic_numbers"] != first["atomic_numbers"]:
            raise MLIPInputError(
                f"committee member {k} has elements {m['atomic_numbers']}, member 0 {first['atomic_numbers']}"
            )
    payload = {
        "format": COMMITTEE_FORMAT,
        "format_version": 1,
        "members": members,
        "provenance": dict(provenance or {}),
        "checksum": _checksum(members),
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch_save_atomic(payload, path)


def load_committee(path: str | Path, device="cpu", dtype: str | None = None) -> list[nn.Module]:
    """The members of a committee file, each checked and built as :func:`~mlip.models.load_model` does."""
    path = Path(path)
    payload = load_file(path)
    if not isinstance(payload, dict) or payload.get("format") != COMMITTEE_FORMAT:
        raise MLIPInputError(
            f"{path} is not an mlip committee file (no 'format': '{COMMITTEE_FORMAT}' entry)"
        )
    return _members(payload, path, device, dtype)


def _members(payload: dict, path: Path, device, dtype) -> list[nn.Module]:
    if payload.get("format_version") != 1:
        raise MLIPInputError(
            f"{path} has committee format version {payload.get('format_version')}; this mlip reads 1"
        )
    members = payload.get("members")
    if not isinstance(members, list) or len(members) < 2:
        raise MLIPInputError(f"{path} is damaged: it lists no committee members")
    if payload.get("checksum") != _checksum(members):
        raise MLIPInputError(
            f"{path} is damaged: its checksum does not match its members (altered or truncated)"
        )
    return [
        build_from_payload(
            check_payload(m, where=f"{path} member {k}"),
            where=f"{path} member {k}",
            device=device,
            dtype=dtype,
        )
        for k, m in enumerate(members)
    ]


def load_models(path: str | Path, device="cpu", dtype: str | None = None) -> list[nn.Module]:
    """The model of a model file as a list of one, or the members of a committee file (the file is read once)."""
    path = Path(path)
    payload = load_file(path)
    if isinstance(payload, dict) and payload.get("format") == COMMITTEE_FORMAT:
        return _members(payload, path, device, dtype)
    return [
        build_from_payload(
            check_payload(payload, where=str(path)), where=str(path), device=device, dtype=dtype
        )
    ]
