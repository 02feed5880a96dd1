"""Weighted energy (per atom), force and stress losses with label masks (mace-torch's ``weighted`` loss).

.. math::  L = λ_E \\frac{\\sum_g w_g m^E_g ρ((\\hat E_g - E_g)/N_g)}{\\sum_g m^E_g}
         + λ_F \\frac{\\sum_{i,α} w_{g(i)} m^F_i ρ(\\hat F_{iα} - F_{iα})}{3 \\sum_i m^F_i}
         + λ_σ \\frac{\\sum_{g,αβ} w_g m^σ_g ρ(\\hat σ_{g,αβ} - σ_{g,αβ})}{9 \\sum_g m^σ_g}
         + λ_q \\frac{\\sum_i w_{g(i)} m^q_{g(i)} ρ(\\hat q_i - q_i)}{\\sum_i m^q_{g(i)}}

with ``ρ(x) = x²`` (MSE) or Huber with threshold δ, per-configuration weights ``w`` and label masks ``m``
(0 where a frame has no such label; for forces also 0 on fixed atoms). The charge term exists only for a model that predicts charges (a
long-range term) and is 0 without charge labels; ``λ_q = 0`` (the default) keeps the charges latent.
"""

from __future__ import annotations

import torch

from mlip import keys as K


def _rho(x: torch.Tensor, kind: str, delta: float) -> torch.Tensor:
    if kind == "mse":
        return x * x
    if kind == "huber":
        return torch.nn.functional.huber_loss(x, torch.zeros_like(x), reduction="none", delta=delta)
    raise ValueError(f"unknown loss {kind!r}; use 'mse' or 'huber'")


def loss_terms(
    pred: dict[str, torch.Tensor],
    batch: dict[str, torch.Tensor],
    *,
    kind: str = "mse",
    delta: float = 0.01,
) -> dict[str, torch.Tensor]:
    """The unweighted terms (``energy``, ``forces``, ``stress``, ``charges``; a term without labels is 0)."""
    w = batch[K.WEIGHT]
    n_atoms = batch[K.N_ATOMS].to(w.dtype)
    terms = {}
    m = batch[K.ENERGY_WEIGHT]
    err = (pred[K.ENERGY] - batch[K.ENERGY]) / n_atoms
    terms["energy"] = (w * m * _rho(err, kind, delta)).sum() / m.sum().clamp(min=1.0)
    if K.FORCES in pred:
        m_atom = batch[K.FORCES_WEIGHT][batch[K.BATCH]]
        if K.FORCES_MASK in batch:  # fixed atoms leave the loss
            m_atom = m_atom * batch[K.FORCES_MASK]
        w_atom = w[batch[K.BATCH]]
        per_atom = _rho(pred[K.FORCES] - batch[K.FORCES], kind, delta).sum(-1)
        terms["forces"] = (w_atom * m_atom * per_atom).sum() / (3 * m_atom.sum()).clamp(min=1.0)
    if K.STRESS in pred:
        m = batch[K.STRESS_WEIGHT]
        per_graph = _rho(pred[K.STRESS] - batch[K.STRESS], kind, delta).sum((-1, -2))
        terms["stress"] = (w * m * per_graph).sum() / (9 * m.sum()).clamp(min=1.0)
    if K.CHARGES in pred and K.CHARGES_WEIGHT in batch:
        m_atom = batch[K.CHARGES_WEIGHT][batch[K.BATCH]]
        per_atom = _rho(pred[K.CHARGES] - batch[K.CHARGES], kind, delta)
        terms["charges"] = (w[batch[K.BATCH]] * m_atom * per_atom).sum() / m_atom.sum().clamp(min=1.0)
    return terms


def weighted_loss(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """``sum_k λ_k L_k`` over the terms present."""
    return sum(weights[k] * v for k, v in terms.items())
