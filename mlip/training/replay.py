"""Replay data for multihead fine-tuning: a sample of the pretraining set, trained on its own head.

Fine-tuning a pretrained model on a small new dataset moves the shared trunk towards the new data and forgets the
old (catastrophic forgetting). Multihead replay (mace-torch's ``--multiheads_finetuning``) keeps training on the
old data too: every optimisation step takes a batch of the new data through the new head and a batch of the replay
data through the pretraining head (:class:`~mlip.models.heads.EnergyHead`), and minimises

.. math::  L = L_{new}(θ_{trunk}, θ_{head}) + w_{replay}\\, L_{replay}(θ_{trunk}, θ_{replay\\ head})

so the trunk stays good for both. The heads keep their own ``E_0``, scale and shift, so the two datasets may come
from different levels of theory.

Memory. A replay file is streamed once to count its frames and once more to keep the sampled ones
(``replay_fraction`` of them, at most ``replay_max_frames``); only the sample's frames are held, and their graphs
are built batch by batch. A preprocessed directory (``mlip-preprocess``) is not read at all beyond its manifest:
the sample is a list of frame indices and frames stream from the memory-mapped shards, so memory does not depend on
the size of the replay set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from mlip.data import Frame
from mlip.data.batch import collate
from mlip.data.checks import require_known_elements
from mlip.data.graph import frame_to_graph
from mlip.data.readers import LabelKeys, is_isolated_atom
from mlip.data.sources import iter_atoms
from mlip.data.spec import DataSpec
from mlip.data.store import PreprocessedDataset, read_manifest
from mlip.data.store_stats import store_elements
from mlip.errors import MLIPInputError

__all__ = ["FrameGraphs", "sample_indices", "load_replay", "replay_loader"]


class FrameGraphs(Dataset):
    """Graphs of ``frames`` built when an item is read (the frames are held, their neighbour lists are not)."""

    def __init__(self, frames: list[Frame], r_max: float, *, name: str) -> None:
        self.frames, self.r_max, self.name = frames, float(r_max), name

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        f = self.frames[idx]
        return frame_to_graph(f, self.r_max, where=f.source or f"{self.name}[{idx}]")


def sample_indices(n: int, *, fraction: float, max_frames: int | None, seed: int) -> np.ndarray:
    """Sorted indices of ``round(fraction n)`` (at least 1, at most ``max_frames``) of ``n`` frames, drawn
    without replacement with ``seed``."""
    k = max(1, int(round(fraction * n)))
    if max_frames is not None:
        k = min(k, max_frames)
    return np.sort(np.random.default_rng(seed).choice(n, size=min(k, n), replace=False))


def load_replay(d, spec: DataSpec | LabelKeys, r_max: float, atomic_numbers: list[int]) -> Dataset:
    """The replay sample of DataConfig ``d`` (``replay_file``, ``replay_fraction``, ``replay_max_frames``,
    ``seed``) as a dataset of graphs; a file is labelled by ``spec`` (the run's data specification), isolated
    atoms left out as in training (:func:`mlip.data.readers.is_isolated_atom`); elements outside
    ``atomic_numbers`` (the model's) are refused. Label keys alone stand for a spec with those keys."""
    spec = DataSpec(keys=spec) if isinstance(spec, LabelKeys) else spec
    path = Path(d.replay_file)
    if path.is_dir():
        n = int(read_manifest(path)["n_frames"])
        idx = sample_indices(n, fraction=d.replay_fraction, max_frames=d.replay_max_frames, seed=d.seed)
        ds = PreprocessedDataset(path, r_max, indices=idx, name="replay")
        elements = set(store_elements(PreprocessedDataset(path, r_max)))
    else:
        n = sum(1 for _ in iter_atoms(path))
        if n == 0:
            raise MLIPInputError(f"data.replay_file {path} holds no frames")
        keep = set(sample_indices(n, fraction=d.replay_fraction, max_frames=d.replay_max_frames, seed=d.seed))
        frames = [  # isolated atoms carry E0s, not replay targets
            f for i, f in enumerate(spec.iter_frames(path)) if i in keep and not is_isolated_atom(f)
        ]
        if not frames:
            raise MLIPInputError(f"data.replay_file {path}: the sample holds only isolated atoms")
        if all(f.energy is None and f.forces is None for f in frames):
            raise MLIPInputError(
                f"data.replay_file {path}: the sampled frames have no energy or force labels"
            )
        elements = {int(z) for f in frames for z in f.atoms.numbers}
        ds = FrameGraphs(frames, r_max, name=path.name)
    require_known_elements(
        elements, atomic_numbers, where=f"data.replay_file {path}",
        message="{where} has elements {unknown} that the model (from train.init_from and the new data) does not know",
    )  # fmt: skip
    return ds


def replay_loader(ds: Dataset, *, batch_size: int, steps: int, seed: int, num_workers: int = 0) -> DataLoader:
    """Batches of ``ds`` drawn with replacement, ``steps`` of them per epoch (one per new-data batch), fresh each
    epoch."""
    gen = torch.Generator().manual_seed(seed + 7919)
    sampler = RandomSampler(ds, replacement=True, num_samples=max(1, steps) * batch_size, generator=gen)
    return DataLoader(
        ds,
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=collate,
        num_workers=num_workers,
        drop_last=False,
    )
