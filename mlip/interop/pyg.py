"""PyTorch Geometric interop: mlip backbones on ``torch_geometric.data.Data`` / ``Batch`` (the ``.[pyg]`` extra).

Field mapping, PyG attribute -> :mod:`mlip.keys` (one structure per ``Data``; ``Batch`` concatenates them):

===========================  =============================  ======================================================
PyG                          shape, unit                    mlip
===========================  =============================  ======================================================
``pos``                      ``[N, 3]`` Å                   ``POSITIONS``
``z`` or ``atomic_numbers``  ``[N]`` int                    ``ATOMIC_NUMBERS``
``cell``                     ``[1, 3, 3]`` (or ``[3, 3]``)  ``CELL`` ``[G, 3, 3]``, lattice vectors as rows
``pbc``                      ``[1, 3]`` (or ``[3]``) bool   ``PBC`` ``[G, 3]``
``edge_index``               ``[2, E]`` int                 ``EDGE_INDEX``: row 0 source ``j``, row 1 target ``i``
``shifts``/``cell_offsets``  ``[E, 3]`` integer images      ``EDGE_SHIFTS``
``batch``                    ``[N]``                        ``BATCH`` (zeros for a single ``Data``)
``charge``                   ``[1]`` e, optional            ``TOTAL_CHARGE``
===========================  =============================  ======================================================

Edges follow PyG's default flow (``source_to_target``: messages go from ``edge_index[0]`` to ``edge_index[1]``),
which is mlip's sender/receiver order, and the edge vector is

.. math::  r_{ij} = x_j - x_i + S_{ij}\\, h_{g(i)}, \\qquad j = \\mathrm{edge\\_index}[0],\\ i = \\mathrm{edge\\_index}[1],

with the integer image counts ``S`` (``shifts``; fairchem calls them ``cell_offsets``, same sign) and the cell
``h`` of the atom's structure. Store ``cell`` as ``[1, 3, 3]`` and ``pbc`` as ``[1, 3]`` per ``Data`` so that
``Batch`` stacks them per structure (fairchem's layout); ``[3, 3]`` and ``[3]`` are accepted too. A ``Data`` with a
cell and no ``pbc`` is periodic in all three directions (OC20's convention); one without a cell is a free molecule.
Data without edges get them from :class:`RadiusGraphPBC`, a PyG transform.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mlip import keys as K
from mlip.data.graph import checked_edges
from mlip.errors import MLIPInputError

try:
    from torch_geometric.transforms import BaseTransform
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("mlip.interop.pyg needs PyTorch Geometric: pip install 'mlip[pyg]'") from err

__all__ = ["PyGModel", "RadiusGraphPBC", "atoms_to_data", "to_mlip_batch"]


def atoms_to_data(atoms, **extra):
    """A ``torch_geometric.data.Data`` of an ``ase.Atoms`` (``pos``, ``z``, ``cell [1, 3, 3]``, ``pbc [1, 3]``,
    ``charge [1]`` from ``atoms.info["charge"]``, float64), with any ``extra`` attributes (labels, say); no edges."""
    from torch_geometric.data import Data

    return Data(
        pos=torch.tensor(atoms.positions, dtype=torch.float64),
        z=torch.tensor(atoms.numbers, dtype=torch.int64),
        cell=torch.tensor(atoms.cell.array, dtype=torch.float64).unsqueeze(0),
        pbc=torch.tensor(atoms.pbc, dtype=torch.bool).unsqueeze(0),
        charge=torch.tensor([float(atoms.info.get("charge", 0.0))], dtype=torch.float64),
        **extra,
    )


class RadiusGraphPBC(BaseTransform):
    """Edges within ``r_max`` Å, periodic images included: sets ``edge_index [2, E]`` and ``shifts [E, 3]`` (integer
    image counts, float64) on one ``Data`` (the module docstring's convention), and ``cell``/``pbc`` to
    ``[1, 3, 3]``/``[1, 3]``. Free structures (no cell, or ``pbc`` all false) get free-space edges."""

    def __init__(self, r_max: float) -> None:
        if not r_max > 0:
            raise MLIPInputError(f"RadiusGraphPBC: r_max must be > 0 Å, got {r_max}")
        self.r_max = float(r_max)

    def forward(self, data):
        if getattr(data, "num_graphs", 1) != 1 or getattr(data, "ptr", None) is not None:
            raise MLIPInputError(
                "RadiusGraphPBC transforms one Data at a time (use it as a dataset transform)"
            )
        pos = _required(data, "pos").detach().cpu().to(torch.float64).numpy()
        cell, pbc = _cell_and_pbc(data, n_graphs=1)
        cell_np, pbc_np = cell[0].cpu().numpy(), pbc[0].cpu().numpy()
        edge_index, shifts = checked_edges(pos, cell_np, pbc_np, self.r_max, where="RadiusGraphPBC")
        data.edge_index = torch.from_numpy(edge_index)
        data.shifts = torch.from_numpy(shifts.astype(np.float64))
        data.cell, data.pbc = cell, pbc
        return data

    def __repr__(self) -> str:
        return f"{type(self).__name__}(r_max={self.r_max})"


def to_mlip_batch(data) -> dict[str, torch.Tensor]:
    """The mlip batch (keys of :mod:`mlip.keys`) of a PyG ``Data`` or ``Batch`` (module docstring), on its
    device; positions keep their dtype (the model casts them). Raises :class:`~mlip.errors.MLIPInputError` with
    one line for a missing or inconsistent field."""
    pos = _required(data, "pos")
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise MLIPInputError(f"PyG data: pos must be [N, 3], got {list(pos.shape)}")
    z = data.z if getattr(data, "z", None) is not None else getattr(data, "atomic_numbers", None)
    if z is None:
        raise MLIPInputError("PyG data: no atomic numbers (set 'z' or 'atomic_numbers')")
    n = pos.shape[0]
    z = z.reshape(-1).to(torch.int64)
    if z.shape[0] != n:
        raise MLIPInputError(f"PyG data: {z.shape[0]} atomic numbers for {n} positions")
    batch = getattr(data, "batch", None)
    n_graphs = int(getattr(data, "num_graphs", 1) or 1) if batch is not None else 1
    batch = torch.zeros(n, dtype=torch.int64, device=pos.device) if batch is None else batch.to(torch.int64)
    cell, pbc = _cell_and_pbc(data, n_graphs)
    edge_index = getattr(data, "edge_index", None)
    if edge_index is None:
        raise MLIPInputError(
            "PyG data: no edge_index; add mlip.interop.pyg.RadiusGraphPBC(r_max) to the transforms"
        )
    shifts = getattr(data, "shifts", None)
    if shifts is None:
        shifts = getattr(data, "cell_offsets", None)
    if shifts is None:
        if bool(pbc.any()):
            raise MLIPInputError(
                "PyG data: a periodic graph (pbc true) with edges but no 'shifts' or 'cell_offsets': the periodic "
                "image of each edge is unknown; build edges with mlip.interop.pyg.RadiusGraphPBC(r_max)"
            )
        shifts = torch.zeros(edge_index.shape[1], 3, dtype=torch.float64, device=pos.device)
    if shifts.shape != (edge_index.shape[1], 3):
        raise MLIPInputError(
            f"PyG data: shifts must be [E, 3] = [{edge_index.shape[1]}, 3], got {list(shifts.shape)}"
        )
    charge = getattr(data, "charge", None)
    total_charge = (
        torch.zeros(n_graphs, dtype=torch.float64, device=pos.device)
        if charge is None
        else charge.reshape(-1).to(torch.float64)
    )
    return {
        K.POSITIONS: pos,
        K.ATOMIC_NUMBERS: z,
        K.CELL: cell.to(pos.device),
        K.PBC: pbc.to(pos.device),
        K.EDGE_INDEX: edge_index.to(torch.int64),
        K.EDGE_SHIFTS: shifts.to(torch.float64),
        K.BATCH: batch,
        K.N_ATOMS: torch.bincount(batch, minlength=n_graphs),
        K.TOTAL_CHARGE: total_charge,
    }


class PyGModel(nn.Module):
    """An mlip model (``model``, an :class:`~mlip.models.EdgePotential`) that takes PyG data.

    ``forward(data, compute_forces=True, compute_stress=False)`` returns the model's outputs: ``energy [G]`` (eV),
    ``node_energy [N]`` and, when asked, ``forces [N, 3]`` (eV/Å), ``stress [G, 3, 3]`` (eV/Å³, ASE's sign);
    :meth:`node_features` the trunk's per-layer node features. Parameters are the wrapped model's.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, data, *, compute_forces: bool = True, compute_stress: bool = False):
        batch = to_mlip_batch(data)
        return self.model(batch, compute_forces=compute_forces, compute_stress=compute_stress)

    def node_features(self, data):
        """:meth:`mlip.models.EdgePotential.node_features` of the PyG data."""
        return self.model.node_features(to_mlip_batch(data))


def _required(data, name: str) -> torch.Tensor:
    value = getattr(data, name, None)
    if value is None:
        raise MLIPInputError(f"PyG data: no '{name}'")
    return value


def _cell_and_pbc(data, n_graphs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``cell [G, 3, 3]`` float64 and ``pbc [G, 3]`` bool (module docstring's defaults)."""
    cell, pbc = getattr(data, "cell", None), getattr(data, "pbc", None)
    device = data.pos.device
    if pbc is not None:
        pbc = torch.as_tensor(pbc, device=device).to(torch.bool).reshape(-1, 3)
        if pbc.shape[0] != n_graphs:
            raise MLIPInputError(f"PyG data: pbc has {pbc.shape[0]} rows for {n_graphs} structures")
    if cell is None:
        if pbc is not None and bool(pbc.any()):
            raise MLIPInputError(
                "PyG data: periodic data (pbc true) needs a 'cell' (lattice vectors as rows, Å)"
            )
        cell = torch.zeros(n_graphs, 3, 3, dtype=torch.float64, device=device)
    else:
        cell = torch.as_tensor(cell, device=device).to(torch.float64)
        if cell.numel() != 9 * n_graphs:
            raise MLIPInputError(
                f"PyG data: cell must be [G, 3, 3] with G = {n_graphs}, got {list(cell.shape)}"
            )
        cell = cell.reshape(n_graphs, 3, 3)
    if pbc is None:  # a cell without pbc: periodic in every direction (OC20); no cell: a free structure
        has_cell = cell.abs().sum(dim=(1, 2)) > 0
        pbc = has_cell[:, None].expand(n_graphs, 3).clone()
    return cell, pbc
