"""A model over many graphs, in batches under an atom and edge budget.

One pipeline for every caller that evaluates many structures: :func:`mlip.predict` (frames read as ``ase.Atoms``)
and the training run's final evaluation (graphs of a dataset, labels included) both stream their graphs through
:func:`batched_outputs`. Graphs are taken one at a time and gathered into a batch until the next one would take it
past ``max_atoms`` atoms, ``max_edges`` edges or ``max_frames`` frames; a graph larger than the budget is a batch of
its own. Memory therefore follows the budget, not the number of structures, and a source that is an iterator
(a file being read) is never held whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

from mlip import keys as K
from mlip.data.batch import batch_on
from mlip.errors import MLIPError

__all__ = ["batched_outputs", "Graph"]

Graph = dict[str, torch.Tensor]


def batched_outputs(
    model: nn.Module,
    graphs: Iterable[tuple[Any, Graph]],
    *,
    device: torch.device | str,
    max_atoms: int,
    max_edges: int | None = None,
    max_frames: int | None = None,
    compute_stress: bool | None = None,
    on_model_error: Callable[[Any, MLIPError], None] | None = None,
) -> Iterator[tuple[list[Any], Graph, Graph]]:
    """``(tags, batch, outputs)`` for consecutive batches of ``graphs``, in input order.

    Args:
        model: an mlip model (``model(batch, compute_forces=True, compute_stress=...)``).
        graphs: ``(tag, graph)`` pairs, graphs as :func:`mlip.data.atoms_to_graph` makes them (CPU tensors); the tag
            is anything the caller wants back with the batch (an index, the source frame).
        device: where the batch is moved before the model runs.
        max_atoms, max_edges, max_frames: the budget of one batch (``None``: no limit on that count).
        compute_stress: ``True``/``False``; ``None`` computes it for a batch where some graph has a stress label
            (``STRESS_WEIGHT > 0``).
        on_model_error: when given, a batch that the model refuses (an :class:`~mlip.errors.MLIPError` from its
            forward, e.g. a slab given to a long-range model) is evaluated again one graph at a time, and for each
            graph the model refuses on its own ``on_model_error(tag, error)`` is called (it may raise) and the
            graph is left out; without it the error propagates.

    Returns (yields):
        ``tags`` (``list``, one per graph of the batch), ``batch`` (the collated graphs on ``device``) and the
        model's ``outputs`` (``ENERGY`` ``[n_graphs]`` eV, ``FORCES`` ``[n_atoms, 3]`` eV/Å, ``STRESS``
        ``[n_graphs, 3, 3]`` eV/Å³ when computed, ``CHARGES`` when the model has them), detached.

    An exception raised by ``graphs`` itself (a frame that cannot be read) comes after the batch gathered before it
    has been yielded, so nothing computed before a bad frame is lost.
    """
    if (
        max_atoms < 1
        or (max_edges is not None and max_edges < 1)
        or (max_frames is not None and max_frames < 1)
    ):
        raise ValueError(f"the batch budget must be >= 1, got {max_atoms}, {max_edges}, {max_frames}")
    pending: list[tuple[Any, Graph]] = []
    atoms_in = edges_in = 0
    source = iter(graphs)
    while True:
        try:
            item = next(source)
        except StopIteration:
            break
        except BaseException:
            if pending:
                yield from _checked(model, pending, device, compute_stress, on_model_error)
            raise
        n, e = int(item[1][K.POSITIONS].shape[0]), int(item[1][K.EDGE_INDEX].shape[1])
        full = (
            atoms_in + n > max_atoms
            or (max_edges is not None and edges_in + e > max_edges)
            or (max_frames is not None and len(pending) >= max_frames)
        )
        if pending and full:
            yield from _checked(model, pending, device, compute_stress, on_model_error)
            pending, atoms_in, edges_in = [], 0, 0
        pending.append(item)
        atoms_in, edges_in = atoms_in + n, edges_in + e
    if pending:
        yield from _checked(model, pending, device, compute_stress, on_model_error)


def _checked(
    model, pending, device, compute_stress, on_model_error
) -> Iterator[tuple[list[Any], Graph, Graph]]:
    """The batch's outputs; with ``on_model_error``, a refused batch is split into single graphs (see above)."""
    if on_model_error is None:
        yield _run(model, pending, device, compute_stress)
        return
    try:
        result = _run(model, pending, device, compute_stress)
    except MLIPError as err:
        if len(pending) == 1:
            on_model_error(pending[0][0], err)
            return
    else:
        yield result
        return
    for item in pending:
        try:
            result = _run(model, [item], device, compute_stress)
        except MLIPError as err:
            on_model_error(item[0], err)
            continue
        yield result


def _run(model, pending, device, compute_stress) -> tuple[list[Any], Graph, Graph]:
    batch = batch_on([g for _, g in pending], device)
    if compute_stress is None:
        compute_stress = K.STRESS_WEIGHT in batch and bool((batch[K.STRESS_WEIGHT] > 0).any())
    out = model(batch, compute_forces=True, compute_stress=compute_stress)
    return [t for t, _ in pending], batch, {k: v.detach() for k, v in out.items()}
