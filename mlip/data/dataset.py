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
    frames: list[Frame],
    *,
    valid_fraction: float = 0.1,
    valid_last: int | None = None,
    seed: int = 0,
    group_key: str | None = None,
) -> tuple[list[Frame], list[Frame]]:
    """Train/validation split: the last ``valid_last`` frames (no shuffling, matches mace_train.sh), or a
    random ``valid_fraction`` drawn with ``seed``. With ``group_key`` (e.g. ``"mp_id"``) whole groups of frames
    sharing ``frame.info[group_key]`` are drawn, so that no group (material) is in both sets; groups are added
    to validation in random order until it holds at least ``valid_fraction`` of the frames."""
    if valid_last is not None:
        if group_key is not None:
            raise ValueError("valid_last and a group split (split_by) cannot be combined")
        if not 0 < valid_last < len(frames):
            raise ValueError(f"valid_last={valid_last} must be between 1 and {len(frames) - 1}")
        return frames[:-valid_last], frames[-valid_last:]
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    rng = np.random.default_rng(seed)
    n_valid = max(1, int(round(valid_fraction * len(frames))))
    if group_key is None:
        valid_idx = set(rng.permutation(len(frames))[:n_valid].tolist())
    else:
        groups: dict[str, list[int]] = {}
        for i, f in enumerate(frames):
            if group_key not in f.info:
                raise ValueError(f"frame {i} has no info[{group_key!r}] to split by")
            groups.setdefault(str(f.info[group_key]), []).append(i)
        if len(groups) < 2:
            raise ValueError(f"splitting by {group_key!r} needs at least two groups, found {len(groups)}")
        valid_idx = set()
        for name in rng.permutation(sorted(groups)).tolist():
            if len(valid_idx) >= n_valid:
                break
            if len(valid_idx) + len(groups[name]) < len(frames):
                valid_idx.update(groups[name])
    train = [f for i, f in enumerate(frames) if i not in valid_idx]
    valid = [f for i, f in enumerate(frames) if i in valid_idx]
    return train, valid
