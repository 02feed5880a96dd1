"""Element-dependent equivariant linear map (MACE's skip connection ``FullyConnectedTP(h, one-hot(z))``)."""

from __future__ import annotations

import math

import torch
from torch import nn

from mlip.kernels.element_groups import apply_by_element, pick_element, use_grouped
from mlip.kernels.irreps import Irreps

__all__ = ["ElementLinear"]


class ElementLinear(nn.Module):
    """``y_n^{(ir)} = x_n^{(ir)} W^{(ir)}_{z_n} / sqrt(C_in)`` for every irrep present in both in and out.

    A tensor product with a one-hot element vector is exactly this: one weight matrix per element and irrep.
    Shapes: ``x [N, irreps_in.dim, C_in]``, ``species [N]`` (0-based) -> ``[N, irreps_out.dim, C_out]``.
    Eager on the CPU the nodes are grouped by element (:func:`~mlip.kernels.element_groups.apply_by_element`);
    compiled or on a GPU every element's map runs as one product and each node keeps its own
    (:func:`~mlip.kernels.element_groups.pick_element`). Neither gathers ``[N, C, C]`` per-node weights.
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
        self._source = {
            k: (b, p) for p, (b, k) in enumerate(self._pairs)
        }  # output block -> (input block, weight)
        self.weight = nn.Parameter(
            torch.randn(len(self._pairs), num_elements, channels_in, channels_out, dtype=dtype)
        )

    def forward(self, x: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        if use_grouped(x):
            return apply_by_element(x, species, lambda xs, z: self._blocks(xs, lambda w: w[z]))
        n_el, c_in, c_out = self.weight.shape[1:]

        def every_element(xs: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            # [n, d, C_in] @ [C_in, E * C_out] -> [n, d, E, C_out] -> each node's element
            y = xs @ w.permute(1, 0, 2).reshape(c_in, n_el * c_out)
            return pick_element(y.view(*xs.shape[:2], n_el, c_out), species, dim=2)

        return self._blocks(x, lambda w: w, every_element)

    def _blocks(self, x: torch.Tensor, select, product=torch.matmul) -> torch.Tensor:
        """``cat_k product(x[:, block b_k], select(weight[p_k])) / sqrt(C_in)`` over the output blocks (zeros where
        an output irrep has no input)."""
        s_in = self.irreps_in.slices()
        norm = 1.0 / math.sqrt(self.weight.shape[2])
        pieces = []
        for k, ir in enumerate(self.irreps_out):
            pair = self._source.get(k)
            if pair is None:
                pieces.append(x.new_zeros(x.shape[0], ir.dim, self.channels_out))
            else:
                b, p = pair
                pieces.append(product(x[:, s_in[b]], select(self.weight[p]).to(x.dtype)) * norm)
        return torch.cat(pieces, dim=1) if len(pieces) > 1 else pieces[0]
