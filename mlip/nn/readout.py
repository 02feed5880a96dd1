"""Readouts: invariant (``0e``) channels -> one energy per atom (eV)."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["LinearReadout", "MLPReadout"]


class LinearReadout(nn.Module):
    """``e_i = h_i · w / sqrt(C)``. Shapes: ``h [N, C]`` -> ``[N]``."""

    def __init__(self, channels: int, *, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(channels, dtype=dtype))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.weight.to(h.dtype) / math.sqrt(self.weight.shape[0])


class MLPReadout(nn.Module):
    """``e_i = w2 · silu(W1 h_i / sqrt(C)) / sqrt(H)`` (MACE's last-layer readout, ``H = 16``).

    Shapes: ``h [N, C]`` -> ``[N]``.
    """

    def __init__(self, channels: int, hidden: int = 16, *, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(channels, hidden, dtype=dtype))
        self.w2 = nn.Parameter(torch.randn(hidden, dtype=dtype))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = torch.nn.functional.silu(h @ self.w1.to(h.dtype) / math.sqrt(self.w1.shape[0]))
        return z @ self.w2.to(h.dtype) / math.sqrt(self.w2.shape[0])
