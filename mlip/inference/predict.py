"""Batched prediction for many structures: ``mlip.predict(model, frames)``.

Frames (a list or any iterator of ``ase.Atoms``) are read one at a time, turned into graphs, and evaluated in
batches whose atoms and edges stay within a budget (``max_atoms``, ``max_edges``; a frame larger than the budget is a
batch of its own), so memory follows the budget, not the number of frames. Results come back in input order, float64
NumPy arrays in ASE's units and signs, per frame: ``energy`` (eV), ``forces`` ``[n, 3]`` (eV/Å), ``stress``
``[3, 3]`` (eV/Å³, only for a frame with a periodic direction and a cell with volume), ``charges`` ``[n]`` (e, for a
model with a long-range term).

A frame that cannot be evaluated (an element the model does not know, overlapping atoms, NaN positions, a singular
cell, or one the model itself refuses, such as a slab given to a long-range model: a refused batch is evaluated
again frame by frame) is reported by its input index: ``on_error="raise"`` (default) stops with a one-line :class:`MLIPInputError`
naming it, after nothing else was lost (earlier results are in the error's ``results``); ``on_error="skip"``
records ``(index, reason)`` in :attr:`Predictions.failures`, leaves ``None`` in its place and goes on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import ase
import numpy as np
from torch import nn

from mlip import keys as K
from mlip.data import atoms_to_graph
from mlip.data.sources import iter_atoms
from mlip.errors import MLIPError, MLIPInputError
from mlip.inference.batching import batched_outputs
from mlip.inference.loader import resolve_model

__all__ = ["PredictionError", "Predictions", "iter_predict", "predict"]


@dataclass
class Predictions:
    """``results[i]``: the outputs of frame ``i`` (a dict, or ``None`` where it failed); ``failures``:
    ``(index, reason)`` of every frame left out."""

    results: list[dict[str, np.ndarray | float] | None] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i: int):
        return self.results[i]


class PredictionError(MLIPInputError):
    """A frame could not be evaluated (``on_error="raise"``); ``results`` holds what was computed before it."""

    def __init__(self, message: str, results: Predictions) -> None:
        super().__init__(message)
        self.results = results


def predict(
    model: nn.Module | str | Path,
    frames: Iterable[ase.Atoms] | str | Path,
    *,
    device: str = "cpu",
    dtype: str | None = None,
    max_atoms: int = 4096,
    max_edges: int | None = 200_000,
    on_error: str = "raise",
    progress: bool = False,
) -> Predictions:
    """Energies, forces, stress (and charges) of every frame, batched (module docstring).

    Args:
        model: an mlip model file or ``nn.Module`` (used as it is when it has ``dtype`` and lives on ``device``,
            else a converted copy; see :class:`~mlip.calculators.ase_calculator.MLIPCalculator`).
        frames: ``ase.Atoms``, a list or an iterator; or a data file or directory, streamed through its frame
            source (:func:`mlip.data.sources.iter_atoms`: any format the readers take).
        device, dtype: where and in which dtype the network runs (``None``: the model's).
        max_atoms, max_edges: the budget of one batch (``None``: no edge budget).
        on_error: ``"raise"`` or ``"skip"``.
        progress: show a progress bar (frames done).
    """
    out = Predictions()
    try:
        for index, result in iter_predict(
            model, frames, device=device, dtype=dtype, max_atoms=max_atoms, max_edges=max_edges,
            on_error=on_error, progress=progress, failures=out.failures,
        ):  # fmt: skip
            out.results.extend([None] * (index - len(out.results)))
            out.results.append(result)
    except PredictionError as err:
        raise PredictionError(str(err), out) from None
    last = max([len(out.results) - 1] + [i for i, _ in out.failures])
    out.results.extend([None] * (last + 1 - len(out.results)))
    return out


def iter_predict(
    model, frames: Iterable[ase.Atoms], *, device="cpu", dtype=None, max_atoms=4096, max_edges=200_000,
    on_error="raise", progress=False, failures: list[tuple[int, str]] | None = None, names=None,
) -> Iterator[tuple[int, dict]]:  # fmt: skip
    """``(index, result)`` of every frame evaluated, in input order, as batches complete (arguments as
    :func:`predict`; skipped frames are appended to ``failures``; ``names[index]``, when given, names a frame in
    messages instead of ``frame <index>``)."""
    if on_error not in ("raise", "skip"):
        raise MLIPInputError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if isinstance(frames, (str, Path)):
        frames = iter_atoms(frames)
    if max_atoms < 1 or (max_edges is not None and max_edges < 1):
        raise MLIPInputError(f"max_atoms and max_edges must be >= 1, got {max_atoms}, {max_edges}")
    net = resolve_model(model, device=device, dtype=dtype)
    bar = _progress(progress)

    def name_of(index: int) -> str:
        return names[index] if names is not None else f"frame {index}"

    def graphs():
        for index, atoms in enumerate(frames):
            graph = _graph(net, atoms, name_of(index), on_error, failures, index)
            if graph is not None:
                yield (index, atoms), graph

    def refused(tag, err: MLIPError) -> None:  # the model refused this frame on its own (evaluated alone)
        index = tag[0]
        reason = " ".join(str(err).split())
        if reason.startswith("structure 0 "):  # the model's own name for the only structure of its batch
            reason = "it " + reason.removeprefix("structure 0 ")
        _fail(name_of(index), reason, on_error, failures, index)

    batches = batched_outputs(
        net, graphs(), device=device, max_atoms=max_atoms, max_edges=max_edges, compute_stress=True,
        on_model_error=refused,
    )  # fmt: skip
    for tags, _, out in batches:  # a frame that cannot be read raises after the batch before it is yielded
        yield from _split(tags, out)
        if bar is not None:
            bar.update(len(tags))
    if bar is not None:
        bar.close()


def _progress(enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(unit="frame", desc="mlip.predict")


def _graph(net, atoms, name: str, on_error: str, failures, index: int) -> dict | None:
    """The frame's graph, or ``None`` (recorded) / a :class:`PredictionError` when it cannot be evaluated."""
    try:
        if not isinstance(atoms, ase.Atoms):
            raise MLIPInputError(f"expected ase.Atoms, got {type(atoms).__name__}")
        graph = atoms_to_graph(atoms, net.r_max, where=name)
        net.species.check(graph[K.ATOMIC_NUMBERS])
        return graph
    except MLIPError as err:
        _fail(name, " ".join(str(err).split()).removeprefix(f"{name}: "), on_error, failures, index)
        return None


def _fail(name: str, reason: str, on_error: str, failures, index: int) -> None:
    """Record frame ``index`` as left out (``on_error="skip"``) or raise a :class:`PredictionError` naming it."""
    if on_error == "raise":
        raise PredictionError(f"{name}: {reason}", Predictions())
    if failures is not None:
        failures.append((index, reason))


def _split(tags, out) -> Iterator[tuple[int, dict]]:
    """Per-frame results (float64 NumPy, ASE's units and signs) of one batch's outputs."""
    start = 0
    for g, (index, atoms) in enumerate(tags):
        n = len(atoms)
        result: dict = {
            "energy": float(out[K.ENERGY][g]),
            "forces": out[K.FORCES][start : start + n].cpu().numpy().astype(np.float64),
        }
        if atoms.pbc.any() and atoms.cell.volume > 1e-12:
            result["stress"] = out[K.STRESS][g].cpu().numpy().astype(np.float64)
        if K.CHARGES in out:
            result["charges"] = out[K.CHARGES][start : start + n].cpu().numpy().astype(np.float64)
        start += n
        yield index, result
