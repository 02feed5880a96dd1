"""Data: readers, labelled frames, graphs, neighbour lists, batching. Knows nothing about models."""

from mlip.data.batch import collate, to_device
from mlip.data.dataset import GraphDataset, make_loader, split_frames, split_indices
from mlip.data.e0 import fit_e0_least_squares, resolve_e0
from mlip.data.emt import generate_emt_dataset
from mlip.data.graph import Frame, atoms_to_graph, frame_to_graph, validate_structure
from mlip.data.mptrj import read_mptrj
from mlip.data.neighbors import neighbor_list
from mlip.data.readers import LabelKeys, atoms_to_frame, read_frames, read_mptrj_json, split_isolated_atoms
from mlip.data.references import EnergyReferences, load_energy_references
from mlip.data.sources import iter_atoms
from mlip.data.verlet import VerletNeighborList

__all__ = [
    "EnergyReferences",
    "Frame",
    "GraphDataset",
    "LabelKeys",
    "atoms_to_frame",
    "atoms_to_graph",
    "collate",
    "fit_e0_least_squares",
    "frame_to_graph",
    "generate_emt_dataset",
    "iter_atoms",
    "load_energy_references",
    "VerletNeighborList",
    "make_loader",
    "neighbor_list",
    "read_frames",
    "read_mptrj",
    "read_mptrj_json",
    "resolve_e0",
    "split_frames",
    "split_indices",
    "split_isolated_atoms",
    "to_device",
    "validate_structure",
]


def __getattr__(name: str):
    """``mlip.data.TosiFumiNaCl`` and ``mlip.data.generate_nacl_dataset``, the old paths of
    :mod:`mlip.datasets.nacl` (imported on first use, so that ``import mlip.data`` stays below long range)."""
    if name in ("TosiFumiNaCl", "generate_nacl_dataset"):
        from mlip.data import nacl

        return getattr(nacl, name)
    raise AttributeError(f"module 'mlip.data' has no attribute {name!r}")
