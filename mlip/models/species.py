"""Atomic numbers -> 0-based element indices, with a clear error for unsupported elements."""

from __future__ import annotations

import torch
from ase.data import chemical_symbols
from torch import nn

from mlip.errors import MLIPInputError
from mlip.kernels.tracing import is_tracing

__all__ = ["SpeciesMap"]


class SpeciesMap(nn.Module):
    """Maps ``Z [N]`` to indices ``[N]`` into ``atomic_numbers`` (sorted); raises on unknown elements."""

    def __init__(self, atomic_numbers: tuple[int, ...] | list[int]) -> None:
        super().__init__()
        self.atomic_numbers = list(atomic_numbers)
        table = torch.full((119,), -1, dtype=torch.int64)
        table[torch.tensor(self.atomic_numbers)] = torch.arange(len(self.atomic_numbers))
        self.register_buffer("table", table, persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Element indices ``[N]`` (int64) of the atomic numbers ``z [N]``.

        Eager, it checks ``z`` (:meth:`check`; one host synchronisation). Traced (compiled or exported), the check is an assertion in
        the graph (``torch._assert_async``): the same condition, raised as a ``RuntimeError`` by the compiled
        code, without a synchronisation on devices that run it asynchronously. (The model's ``forward`` maps
        species eagerly, outside :meth:`~mlip.models.base.EdgePotential.compile_network`'s graph; the compiled
        branch serves ``torch.compile`` of a whole model.)
        """
        if not is_tracing():
            self.check(z)
            return self.table[z]
        idx = self.table[z.clamp(0, self.table.shape[0] - 1)]
        known = (z >= 1) & (z < self.table.shape[0]) & (idx >= 0)
        torch._assert_async(known.all(), "unknown element: an atomic number this model does not support")
        return idx

    def check(self, z: torch.Tensor) -> None:
        """Raise :class:`~mlip.errors.MLIPInputError` naming any atomic number outside 1..118 or this model's
        elements."""
        if z.numel() and (int(z.min()) < 1 or int(z.max()) > 118):
            raise MLIPInputError(
                f"atomic numbers must be in 1..118, got range [{int(z.min())}, {int(z.max())}]"
            )
        idx = self.table[z]
        if (idx < 0).any():
            unknown = sorted({chemical_symbols[int(x)] for x in z[idx < 0].unique()})
            known = [chemical_symbols[x] for x in self.atomic_numbers]
            raise MLIPInputError(f"unknown element(s) {unknown}: this model supports only {known}")
