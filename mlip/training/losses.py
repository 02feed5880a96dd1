"""Weighted energy, force, stress and charge losses with label masks (mace-torch's ``weighted`` loss and its options).

.. math::  L = λ_E \\frac{\\sum_g w_g m^E_g ρ_E(e_g)}{\\sum_g m^E_g}
         + λ_F \\frac{\\sum_{i,α} w_{g(i)} m^F_i ρ_F(\\hat F_{iα} - F_{iα})}{3 \\sum_i m^F_i}
         + λ_σ \\frac{\\sum_{g,αβ} w_g m^σ_g ρ_σ(\\hat σ_{g,αβ} - σ_{g,αβ})}{9 \\sum_g m^σ_g}
         + λ_q \\frac{\\sum_i w_{g(i)} m^q_{g(i)} ρ_q(\\hat q_i - q_i)}{\\sum_i m^q_{g(i)}}

with the energy error ``e_g = (\\hat E_g - E_g) / N_g`` (eV/atom, ``energy_per_atom=True``, the default) or
``\\hat E_g - E_g`` (eV), per-configuration weights ``w`` (``config_weight`` times ``data.config_type_weights``) and
label masks ``m`` (0 where a frame has no such label; for forces also 0 on fixed atoms). The charge term exists
only for a model that predicts charges (a long-range term); ``λ_q = 0`` (the default) keeps the charges latent.

Each property has its own ``ρ`` (:class:`LossKinds`):

* ``mse``: ``ρ(x) = x²``;
* ``huber``: ``ρ(x) = x²/2`` for ``|x| ≤ δ``, ``δ(|x| - δ/2)`` beyond (``torch.nn.functional.huber_loss``);
* ``conditional_huber`` (forces only; MACE-MP-0, Batatia et al. 2023, mace-torch's ``universal`` loss): Huber with
  a threshold that shrinks where the reference force is large, ``δ_i = δ c_k`` for ``|F_i|`` in the ``k``-th
  interval of ``thresholds`` (eV/Å, default ``(100, 200, 300)``) with ``c = (1, 0.7, 0.4, 0.1)``.
  The intervals are mace-torch's; they are in eV/Å, so for ordinary data every atom falls in the first one and the
  loss equals ``huber``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mlip import keys as K

#: The force and energy loss kinds a config may name.
KINDS = ("mse", "huber", "conditional_huber")
CONDITIONAL_FACTORS = (1.0, 0.7, 0.4, 0.1)
"""Multipliers of δ on the force-magnitude intervals of the conditional Huber loss (mace-torch's values)."""


__all__ = ["LossKinds", "conditional_delta", "loss_terms", "weighted_loss", "KINDS", "CONDITIONAL_FACTORS"]


@dataclass(frozen=True, kw_only=True)
class LossKinds:
    """``ρ`` per property (``mse``, ``huber``; ``conditional_huber`` for forces), the Huber threshold ``delta``
    (in each property's unit: eV/atom or eV, eV/Å, eV/Å³, e), whether the energy error is per atom, and the
    force-magnitude ``thresholds`` (eV/Å) of the conditional Huber loss."""

    energy: str = "mse"
    forces: str = "mse"
    stress: str = "mse"
    charges: str = "mse"
    delta: float = 0.01
    energy_per_atom: bool = True
    thresholds: tuple[float, float, float] = (100.0, 200.0, 300.0)

    def __post_init__(self) -> None:
        for name in ("energy", "forces", "stress", "charges"):
            kind = getattr(self, name)
            allowed = KINDS if name == "forces" else KINDS[:2]
            if kind not in allowed:
                raise ValueError(f"unknown {name} loss {kind!r}; use one of {list(allowed)}")
        if not self.delta > 0:
            raise ValueError(f"the Huber delta must be > 0, got {self.delta}")
        if not list(self.thresholds) == sorted(self.thresholds) or len(self.thresholds) != 3:
            raise ValueError(
                f"conditional Huber thresholds must be 3 increasing values, got {self.thresholds}"
            )


def _rho(x: torch.Tensor, kind: str, delta: float | torch.Tensor) -> torch.Tensor:
    if kind == "mse":
        return x * x
    if kind == "huber":  # δ a float or a per-element tensor (conditional Huber)
        a = x.abs()
        return torch.where(a <= delta, 0.5 * x * x, delta * (a - 0.5 * delta))
    raise ValueError(f"unknown loss {kind!r}; use 'mse' or 'huber'")


def conditional_delta(ref_forces: torch.Tensor, delta: float, thresholds) -> torch.Tensor:
    """``[N, 1]`` Huber threshold per atom: ``δ c_k`` with ``k`` the interval of ``|F_i|`` among ``thresholds``."""
    edges = torch.tensor(list(thresholds), dtype=ref_forces.dtype, device=ref_forces.device)
    k = torch.bucketize(torch.linalg.norm(ref_forces, dim=-1), edges, right=True)
    factors = torch.tensor(CONDITIONAL_FACTORS, dtype=ref_forces.dtype, device=ref_forces.device)
    return (delta * factors[k]).unsqueeze(-1)


def _forces_rho(err: torch.Tensor, ref: torch.Tensor, kinds: LossKinds) -> torch.Tensor:
    if kinds.forces == "conditional_huber":
        return _rho(err, "huber", conditional_delta(ref, kinds.delta, kinds.thresholds))
    return _rho(err, kinds.forces, kinds.delta)


def loss_terms(
    pred: dict[str, torch.Tensor],
    batch: dict[str, torch.Tensor],
    *,
    kinds: LossKinds | None = None,
) -> dict[str, torch.Tensor]:
    """The unweighted terms (``energy``, ``forces``, ``stress``, ``charges``; a term without labels is 0)."""
    kinds = kinds or LossKinds()
    w = batch[K.WEIGHT]
    terms = {}
    m = batch[K.ENERGY_WEIGHT]
    err = pred[K.ENERGY] - batch[K.ENERGY]
    if kinds.energy_per_atom:
        err = err / batch[K.N_ATOMS].to(w.dtype)
    terms["energy"] = (w * m * _rho(err, kinds.energy, kinds.delta)).sum() / m.sum().clamp(min=1.0)
    if K.FORCES in pred:
        m_atom = batch[K.FORCES_WEIGHT][batch[K.BATCH]]
        if K.FORCES_MASK in batch:  # fixed atoms leave the loss
            m_atom = m_atom * batch[K.FORCES_MASK]
        w_atom = w[batch[K.BATCH]]
        per_atom = _forces_rho(pred[K.FORCES] - batch[K.FORCES], batch[K.FORCES], kinds).sum(-1)
        terms["forces"] = (w_atom * m_atom * per_atom).sum() / (3 * m_atom.sum()).clamp(min=1.0)
    if K.STRESS in pred:
        m = batch[K.STRESS_WEIGHT]
        per_graph = _rho(pred[K.STRESS] - batch[K.STRESS], kinds.stress, kinds.delta).sum((-1, -2))
        terms["stress"] = (w * m * per_graph).sum() / (9 * m.sum()).clamp(min=1.0)
    if K.CHARGES in pred and K.CHARGES_WEIGHT in batch:
        m_atom = batch[K.CHARGES_WEIGHT][batch[K.BATCH]]
        per_atom = _rho(pred[K.CHARGES] - batch[K.CHARGES], kinds.charges, kinds.delta)
        terms["charges"] = (w[batch[K.BATCH]] * m_atom * per_atom).sum() / m_atom.sum().clamp(min=1.0)
    return terms


def weighted_loss(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """``sum_k λ_k L_k`` over the terms present."""
    return sum(weights[k] * v for k, v in terms.items())
