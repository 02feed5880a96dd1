"""Run an exported artefact (:mod:`mlip.deploy.export`) from mlip, with the contract's inputs checked.

Without mlip, ``torch.export.load(path).module()`` runs the same program; this wrapper adds what the program
cannot say for itself: a clear error for a file that is not an artefact, or one of another contract version, and
for inputs of the wrong dtype or shape (the program itself fails on them with PyTorch's own message, or, for a
float32 position array, "expected scalar type Float but found Double").
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import torch
from ase import Atoms

from mlip.deploy.export import (
    CONTRACT_VERSION,
    FORMAT,
    INPUTS,
    META_FILE,
    content_digest,
    contract_inputs,
)
from mlip.errors import MLIPFileNotFoundError, MLIPInputError

_DTYPES = {
    "positions": torch.float64, "cell": torch.float64, "pbc": torch.bool, "atomic_numbers": torch.int64,
    "edge_index": torch.int64, "edge_shifts": torch.float64,
}  # fmt: skip


__all__ = ["read_metadata", "ExportedModel"]


def read_metadata(path: str | Path, *, verify: bool = True) -> dict:
    """The artefact's ``mlip_export.json`` (checked: format, contract version and, with ``verify``, the SHA-256
    of the whole contents, :func:`~mlip.deploy.export.content_digest`), without loading the program."""
    path = Path(path)
    if not path.is_file():
        raise MLIPFileNotFoundError(f"no exported model at {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            name = next((n for n in zf.namelist() if n.endswith(f"extra/{META_FILE}")), None)
            meta = json.loads(zf.read(name)) if name else None
            digest = content_digest(zf, meta) if verify and isinstance(meta, dict) else None
    except zipfile.BadZipFile as err:
        raise MLIPInputError(f"{path} is damaged (truncated or altered): {err}") from None
    except (
        OSError,
        ValueError,
        EOFError,
        KeyError,
        NotImplementedError,
        RuntimeError,
    ) as err:  # zipfile's others
        raise MLIPInputError(f"{path} is not a readable exported mlip model ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise MLIPInputError(f"{path} is not an exported mlip model (no {META_FILE} with format {FORMAT!r})")
    if meta.get("contract_version") != CONTRACT_VERSION:
        raise MLIPInputError(
            f"{path} follows export contract version {meta.get('contract_version')}; this mlip runs version "
            f"{CONTRACT_VERSION} (export the model file again with this mlip)"
        )
    if verify and "sha256" not in meta:
        raise MLIPInputError(
            f"{path} has no checksum (sha256) in its {META_FILE}: written by an older mlip or altered; export the "
            "model file again"
        )
    if verify and digest != meta["sha256"]:
        raise MLIPInputError(f"{path} does not match its checksum (truncated or altered); export it again")
    return meta


class ExportedModel:
    """``ExportedModel(path)``: the artefact's program, its metadata (``atomic_numbers``, ``r_max`` Å,
    ``dtype``), and checked calls.

    ``model(positions, cell, pbc, atomic_numbers, edge_index, edge_shifts)`` returns the contract's dict of
    float64 tensors; ``model.compute(atoms)`` builds the inputs with mlip's neighbour list first.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.meta = read_metadata(self.path)
        try:
            self.program = torch.export.load(str(self.path)).module()
        except Exception as err:
            reason = " ".join(str(err).split())[:200]
            raise MLIPInputError(f"{self.path}: torch cannot load its program ({reason})") from None
        self.atomic_numbers = list(self.meta["atomic_numbers"])
        self.r_max = float(self.meta["r_max"])
        self.dtype = self.meta["dtype"]

    def __call__(self, *inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        if len(inputs) != len(INPUTS):
            raise MLIPInputError(f"{self.path} takes {len(INPUTS)} inputs {INPUTS}, got {len(inputs)}")
        for name, value in zip(INPUTS, inputs):
            if not isinstance(value, torch.Tensor) or value.dtype != _DTYPES[name]:
                got = value.dtype if isinstance(value, torch.Tensor) else type(value).__name__
                raise MLIPInputError(
                    f"{self.path} takes {name} as {_DTYPES[name]} (export contract {CONTRACT_VERSION}; the network "
                    f"runs in {self.dtype} inside), got {got}"
                )
        positions, cell, pbc, z, edge_index, shifts = inputs
        if positions.dim() != 2 or positions.shape[0] == 0:
            raise MLIPInputError(
                f"{self.path}: positions must be [N, 3] with N >= 1, got {tuple(positions.shape)}"
            )
        n, e = positions.shape[0], edge_index.shape[-1]
        expected = {"positions": (n, 3), "cell": (3, 3), "pbc": (3,), "atomic_numbers": (n,),
                    "edge_index": (2, e), "edge_shifts": (e, 3)}  # fmt: skip
        for name, value in zip(INPUTS, inputs):
            if tuple(value.shape) != expected[name]:
                raise MLIPInputError(
                    f"{self.path}: {name} must be {expected[name]}, got {tuple(value.shape)}"
                )
        if e and (int(edge_index.min()) < 0 or int(edge_index.max()) >= n):
            raise MLIPInputError(
                f"{self.path}: edge_index holds atom indices from {int(edge_index.min())} to "
                f"{int(edge_index.max())}; they must lie in [0, {n}) for {n} atoms"
            )
        unknown = sorted(set(z.tolist()) - set(self.atomic_numbers))
        if unknown:
            raise MLIPInputError(
                f"{self.path}: atomic numbers {unknown} are not among the model's {self.atomic_numbers}"
            )
        with torch.no_grad():
            return self.program(*inputs)

    def compute(self, atoms: Atoms) -> dict[str, torch.Tensor]:
        """The outputs for ``atoms`` (inputs from :func:`~mlip.deploy.export.contract_inputs`)."""
        return self(*contract_inputs(atoms, self.r_max))
