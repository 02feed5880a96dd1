"""TorchSim interface: any mlip model as a ``torch_sim`` model, for batched relaxation and MD of many systems.

``MLIPModel(model)`` implements ``torch_sim.models.interface.ModelInterface``: ``model(state)`` takes a
``torch_sim.SimState`` (or its dict) holding any number of systems of any sizes and elements and returns

- ``energy`` ``[n_systems]`` (eV),
- ``forces`` ``[n_atoms, 3]`` (eV/Å),
- ``stress`` ``[n_systems, 3, 3]`` (eV/Å³, ASE's sign, ``(1/V) dE/dε``, as TorchSim's own models and integrators
  use it), for periodic states,

in the state's dtype and on its device. TorchSim stores cells as columns (``state.cell[b][:, k]`` is lattice vector
k); mlip's graphs take them as rows (:mod:`mlip.keys`), so the adapter reads ``state.row_vector_cell``. Neighbour
lists are mlip's own (:func:`mlip.data.neighbor_list`, on the host), built per system each call, so the systems of
a batch can come and go between calls (TorchSim's autobatching does that). Every system is checked as
:func:`mlip.predict` checks a frame: an element the model does not know, overlapping atoms, NaN positions or a
singular cell raise :class:`StateSystemError` (an :class:`~mlip.errors.MLIPInputError`) naming the system's
index in the state (its ``system`` attribute).

Needs the optional extra ``pip install 'mlip[sim]'`` (``torch-sim-atomistic``).
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
from mlip.errors import MLIPError, MLIPInputError
from mlip.inference.loader import resolve_model
from mlip.models.config import parse_device

try:
    import torch_sim as ts
    from torch_sim.models.interface import ModelInterface
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "mlip.sim.torchsim needs TorchSim: pip install 'mlip[sim]' (the torch-sim-atomistic package)"
    ) from err

__all__ = ["MLIPModel", "StateSystemError", "state_to_atoms"]


class StateSystemError(MLIPInputError):
    """One system of a TorchSim state cannot be evaluated; ``system`` is its index in that state, ``reason`` the
    error without that prefix."""

    def __init__(self, system: int, reason: str) -> None:
        super().__init__(f"system {system} of the TorchSim state: {reason}")
        self.system = system
        self.reason = reason


class MLIPModel(ModelInterface):
    """``MLIPModel(model, *, device=None, dtype=None, compute_stress=True, compute_forces=True)``.

    Args:
        model: an mlip model file or ``nn.Module`` (a converted copy when ``device``/``dtype`` differ from its own,
            as in :class:`~mlip.calculators.ase_calculator.MLIPCalculator`).
        device: where the network runs (default: the model's device).
        dtype: ``torch.float32``/``torch.float64`` (or their names) the network and the outputs use (default: the
            model's). TorchSim states should use the same dtype.
        compute_stress, compute_forces: what ``forward`` returns besides the energy.
    """

    def __init__(
        self,
        model: nn.Module | str | Path,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str | None = None,
        compute_stress: bool = True,
        compute_forces: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(model, nn.Module) and device is None:
            device = next(model.parameters()).device
        device = parse_device(device or "cpu")
        name = str(dtype).replace("torch.", "") if dtype is not None else None
        self.model = resolve_model(model, device=device, dtype=name)
        self._device = device
        self._dtype = next(self.model.parameters()).dtype
        self._compute_stress = bool(compute_stress)
        self._compute_forces = bool(compute_forces)
        self._memory_scales_with = "n_atoms_x_density"
        self.fixed: torch.Tensor | None = None  # [N] bool: atoms whose forces are zeroed (fixed atoms in MD)

    @ModelInterface.compute_stress.setter
    def compute_stress(self, value: bool) -> None:
        self._compute_stress = bool(value)

    @ModelInterface.compute_forces.setter
    def compute_forces(self, value: bool) -> None:
        self._compute_forces = bool(value)

    def forward(self, state, **kwargs) -> dict[str, torch.Tensor]:
        """Energies ``[S]``, forces ``[N, 3]`` and stress ``[S, 3, 3]`` of every system in ``state`` (module
        docstring)."""
        if isinstance(state, dict):
            state = ts.SimState(**state, masses=torch.ones_like(state["positions"][:, 0]))
        out_dtype, out_device = state.positions.dtype, state.positions.device
        atoms_list = state_to_atoms(state)
        graphs = []
        for index, atoms in enumerate(atoms_list):
            where = f"system {index} of the TorchSim state"
            try:
                graph = atoms_to_graph(atoms, self.model.r_max, where=where)
                self.model.species.check(graph[K.ATOMIC_NUMBERS])
            except MLIPError as err:
                reason = " ".join(str(err).split()).removeprefix(f"{where}: ")
                raise StateSystemError(index, reason) from None
            graphs.append(graph)
        batch = batch_on(graphs, self._device)
        periodic = all(bool(a.pbc.any()) and a.cell.volume > 1e-12 for a in atoms_list)
        want_stress = self._compute_stress and periodic
        out = self.model(batch, compute_forces=self._compute_forces, compute_stress=want_stress)
        results = {"energy": out[K.ENERGY].detach().to(out_device, out_dtype)}
        if self._compute_forces:
            results["forces"] = out[K.FORCES].detach().to(out_device, out_dtype)
            if self.fixed is not None:
                results["forces"][self.fixed.to(out_device)] = 0.0
        if want_stress:
            results["stress"] = out[K.STRESS].detach().to(out_device, out_dtype)
        if K.CHARGES in out:
            results["charges"] = out[K.CHARGES].detach().to(out_device, out_dtype)
        return results


def state_to_atoms(state) -> list[ase.Atoms]:
    """The systems of a TorchSim state as ``ase.Atoms`` (float64 positions and row-vector cells, on the host)."""
    positions = state.positions.detach().to("cpu", torch.float64).numpy()
    cells = state.row_vector_cell.detach().to("cpu", torch.float64).numpy()
    numbers = state.atomic_numbers.detach().cpu().numpy()
    system = state.system_idx.detach().cpu().numpy()
    pbc = np.broadcast_to(np.asarray(state.pbc.cpu() if torch.is_tensor(state.pbc) else state.pbc), (3,))
    counts = np.bincount(system, minlength=len(cells))
    if not (np.diff(system) >= 0).all():
        raise MLIPInputError("TorchSim state: system_idx must be sorted (atoms of one system together)")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return [
        ase.Atoms(numbers=numbers[s : s + n], positions=positions[s : s + n], cell=cells[b], pbc=pbc)
        for b, (s, n) in enumerate(zip(starts, counts))
    ]
