"""Grouping nodes by element, so element-dependent weights act on contiguous slices (no per-element gathers)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def apply_by_element(
    x: torch.Tensor, species: torch.Tensor, fn: Callable[[torch.Tensor, int], torch.Tensor]
) -> torch.Tensor:
    """``out[n] = fn(x[group of n], species[n])[row of n]``, evaluated once per element present.

    Nodes are sorted by element (one gather of ``x``), ``fn(x_slice, z)`` runs on each contiguous slice, and the
    results are concatenated and put back in the original order (one gather of the output). With a single
    element present this is just ``fn(x, z)``.
    """
    counts = torch.bincount(species)
    present = counts.nonzero().squeeze(-1).tolist()
    if len(present) == 1:
        return fn(x, present[0])
    order = torch.argsort(species, stable=True)
    xs = x.index_select(0, order)
    pieces, start = [], 0
    for z, n in zip(present, counts[present].tolist()):
        pieces.append(fn(xs[start : start + n], z))
        start += n
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(len(order), device=order.device)
    return torch.cat(pieces, dim=0).index_select(0, inverse)
