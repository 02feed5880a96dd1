"""What an edge product computes: its kind, input and output irreps and weights (the kinds are described in
:mod:`mlip.kernels.product`, whose :func:`~mlip.kernels.product.edge_product` maps a descriptor and a backend to a
module). The kinds' modules (:mod:`mlip.kernels.edge_products`, :mod:`mlip.kernels.channelwise`) read it."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mlip.kernels.cached import cached_property
from mlip.kernels.channelwise_descriptor import ChannelwiseTPDescriptor
from mlip.kernels.irreps import Irrep, Irreps

__all__ = ["ProductKind", "pseudo_partners", "EdgeProductDescriptor"]


class ProductKind(str, enum.Enum):
    """The family of tensor product (see the module docstring)."""

    CG = "cg"
    GAUNT_FFT = "gaunt_fft"
    GAUNT_GRID = "gaunt_grid"
    VECTOR_GRID = "vector_grid"
    CP = "cp"


def _natural_lmax(irreps: Irreps, name: str, kind: ProductKind) -> int:
    """``L`` when ``irreps == 0e + 1o + ... + L`` (what the sphere-function kinds need), else a clear error."""
    lmax = irreps.lmax if len(irreps) else -1
    if lmax < 0 or irreps != Irreps.spherical_harmonics(lmax):
        raise ValueError(
            f"the {kind.value} product needs {name} = 0e+1o+2e+... (every degree once, natural parity, "
            f"sorted), got {irreps}; use kind 'cg' for other irreps"
        )
    return lmax


def pseudo_partners(irreps: Irreps) -> Irreps:
    """The opposite-parity irreps ``l >= 1`` of ``irreps`` (``0e+1o+2e -> 1e+2o``): what odd paths add."""
    return Irreps([Irrep(ir.l, -ir.p) for ir in irreps if ir.l >= 1])


@dataclass(frozen=True, kw_only=True)
class EdgeProductDescriptor:
    """What an edge product computes.

    Attributes:
        irreps_in1: per-channel irreps of the node features ``x``.
        irreps_in2: irreps of the single-channel edge attributes ``y``.
        irreps_out_filter: output irreps a coupling may produce; others are dropped.
        kind: the product family.
        cp_rank: CP rank for ``kind=CP`` (default ``7 L^2``, TDN's schedule).
    """

    irreps_in1: Irreps
    irreps_in2: Irreps
    irreps_out_filter: Irreps
    kind: ProductKind = ProductKind.CG
    cp_rank: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ProductKind(self.kind))
        for name in ("irreps_in1", "irreps_in2", "irreps_out_filter"):
            object.__setattr__(self, name, Irreps(getattr(self, name)))
        if self.kind is not ProductKind.CG:
            _natural_lmax(self.irreps_in1, "irreps_in1", self.kind)
            _natural_lmax(self.irreps_in2, "irreps_in2", self.kind)
        if self.cp_rank is not None and (self.kind is not ProductKind.CP or self.cp_rank < 1):
            raise ValueError(f"cp_rank={self.cp_rank} needs kind 'cp' and a rank >= 1")
        if not len(self.irreps_out):
            raise ValueError(
                f"{self.kind.value}: {self.irreps_in1} x {self.irreps_in2} produces nothing in "
                f"{self.irreps_out_filter}"
            )

    @property
    def lmax1(self) -> int:
        return self.irreps_in1.lmax

    @property
    def lmax2(self) -> int:
        return self.irreps_in2.lmax

    @cached_property
    def channelwise(self) -> ChannelwiseTPDescriptor:
        """The CG descriptor with the same inputs and filter (the ``CG`` kind, and the ``CP`` couplings)."""
        return ChannelwiseTPDescriptor(self.irreps_in1, self.irreps_in2, self.irreps_out_filter)

    @cached_property
    def irreps_out(self) -> Irreps:
        """Output blocks, in order. ``CG``: one per path. ``CP``: one per distinct irrep of the CG paths, sorted.
        Gaunt kinds: the natural irreps ``0e..`` up to the filter's highest natural degree; ``VECTOR_GRID``
        appends the pseudo irreps ``1e, 2o, ..`` the filter keeps."""
        allowed = set(self.irreps_out_filter)
        if self.kind is ProductKind.CG:
            return self.channelwise.irreps_out
        if self.kind is ProductKind.CP:
            return Irreps(list(dict.fromkeys(self.channelwise.irreps_out)))
        reach = self.lmax1 + self.lmax2
        natural = [ir for ir in Irreps.spherical_harmonics(reach) if ir in allowed]
        lmax_out = max((ir.l for ir in natural), default=-1)
        out = list(Irreps.spherical_harmonics(lmax_out))
        if self.kind is ProductKind.VECTOR_GRID:
            out += [ir for ir in pseudo_partners(Irreps.spherical_harmonics(reach)) if ir in allowed]
        return Irreps(out)

    @property
    def lmax_out(self) -> int:
        return self.irreps_out.lmax

    @property
    def num_weights(self) -> int:
        """Per-edge weights per channel: paths for ``CG``; ``(L1 + 1) + (L2 + 1)`` degree weights otherwise."""
        if self.kind is ProductKind.CG:
            return self.channelwise.num_paths
        return self.lmax1 + 1 + self.lmax2 + 1
