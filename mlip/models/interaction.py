"""MACE interaction (``RealAgnosticResidualInteractionBlock``) and product blocks."""

from __future__ import annotations

import torch
from torch import nn

from mlip.kernels import (
    Backend,
    ChannelwiseTPDescriptor,
    EquivariantLinear,
    Irreps,
    SymmetricContraction,
    SymmetricContractionDescriptor,
    channelwise_tp,
)
from mlip.nn import RadialMLP
from mlip.nn.element_linear import ElementLinear


class InteractionBlock(nn.Module):
    """Messages ``A_i = Linear( sum_j TP_uvu(Linear(h_j), Y(r_ij); R(|r_ij|)) ) / avg_num_neighbors``.

    Also returns the element-dependent skip connection ``sc_i = W_{z_i} h_i`` into ``irreps_skip``.

    Shapes: ``h [N, irreps_node.dim, C]``, ``sh [E, irreps_sh.dim]``, ``radial [E, num_basis]`` (cutoff
    applied), ``species [N]``, ``edge_index [2, E]`` -> ``A [N, irreps_sh.dim, C]``, ``sc [N, irreps_skip.dim, C]``.
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
    ) -> None:
        super().__init__()
        self.avg_num_neighbors = float(avg_num_neighbors)
        c = channels
        self.linear_up = EquivariantLinear(
            irreps_node, irreps_node, channels_in=c, channels_out=c, dtype=dtype
        )
        self.tp_descriptor = ChannelwiseTPDescriptor(irreps_node, irreps_sh, irreps_sh)
        self.tp = channelwise_tp(
            self.tp_descriptor, backend if backend is not Backend.REFERENCE else Backend.TORCH
        )
        self.radial = RadialMLP([num_basis, *radial_mlp, self.tp_descriptor.num_paths * c], dtype=dtype)
        self.linear = EquivariantLinear(
            self.tp_descriptor.irreps_out, irreps_sh, channels_in=c, channels_out=c, dtype=dtype
        )
        self._grouped = hasattr(self.tp, "forward_groups")
        self.skip = ElementLinear(
            irreps_node, irreps_skip, channels_in=c, channels_out=c, num_elements=num_elements, dtype=dtype
        )

    def forward(self, h, sh, radial, species, edge_index):
        sender, receiver = edge_index
        weights = self.radial(radial).view(radial.shape[0], self.tp_descriptor.num_paths, h.shape[2])
        h_up = self.linear_up(h)
        if self._grouped:
            groups = self.tp.forward_groups(h_up, sh, weights, sender, receiver, h.shape[0])
            a = self.linear.forward_groups(groups) / self.avg_num_neighbors
        else:
            a = self.linear(self.tp(h_up, sh, weights, sender, receiver, h.shape[0])) / self.avg_num_neighbors
        return a, self.skip(h, species)


class ProductBlock(nn.Module):
    """``h_new = Linear(SymmetricContraction(A, z)) + sc``: the MACE product basis and its update.

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
    ) -> None:
        super().__init__()
        desc = SymmetricContractionDescriptor(irreps_in, irreps_out, correlation)
        self.contraction = SymmetricContraction(
            desc, channels=channels, num_elements=num_elements, backend=backend, dtype=dtype
        )
        self.linear = EquivariantLinear(
            irreps_out, irreps_out, channels_in=channels, channels_out=channels, dtype=dtype
        )

    def forward(self, a, species, sc):
        return self.linear(self.contraction(a, species)) + sc
