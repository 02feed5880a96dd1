"""In-memory datasets of graphs and their data loaders."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mlip import keys as K
from mlip.data.batch import collate
from mlip.data.graph import Frame, frame_to_graph
from mlip.errors import MLIPInputError

__all__ = ["GraphDataset", "make_loader", "split_indices", "split_frames"]


class GraphDataset(Dataset):
    """Labelled graphs built once from frames (neighbour lists within ``r_max`` Å); errors name each frame by its
    ``source`` (file and index) when it has one, else by ``name[i]``."""

    def __init__(self, frames: list[Frame], r_max: float, *, name: str = "data") -> None:
        self.name = name
        self.graphs = [
            frame_to_graph(f, r_max, where=f.source or f"{name}[{i}]") for i, f in enumerate(frames)
        ]

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        return self.graphs[idx]

    def atom_counts(self) -> np.ndarray:
        """``[len(self)]`` atoms of every graph."""
        return np.array([len(g[K.POSITIONS]) for g in self.graphs], dtype=np.int64)

    def elements(self) -> list[int]:
        """Sorted atomic numbers present in the graphs."""
        if not self.graphs:
            return []
        return torch.unique(torch.cat([g[K.ATOMIC_NUMBERS] for g in self.graphs])).tolist()

    def edge_count(self) -> int:
        """Directed edges of all graphs (``avg_num_neighbors`` is this over the atoms)."""
        return sum(int(g[K.EDGE_INDEX].shape[1]) for g in self.graphs)


def make_loader(dataset: Dataset, *, batch_size: int, shuffle: bool, seed: int = 0, **kwargs) -> DataLoader:
    """A ``DataLoader`` that batches with :func:`mlip.data.batch.collate`."""
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate, generator=gen, **kwargs
    )


def split_indices(
    n: int,
    *,
    valid_fraction: float = 0.1,
    valid_last: int | None = None,
    seed: int = 0,
    groups: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices of ``n`` items: the last ``valid_last``, or a random ``valid_fraction`` drawn
    with ``seed``; with ``groups`` (one label per item) whole groups are drawn, so that no group is on both sides,
    until validation holds at least ``valid_fraction`` of the items."""
    if valid_last is not None:
        if groups is not None:
            raise MLIPInputError("valid_last and a group split (split_by) cannot be combined")
        if not 0 < valid_last < n:
            raise MLIPInputError(f"valid_last={valid_last} must be between 1 and {n - 1}")
        return np.arange(n - valid_last), np.arange(n - valid_last, n)
    if not 0.0 < valid_fraction < 1.0:
        raise MLIPInputError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    rng = np.random.default_rng(seed)
    n_valid = max(1, int(round(valid_fraction * n)))
    is_valid = np.zeros(n, dtype=bool)
    if groups is None:
        is_valid[rng.permutation(n)[:n_valid]] = True
    else:
        members: dict[str, list[int]] = {}
        for i, g in enumerate(groups):
            members.setdefault(str(g), []).append(i)
        if len(members) < 2:
            raise MLIPInputError(f"a group split needs at least two groups, found {len(members)}")
        count = 0
        for name in rng.permutation(sorted(members)).tolist():
            if count >= n_valid:
                break
            if count + len(members[name]) < n:
                is_valid[members[name]] = True
                count += len(members[name])
    return np.flatnonzero(~is_valid), np.flatnonzero(is_valid)


def split_frames(
    frames: list[Frame],
    *,
    valid_fraction: float = 0.1,
    valid_last: int | None = None,
    seed: int = 0,
    group_key: str | None = None,
) -> tuple[list[Frame], list[Frame]]:
    """Train/validation split of frames by :func:`split_indices` (``valid_last`` keeps mace_train.sh's order);
    ``group_key`` (e.g. ``"mp_id"``) groups frames by ``frame.info[group_key]``."""
    groups = None
    if group_key is not None:
        missing = [i for i, f in enumerate(frames) if group_key not in f.info]
        if missing:
            raise MLIPInputError(f"frame {missing[0]} has no info[{group_key!r}] to split by")
        groups = [str(f.info[group_key]) for f in frames]
    train_idx, valid_idx = split_indices(
        len(frames), valid_fraction=valid_fraction, valid_last=valid_last, seed=seed, groups=groups
    )
    return [frames[i] for i in train_idx], [frames[i] for i in valid_idx]
