"""Batching many graphs into one (concatenation along atoms and edges, stacking per structure)."""

from __future__ import annotations

import torch

from mlip import keys as K

__all__ = ["collate", "to_device", "batch_on"]


def collate(graphs: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One batch from graphs of :func:`mlip.data.graph.atoms_to_graph`.

    Node and edge fields are concatenated, graph fields stacked, ``EDGE_INDEX`` offset by the atoms before each
    graph, and ``BATCH`` ``[n_atoms]`` records which structure each atom belongs to.
    """
    if not graphs:
        raise ValueError("cannot collate an empty list of graphs")
    out: dict[str, torch.Tensor] = {}
    counts = torch.tensor([len(g[K.POSITIONS]) for g in graphs])
    offsets = torch.cumsum(counts, 0) - counts
    for key in graphs[0]:
        values = [g[key] for g in graphs]
        if key == K.EDGE_INDEX:
            out[key] = torch.cat([v + o for v, o in zip(values, offsets.tolist())], dim=1)
        else:
            out[key] = torch.cat(values, dim=0)
    out[K.BATCH] = torch.repeat_interleave(torch.arange(len(graphs)), counts)
    return out


def to_device(batch: dict[str, torch.Tensor], device: torch.device | str) -> dict[str, torch.Tensor]:
    """Move every tensor of ``batch`` to ``device`` (dtypes unchanged)."""
    return {k: v.to(device) for k, v in batch.items()}


def batch_on(graphs: list[dict[str, torch.Tensor]], device: torch.device | str) -> dict[str, torch.Tensor]:
    """:func:`collate` the ``graphs`` and move the batch to ``device``: the one way every consumer of a model
    (training, :mod:`mlip.inference`, the calculators, simulation engines and drivers) builds its input."""
    return to_device(collate(graphs), device)
