"""Energy heads: the dataset-specific end of a model, for multihead training on one shared trunk.

A backbone's per-atom energy is ``E_i = E_0(z_i) + s ε_i + μ`` with ``ε_i = Σ_t e^{(t)}(h_i^{(t)})`` the
readouts of its layers (:class:`~mlip.models.base.EdgePotential`). An :class:`EnergyHead` holds its own copy of
the readouts ``e^{(t)}``, of the reference energies ``E_0`` and of ``s`` and ``μ``; the trunk (embedding,
interactions, products) stays shared. Two datasets computed at different levels of theory (a pretraining set and
a fine-tuning set) train two heads on one trunk, as mace-torch's multihead fine-tuning does; the heads differ in
exactly the quantities a change of functional shifts (element references, an energy scale, the last maps from
features to energy).

``model(batch, head=h)`` evaluates head ``h``; :func:`model_with_head` turns a head into a standalone model
(the same trunk with the head's readouts, ``E_0``, scale and shift) that saves and loads like any model.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

__all__ = ["EnergyHead", "model_with_head"]


class EnergyHead(nn.Module):
    """Readouts, reference energies and scale/shift of one dataset on a shared trunk.

    Attributes:
        readouts: one readout per layer, as the model's own ``readouts`` (invariant features ``[N, C]`` -> ``[N]``).
        atomic_energies: ``[num_elements]`` float64 buffer, eV, in the model's ``atomic_numbers`` order.
        scale, shift: floats (eV per atom) of the interaction energy.
    """

    def __init__(self, readouts: nn.ModuleList, atomic_energies: torch.Tensor, *, scale: float, shift: float):
        super().__init__()
        self.readouts = readouts
        self.register_buffer("atomic_energies", torch.as_tensor(atomic_energies, dtype=torch.float64).clone())
        if not scale > 0:
            raise ValueError(f"a head's scale must be > 0, got {scale}")
        self.scale = float(scale)
        self.shift = float(shift)

    @classmethod
    def from_model(cls, model: nn.Module) -> EnergyHead:
        """A copy of ``model``'s own head (readouts, ``E_0``, scale, shift); later training of either leaves the
        other unchanged."""
        return cls(
            copy.deepcopy(model.readouts),
            model.atomic_energies.detach().cpu(),
            scale=model.config.scale,
            shift=model.config.shift,
        ).to(model.atomic_energies.device)

    def extra_repr(self) -> str:
        return f"scale={self.scale:.6g}, shift={self.shift:.6g}, elements={self.atomic_energies.numel()}"


def model_with_head(model: nn.Module, head: EnergyHead) -> nn.Module:
    """A new model: ``model``'s trunk with ``head``'s readouts, ``E_0``, scale and shift (both inputs unchanged).

    ``model_with_head(m, h)(batch)`` equals ``m(batch, head=h)``; the result is an ordinary model of the same
    backbone, so :func:`mlip.models.save_model` writes it.
    """
    if head.atomic_energies.shape != model.atomic_energies.shape:
        raise ValueError(
            f"the head has {head.atomic_energies.numel()} reference energies, the model "
            f"{model.atomic_energies.numel()} elements"
        )
    new = copy.deepcopy(model)
    new.readouts = copy.deepcopy(head.readouts)
    new.config = dataclasses.replace(new.config, scale=head.scale, shift=head.shift)
    new.set_atomic_energies(head.atomic_energies.detach().cpu())
    return new
