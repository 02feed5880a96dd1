"""Hessian of the energy with respect to the positions by autograd: ``mlip.hessian(atoms, model)``.

.. math::  H_{(a\\alpha),(b\\beta)} = \\partial^2 E / \\partial x_{a\\alpha} \\partial x_{b\\beta}
           = -\\partial F_{a\\alpha} / \\partial x_{b\\beta}

``[3N, 3N]`` in eV/Å², rows and columns ordered atom-major (``3a + α``), the layout of ASE's and phonopy's
(``H.reshape(N, 3, N, 3).transpose(0, 2, 1, 3)`` are phonopy's force constants of a supercell). The forces come
from one backward pass that keeps its graph; each row of ``H`` is one more backward pass through it (``3N`` in
all; cost about ``3N`` force calls, memory that of one training step). Periodic images are handled by
the neighbour list: displacing an atom moves all its images, so ``H`` of a periodic cell is the Γ-point (summed over
images) Hessian of that cell, exactly what finite differences of that cell's forces give.
"""

from __future__ import annotations

from pathlib import Path

import ase
import numpy as np
import torch
from torch import nn

from mlip import keys as K
from mlip.data import atoms_to_graph
from mlip.data.batch import batch_on
from mlip.errors import MLIPInputError
from mlip.inference.loader import resolve_model

__all__ = ["hessian"]


def hessian(
    atoms: ase.Atoms, model: nn.Module | str | Path, *, device: str = "cpu", dtype: str | None = None
) -> np.ndarray:
    """``[3N, 3N]`` float64 Hessian (eV/Å²) of ``model``'s energy at ``atoms`` (module docstring).

    Args:
        atoms: the structure.
        model: an mlip model file or ``nn.Module`` (a converted copy when ``device``/``dtype`` differ).
        device, dtype: where and in which dtype the network runs (float64 for phonons: a second derivative
            amplifies float32 rounding).
    """
    if not isinstance(atoms, ase.Atoms):
        raise MLIPInputError(f"hessian: expected ase.Atoms, got {type(atoms).__name__}")
    net = resolve_model(model, device=device, dtype=dtype)
    graph = atoms_to_graph(atoms, net.r_max, where="hessian input")
    net.species.check(graph[K.ATOMIC_NUMBERS])
    batch = batch_on([graph], device)
    positions = batch[K.POSITIONS].detach().clone().requires_grad_(True)
    batch[K.POSITIONS] = positions
    # compute_forces=False: the energy stays a function of our own leaf ``positions``; we differentiate twice.
    energy = net(batch, compute_forces=False, compute_stress=False)[K.ENERGY].sum()
    (gradient,) = torch.autograd.grad(energy, positions, create_graph=True)
    flat = gradient.reshape(-1)
    n = flat.numel()
    rows = []
    for k in range(n):
        (row,) = torch.autograd.grad(flat[k], positions, retain_graph=k < n - 1, allow_unused=True)
        rows.append(torch.zeros_like(positions).reshape(-1) if row is None else row.reshape(-1))
    return torch.stack(rows).detach().cpu().numpy().astype(np.float64)
