"""Re-fit the per-element reference energies ``E_0`` of a trained model to its own energy residuals.

A model's energy is ``E_g = Σ_i E_0(z_i) + (network)``; a constant offset per element is therefore an exact,
linear correction. With the per-atom residuals of the labelled frames

.. math::  b_g = \\frac{E^{ref}_g - \\hat E_g}{N_g}, \\qquad A_{gZ} = \\frac{n_{gZ}}{N_g}

(``n_{gZ}`` atoms of element ``Z`` in frame ``g``), the correction is the least-squares solution

.. math::  δ = \\arg\\min_δ \\lVert A δ - b \\rVert^2 = (A^T A)^+ A^T b ,

found from the normal equations, which are sums over frames (so they are accumulated batch by batch and summed
over distributed ranks). ``E_0 ← E_0 + δ`` then minimises the per-atom energy RMSE that the loss and the metrics
use, over all per-element constants: the training residuals after the update are orthogonal to every column of
``A``, and their sum of squares is exactly ``bᵀb − 2 δᵀAᵀb + δᵀAᵀAδ``. The pseudo-inverse gives the
minimum-norm ``δ`` when compositions do not determine every element (e.g. a binary compound at one
stoichiometry): only the determined combinations move.

Why: with forces weighted 100 times more than energies, a short training run leaves a nearly uniform energy
offset of tens of meV/atom that the network corrects only slowly; this removes it exactly, at the cost of one
energy-only pass over the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mlip import keys as K

__all__ = ["NormalEquations", "energy_normal_equations", "refit_atomic_energies"]


@dataclass
class NormalEquations:
    """``AᵀA [S, S]``, ``Aᵀb [S]``, ``bᵀb`` (eV²/atom²) and the number of labelled frames, float64."""

    ata: torch.Tensor
    atb: torch.Tensor
    btb: torch.Tensor
    frames: torch.Tensor

    def solve(self) -> torch.Tensor:
        """The minimum-norm least-squares ``δ [S]`` (eV); 0 for elements no labelled frame contains."""
        ata = self.ata.cpu().numpy()
        delta = np.linalg.pinv(ata, rcond=1e-10, hermitian=True) @ self.atb.cpu().numpy()
        return torch.from_numpy(delta)

    def rmse(self, delta: torch.Tensor | None = None) -> float:
        """Per-atom energy RMSE (meV/atom) of the residuals, before (``delta=None``) or after adding ``delta``."""
        n = float(self.frames)
        if n == 0:
            return float("nan")
        sse = float(self.btb)
        if delta is not None:
            d = delta.to(self.ata)
            sse = float(self.btb - 2 * d @ self.atb + d @ self.ata @ d)
        return 1000.0 * (max(sse, 0.0) / n) ** 0.5

    def as_vector(self) -> torch.Tensor:
        """All sums in one flat tensor (for one all-reduce)."""
        return torch.cat([self.ata.flatten(), self.atb, self.btb.view(1), self.frames.view(1)])

    @classmethod
    def from_vector(cls, v: torch.Tensor, n_species: int) -> NormalEquations:
        s2 = n_species * n_species
        return cls(ata=v[:s2].view(n_species, n_species), atb=v[s2 : s2 + n_species], btb=v[-2], frames=v[-1])


@torch.no_grad()
def energy_normal_equations(model, batches, *, device=None) -> NormalEquations:
    """Accumulate the normal equations of the per-element offset fit over ``batches`` (an iterable of collated
    batches; energy-only forward passes in eval mode, no forces). Frames without an energy label are skipped."""
    was_training = model.training
    model.eval()
    try:
        return _accumulate(model, batches, device)
    finally:
        model.train(was_training)


def _accumulate(model, batches, device) -> NormalEquations:
    n_species = model.atomic_energies.shape[0]
    device = device or model.atomic_energies.device
    ata = torch.zeros(n_species, n_species, dtype=torch.float64, device=device)
    atb = torch.zeros(n_species, dtype=torch.float64, device=device)
    btb = torch.zeros((), dtype=torch.float64, device=device)
    frames = torch.zeros((), dtype=torch.float64, device=device)
    for batch in batches:
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        pred = model(batch, compute_forces=False)[K.ENERGY].to(torch.float64)
        n_graphs = pred.shape[0]
        species = model.species(batch[K.ATOMIC_NUMBERS])
        counts = torch.zeros(n_graphs, n_species, dtype=torch.float64, device=device)
        counts.index_put_(
            (batch[K.BATCH], species), torch.ones_like(species, dtype=torch.float64), accumulate=True
        )
        n_atoms = batch[K.N_ATOMS].to(torch.float64)
        keep = batch[K.ENERGY_WEIGHT].to(torch.float64) > 0
        a = (counts / n_atoms[:, None])[keep]
        b = ((batch[K.ENERGY].to(torch.float64) - pred) / n_atoms)[keep]
        ata += a.T @ a
        atb += a.T @ b
        btb += b @ b
        frames += keep.sum()
    return NormalEquations(ata=ata, atb=atb, btb=btb, frames=frames)


def refit_atomic_energies(model, batches, *, reduce=None) -> dict:
    """Fit ``δ`` on ``batches`` (see the module docstring), add it to ``model``'s ``E_0`` and return a report:
    ``rmse_before`` / ``rmse_after`` (meV/atom, over the fitted frames), ``frames`` and ``delta_e0``
    (``{symbol: eV}``). ``reduce``: a callable summing a float64 tensor over distributed ranks (or ``None``).
    With no energy-labelled frame the model is left unchanged."""
    from ase.data import chemical_symbols

    eq = energy_normal_equations(model, batches)
    if reduce is not None:
        eq = NormalEquations.from_vector(reduce(eq.as_vector()), model.atomic_energies.shape[0])
    if float(eq.frames) == 0:
        return {"frames": 0}
    delta = eq.solve()
    model.set_atomic_energies(model.atomic_energies.detach().cpu() + delta)
    return {
        "frames": int(eq.frames),
        "rmse_before": eq.rmse(),
        "rmse_after": eq.rmse(delta),
        "delta_e0": {chemical_symbols[z]: float(d) for z, d in zip(model.atomic_numbers, delta)},
    }
