"""MACE interaction (``RealAgnosticResidualInteractionBlock``) and product blocks."""

from __future__ import annotations

import torch
from torch import nn

from mlip.kernels import (
    Backend,
    EquivariantLinear,
    Irreps,
    SymmetricContraction,
    SymmetricContractionDescriptor,
)
from mlip.kernels.gaunt_product_basis import GauntProductBasis
from mlip.kernels.product import EdgeProductDescriptor, ProductKind, edge_product, pseudo_partners
from mlip.nn import RadialMLP
from mlip.nn.element_linear import ElementLinear
from mlip.nn.spline import SplineRadial

__all__ = ["message_irreps", "InteractionBlock", "ProductBlock"]


def message_irreps(irreps_sh: Irreps, kind: ProductKind) -> Irreps:
    """Irreps of the messages ``A``: those of the spherical harmonics, plus their pseudotensor partners for
    ``vector_grid`` (whose odd couplings produce them)."""
    if ProductKind(kind) is ProductKind.VECTOR_GRID:
        return irreps_sh + pseudo_partners(irreps_sh)
    return irreps_sh


class InteractionBlock(nn.Module):
    """Messages ``A_i = Linear( sum_j TP(Linear(h_j), Y(r_ij); R(|r_ij|)) ) / avg_num_neighbors``.

    ``TP`` is the edge product of kind ``kind`` (:mod:`mlip.kernels.product`; MACE's is ``cg``, the channel-wise
    ``uvu`` product). Also returns the element-dependent skip connection ``sc_i = W_{z_i} h_i`` into
    ``irreps_skip``. With ``residual=False`` (mace-torch's ``RealAgnosticInteractionBlock``) the element-dependent
    linear acts on the messages instead, ``A_i <- W_{z_i} A_i``, and ``sc`` is ``None``.

    The per-edge weights come from ``radial_net``: an MLP of the radial basis (``radial [E, num_basis]``, cutoff
    applied) or a :class:`~mlip.nn.spline.SplineRadial` of the distance (``radial [E]``, Å).

    Shapes: ``h [N, irreps_node.dim, C]``, ``sh [E, irreps_sh.dim]``, ``radial`` as above, ``species [N]``, ``edge_index [2, E]`` -> ``A [N, irreps_msg.dim, C]`` (``irreps_msg`` from
    :func:`message_irreps`), ``sc [N, irreps_skip.dim, C]``.
    """

    def __init__(
        self,
        *,
        irreps_node: Irreps,
        irreps_sh: Irreps,
        irreps_skip: Irreps,
        channels: int,
        num_basis: int,
        radial_mlp: tuple[int, ...],
        num_elements: int,
        avg_num_neighbors: float,
        backend: Backend,
        dtype: torch.dtype,
        kind: ProductKind = ProductKind.CG,
        cp_rank: int | None = None,
        radial_net: str = "mlp",
        r_max: float | None = None,
        num_spline_knots: int = 16,
        irreps_out: Irreps | None = None,
        residual: bool = True,
    ) -> None:
        super().__init__()
        self.avg_num_neighbors = float(avg_num_neighbors)
        c = channels
        self.linear_up = EquivariantLinear(
            irreps_node, irreps_node, channels_in=c, channels_out=c, dtype=dtype
        )
        # MACE's messages carry the irreps of the harmonics; other models (Facet) ask for their hidden irreps
        self.irreps_msg = Irreps(irreps_out) if irreps_out is not None else message_irreps(irreps_sh, kind)
        self.tp_descriptor = EdgeProductDescriptor(
            irreps_in1=irreps_node,
            irreps_in2=irreps_sh,
            irreps_out_filter=self.irreps_msg,
            kind=kind,
            cp_rank=cp_rank,
        )
        self.tp = edge_product(self.tp_descriptor, backend, channels=c)
        num_out = self.tp_descriptor.num_weights * c
        if radial_net == "mlp":
            self.radial = RadialMLP([num_basis, *radial_mlp, num_out], dtype=dtype)
        elif radial_net == "spline":
            if r_max is None:
                raise ValueError("radial_net 'spline' needs r_max")
            self.radial = SplineRadial(r_max=r_max, num_out=num_out, num_knots=num_spline_knots, dtype=dtype)
        else:
            raise ValueError(f"unknown radial_net {radial_net!r}; use 'mlp' or 'spline'")
        self.linear = EquivariantLinear(
            self.tp_descriptor.irreps_out, self.irreps_msg, channels_in=c, channels_out=c, dtype=dtype
        )
        self.residual = residual
        if residual:  # sc_i = W_{z_i} h_i, added after the product basis
            self.skip = ElementLinear(
                irreps_node,
                irreps_skip,
                channels_in=c,
                channels_out=c,
                num_elements=num_elements,
                dtype=dtype,
            )
        else:  # mace-torch's RealAgnosticInteractionBlock: A_i <- W_{z_i} A_i, and no skip connection
            self.skip = ElementLinear(
                self.irreps_msg, self.irreps_msg, channels_in=c, channels_out=c, num_elements=num_elements,
                dtype=dtype,
            )  # fmt: skip

    def forward(self, h, sh, radial, species, edge_index):
        sender, receiver = edge_index
        weights = self.radial(radial).view(radial.shape[0], self.tp_descriptor.num_weights, h.shape[2])
        h_up = self.linear_up(h)
        if self.tp_descriptor.kind is ProductKind.CG:
            groups = self.tp.forward_groups(h_up, sh, weights, sender, receiver, h.shape[0])
            a = self.linear.forward_groups(groups) / self.avg_num_neighbors
        else:
            a = self.linear(self.tp(h_up, sh, weights, sender, receiver, h.shape[0])) / self.avg_num_neighbors
        if not self.residual:
            return self.skip(a, species), None
        return a, self.skip(h, species)


class ProductBlock(nn.Module):
    """``h_new = Linear(B(A, z)) + sc``: the product basis ``B`` and the update.

    ``B`` is MACE's :class:`~mlip.kernels.symmetric_contraction.SymmetricContraction` (``product_basis=
    "symmetric_contraction"``) or the chained Gaunt products of
    :class:`~mlip.kernels.gaunt_product_basis.GauntProductBasis` (``"gaunt"``; natural-parity irreps only).

    Shapes: ``A [N, irreps_in.dim, C]``, ``species [N]``, ``sc [N, irreps_out.dim, C]`` -> ``[N, irreps_out.dim, C]``.
    """

    def __init__(
        self,
        *,
        irreps_in: Irreps,
        irreps_out: Irreps,
        channels: int,
        correlation: int,
        num_elements: int,
        backend: Backend,
        dtype: torch.dtype,
        product_basis: str = "symmetric_contraction",
    ) -> None:
        super().__init__()
        self.irreps_out = Irreps(irreps_out)
        if product_basis == "gaunt":
            if Backend(backend) not in (Backend.TORCH, Backend.AUTO):
                raise ValueError(
                    f"the Gaunt product basis runs with backend 'auto' or 'torch', not {backend.value!r}"
                )
            for name, irreps in (("irreps_in", irreps_in), ("irreps_out", irreps_out)):
                if irreps != Irreps.spherical_harmonics(irreps.lmax):
                    raise ValueError(
                        f"the Gaunt product basis needs natural-parity {name} 0e+1o+..., got {irreps}"
                    )
            self.contraction = GauntProductBasis(
                lmax_in=irreps_in.lmax,
                lmax_out=irreps_out.lmax,
                correlation=correlation,
                channels=channels,
                num_elements=num_elements,
                dtype=dtype,
            )
        elif product_basis == "symmetric_contraction":
            desc = SymmetricContractionDescriptor(irreps_in, irreps_out, correlation)
            self.contraction = SymmetricContraction(
                desc, channels=channels, num_elements=num_elements, backend=backend, dtype=dtype
            )
        else:
            raise ValueError(
                f"unknown product_basis {product_basis!r}; use 'symmetric_contraction' or 'gaunt'"
            )
        self.linear = EquivariantLinear(
            irreps_out, irreps_out, channels_in=channels, channels_out=channels, dtype=dtype
        )

    def forward(self, a, species, sc):
        out = self.linear(self.contraction(a, species))
        return out if sc is None else out + sc
