"""Element-dependent equivariant linear map (MACE's skip connection ``FullyConnectedTP(h, one-hot(z))``)."""

from __future__ import annotations

import math

import torch
from torch import nn

from mlip.kernels.irreps import Irreps


class ElementLinear(nn.Module):
    """``y_n^{(ir)} = x_n^{(ir)} W^{(ir)}_{z_n} / sqrt(C_in)`` for every irrep present in both in and out.

    A tensor product with a one-hot element vector is exactly this: one weight matrix per element and irrep.
    Shapes: ``x [N, irreps_in.dim, C_in]``, ``species [N]`` (0-based) -> ``[N, irreps_out.dim, C_out]``.
    Nodes are processed element by element (no ``[N, C, C]`` gathered weights).
    """

    def __init__(
        self,
        irreps_in: Irreps,
        irreps_out: Irreps,
        *,
        channels_in: int,
        channels_out: int,
        num_elements: int,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.irreps_in, self.irreps_out = Irreps(irreps_in), Irreps(irreps_out)
        self.channels_out = channels_out
        self._pairs = [
            (self.irreps_in.index(ir), k) for k, ir in enumerate(self.irreps_out) if ir in self.irreps_in
        ]
        self.weight = nn.Parameter(
            torch.randn(len(self._pairs), num_elements, channels_in, channels_out, dtype=dtype)
        )

    def forward(self, x: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        out = x.new_zeros(x.shape[0], self.irreps_out.dim, self.channels_out)
        s_in, s_out = self.irreps_in.slices(), self.irreps_out.slices()
        norm = 1.0 / math.sqrt(self.weight.shape[2])
        for z in torch.unique(species).tolist():
            nodes = (species == z).nonzero().squeeze(-1)
            xz = x.index_select(0, nodes)
            for p, (b, k) in enumerate(self._pairs):
                out[nodes, s_out[k]] = (xz[:, s_in[b]] @ self.weight[p, z].to(x.dtype)) * norm
        return out
