"""Charge head: atomic partial charges from invariant node features, with the total-charge constraint.

.. math::  \\tilde q_i = \\mathrm{MLP}(h_i), \\qquad
           q_i = \\tilde q_i + \\frac{Q_b - \\sum_{j \\in b} \\tilde q_j}{n_b}

for atom ``i`` of structure ``b`` with net charge ``Q_b`` (``atoms.info["charge"]``, 0 by default) and ``n_b``
atoms. The correction is the orthogonal projection of ``\\tilde q`` onto the plane ``Σ q = Q_b`` (PhysNet's
charge correction, Unke and Meuwly, JCTC 15, 3678 (2019)): it is linear, differentiable and exact, and needs no
hardness or electronegativity parameters, unlike charge equilibration (4G-HDNNP), which we leave for later. The charges are latent: without charge labels they are learned from energies and forces alone.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ChargeHead", "constrain_total_charge"]


def constrain_total_charge(
    raw: torch.Tensor, batch: torch.Tensor, total_charge: torch.Tensor
) -> torch.Tensor:
    """Shift ``raw [N]`` uniformly within each structure so that it sums to ``total_charge [G]`` (e)."""
    n_graphs = total_charge.shape[0]
    sums = torch.zeros(n_graphs, dtype=raw.dtype, device=raw.device).index_add(0, batch, raw)
    counts = torch.bincount(batch, minlength=n_graphs).to(raw.dtype).clamp(min=1)
    return raw + ((total_charge.to(raw.dtype) - sums) / counts)[batch]


class ChargeHead(nn.Module):
    """``[N, C]`` invariant features -> ``[N]`` charges (e) summing to each structure's net charge.

    Args:
        channels: feature width ``C``.
        hidden: hidden width of the two-layer MLP.
        dtype: parameter dtype.
    """

    def __init__(self, channels: int, hidden: int, *, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden, dtype=dtype), nn.SiLU(), nn.Linear(hidden, 1, dtype=dtype)
        )

    def forward(
        self, features: torch.Tensor, batch: torch.Tensor, total_charge: torch.Tensor
    ) -> torch.Tensor:
        raw = self.mlp(features).squeeze(-1).to(torch.float64)
        return constrain_total_charge(raw, batch, total_charge)
