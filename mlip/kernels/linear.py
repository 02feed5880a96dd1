"""Equivariant linear map between channel-last irreps features.

For each output irrep ``ir`` (a block of ``irreps_out``) the map mixes every input block carrying the same
irrep, over their channels:

.. math::  y^{(ir)}_{m, c'} = \\frac{1}{\\sqrt{n_{ir} C_{in}}} \\sum_{b:\\, ir_b = ir} \\sum_c x^{(b)}_{m c} W^{(ir)}_{b c c'}

(e3nn's ``Linear`` with ``path_normalization="element"``; weights ``~ N(0, 1)``, so unit-variance inputs give
unit-variance outputs). Output blocks with no matching input are zero. No bias: a bias would break equivariance
for ``l > 0`` and the models put their scalar offsets elsewhere.

Shapes: ``x [..., irreps_in.dim, C_in]`` -> ``[..., irreps_out.dim, C_out]``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mlip.kernels.irreps import Irreps

__all__ = ["EquivariantLinear"]


class EquivariantLinear(nn.Module):
    """See the module docstring. ``irreps_out`` must not repeat an irrep."""

    def __init__(
        self,
        irreps_in: Irreps,
        irreps_out: Irreps,
        *,
        channels_in: int,
        channels_out: int,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if len(set(irreps_out)) != len(irreps_out):
            raise ValueError(f"irreps_out {irreps_out} repeats an irrep")
        self.irreps_in, self.irreps_out = Irreps(irreps_in), Irreps(irreps_out)
        self.channels_in, self.channels_out = channels_in, channels_out
        self._plan: list[tuple[int, list[int]]] = []
        weights = []
        for k, ir in enumerate(self.irreps_out):
            sources = [b for b, ir_b in enumerate(self.irreps_in) if ir_b == ir]
            if not sources:
                continue
            self._plan.append((k, sources))
            weights.append(nn.Parameter(torch.randn(len(sources) * channels_in, channels_out, dtype=dtype)))
        self.weights = nn.ParameterList(weights)
        # output block -> (input blocks, index into self.weights), built once (forward is on the hot path)
        self._by_output = {k: (sources, i) for i, (k, sources) in enumerate(self._plan)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.irreps_in.dim, self.channels_in):
            raise ValueError(
                f"expected [..., {self.irreps_in.dim}, {self.channels_in}] for {self.irreps_in}, got {tuple(x.shape)}"
            )
        in_slices = self.irreps_in.slices()
        pieces = []
        for k, ir in enumerate(self.irreps_out):
            if k not in self._by_output:
                pieces.append(x.new_zeros(*x.shape[:-2], ir.dim, self.channels_out))
                continue
            sources, i = self._by_output[k]
            w = self.weights[i]
            blocks = [x[..., in_slices[b], :] for b in sources]
            stacked = blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=-1)
            pieces.append((stacked @ w.to(x.dtype)) / math.sqrt(w.shape[0]))
        return torch.cat(pieces, dim=-2) if len(pieces) > 1 else pieces[0]

    def forward_groups(self, groups: list[torch.Tensor]) -> torch.Tensor:
        """The same map from grouped input ``[..., P_g, 2l+1, C_in]`` per run of equal irreps (in the order of
        ``irreps_in``, as :meth:`~mlip.kernels.channelwise.ChannelwiseTPTorch.forward_groups` returns them) -> ``[..., irreps_out.dim, C_out]``.

        Each group is contracted over its paths and channels at once with ``einsum``, without concatenation.
        """
        runs, k = [], 0
        for g in groups:
            runs.append(self.irreps_in[k])
            k += g.shape[-3]
        by_ir = dict(zip(runs, groups))
        pieces = []
        for k, ir in enumerate(self.irreps_out):
            g = by_ir.get(ir)
            if k not in self._by_output or g is None:
                lead = groups[0].shape[:-3]
                pieces.append(groups[0].new_zeros(*lead, ir.dim, self.channels_out))
                continue
            w = (
                self.weights[self._by_output[k][1]]
                .to(g.dtype)
                .view(g.shape[-3], self.channels_in, self.channels_out)
            )
            pieces.append(torch.einsum("...pmc,pcf->...mf", g, w) / math.sqrt(w.shape[0] * w.shape[1]))
        return torch.cat(pieces, dim=-2) if len(pieces) > 1 else pieces[0]

    def extra_repr(self) -> str:
        return f"{self.channels_in}x({self.irreps_in}) -> {self.channels_out}x({self.irreps_out})"
