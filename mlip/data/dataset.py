"""In-memory datasets of graphs and their data loaders."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mlip.data.batch import collate
from mlip.data.graph import Frame, frame_to_graph


class GraphDataset(Dataset):
    """Labelled graphs built once from frames (neighbour lists within ``r_max`` Å)."""

    def __init__(self, frames: list[Frame], r_max: float, *, name: str = "data") -> None:
        self.name = name
        self.graphs = [frame_to_graph(f, r_max, where=f"{name}[{i}]") for i, f in enumerate(frames)]

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        return self.graphs[idx]


def make_loader(dataset: Dataset, *, batch_size: int, shuffle: bool, seed: int = 0, **kwargs) -> DataLoader:
    """A ``DataLoader`` that batches with :func:`mlip.data.batch.collate`."""
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate, generator=gen, **kwargs
    )


def split_frames(
    frames: list[Frame], *, valid_fraction: float = 0.1, valid_last: int | None = None, seed: int = 0
) -> tuple[list[Frame], list[Frame]]:
    """Train/validation split: the last ``valid_last`` frames (no shuffling, matches mace_train.sh), or a
    random ``valid_fraction`` drawn with ``seed``."""
    if valid_last is not None:
        if not 0 < valid_last < len(frames):
            raise ValueError(f"valid_last={valid_last} must be between 1 and {len(frames) - 1}")
        return frames[:-valid_last], frames[-valid_last:]
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    perm = np.random.default_rng(seed).permutation(len(frames))
    n_valid = max(1, int(round(valid_fraction * len(frames))))
    valid_idx = set(perm[:n_valid].tolist())
    train = [f for i, f in enumerate(frames) if i not in valid_idx]
    valid = [f for i, f in enumerate(frames) if i in valid_idx]
    return train, valid
