"""What MACE's symmetric contraction computes: ``Sym^{1..correlation}(irreps_in) -> irreps_out`` and its bases
(the formula is in :mod:`mlip.kernels.symmetric_contraction`). The module there and cuEquivariance's backend
(:mod:`mlip.kernels.cueq`) read this descriptor."""

from __future__ import annotations

from dataclasses import dataclass

from mlip.kernels.cached import cached_property
from mlip.kernels.irreps import Irreps
from mlip.kernels.symmetric_basis import SymmetricBasis, symmetric_basis

__all__ = ["SymmetricContractionDescriptor"]


@dataclass(frozen=True)
class SymmetricContractionDescriptor:
    """``Sym^{1..correlation}(irreps_in) -> irreps_out``, channel-wise, element-dependent weights."""

    irreps_in: Irreps
    irreps_out: Irreps
    correlation: int

    def __post_init__(self) -> None:
        if not 1 <= self.correlation <= 4:
            raise ValueError(f"correlation must be in 1..4, got {self.correlation}")

    @cached_property
    def bases(self) -> tuple[SymmetricBasis, ...]:
        """One basis per ``(ν, L)``, ordered ``for ν: for L in irreps_out`` (the weight order)."""
        return tuple(
            symmetric_basis(self.irreps_in, nu, ir)
            for nu in range(1, self.correlation + 1)
            for ir in self.irreps_out
        )

    @cached_property
    def weight_offsets(self) -> tuple[int, ...]:
        out = [0]
        for b in self.bases:
            out.append(out[-1] + b.num_basis)
        return tuple(out)

    @property
    def num_weights(self) -> int:
        """Weights per element and channel."""
        return self.weight_offsets[-1]

    def output_slice(self, k: int) -> slice:
        """Slice of ``irreps_out`` written by basis ``k``."""
        return self.irreps_out.slices()[k % len(self.irreps_out)]
