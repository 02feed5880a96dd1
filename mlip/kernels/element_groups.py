"""Element-dependent maps on nodes: grouped by element (CPU, eager) or all elements then a gather (compiled, GPU).

An element-dependent map ``out[n] = f_{z_n}(x[n])`` (MACE's skip connection, the symmetric contraction's last
step) has two exact evaluations:

``grouped`` (:func:`apply_by_element`)
    Sort the nodes by element and run ``f_z`` once per element present on a contiguous slice. No wasted work,
    but the slice sizes are data: reading them synchronises with the host and gives a Python loop whose length
    depends on the input. The fastest on the CPU in eager mode.
``gathered`` (:func:`pick_element`)
    Evaluate every element's map on every node as one batched product, ``[N, E, ...]``, then take each node's
    own slice. ``E`` times the multiply-adds of the last linear step (only that step: whatever comes before it
    is shared), but static shapes, no host synchronisation: what ``torch.compile`` and CUDA graphs need, and
    on a GPU the extra multiply-adds of a few elements cost less than a synchronisation.

:func:`use_grouped` says which one a call takes: grouped for eager CPU tensors, gathered under
``torch.compile`` / ``torch.export`` and on other devices.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mlip.kernels.tracing import is_tracing

__all__ = ["use_grouped", "apply_by_element", "pick_element"]


def use_grouped(x: torch.Tensor) -> bool:
    """True when ``x`` is an eager CPU tensor (grouped evaluation), False while compiling or on a GPU."""
    return x.device.type == "cpu" and not is_tracing()


def apply_by_element(
    x: torch.Tensor, species: torch.Tensor, fn: Callable[[torch.Tensor, int], torch.Tensor]
) -> torch.Tensor:
    """``out[n] = fn(x[group of n], species[n])[row of n]``, evaluated once per element present.

    Nodes are sorted by element (one gather of ``x``), ``fn(x_slice, z)`` runs on each contiguous slice, and the
    results are concatenated and put back in the original order (one gather of the output). With a single
    element present this is just ``fn(x, z)``. Synchronises with the host (module docstring): eager only.
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


def pick_element(values: torch.Tensor, species: torch.Tensor, dim: int) -> torch.Tensor:
    """``values`` with its element axis ``dim`` (size ``E``) reduced to each node's own element.

    ``values [N, ..., E, ...]`` (element axis at ``dim``), ``species [N]`` (0-based) -> ``values`` without
    axis ``dim``: ``out[n, ...] = values[n, ..., species[n], ...]``. One gather, static shapes.
    """
    dim = dim % values.dim()
    shape = [values.shape[0]] + [1] * (values.dim() - 1)
    index = species.view(shape).expand(*values.shape[:dim], 1, *values.shape[dim + 1 :])
    return values.gather(dim, index).squeeze(dim)
