"""Batches bounded by a size budget (atoms, or any per-item cost), shared out over distributed ranks.

Frame counts are a poor batch size for data whose structures range from 2 to 400 atoms (MPtrj, OC20): the
memory and time of a step follow the number of atoms and edges. :class:`BudgetBatchSampler` fills each batch in
a shuffled order until the next item would exceed ``max_cost`` (an item larger than the budget gets a batch of its
own). The order depends only on ``(seed, epoch)``, so every rank computes the same list of batches and a restarted
run repeats an epoch exactly; rank ``r`` of ``R`` takes batches ``r, r + R, ...`` after the list is padded
(repeating its first batches) to a multiple of ``R``, so that every rank runs the same number of steps, as
``torch.utils.data.DistributedSampler`` does for frames.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

__all__ = ["BudgetBatchSampler"]


class BudgetBatchSampler(Sampler[list[int]]):
    """Index batches whose summed ``costs`` stay within ``max_cost``.

    Args:
        costs: ``[n]`` cost of every item (atoms per structure, say).
        max_cost: the budget per batch.
        max_items: optional cap on items per batch as well.
        shuffle: draw a new order every epoch (``seed + epoch``); otherwise keep the dataset order.
        seed: base seed.
        num_replicas, rank: the distributed share (all ranks must pass the same ``costs`` and ``seed``).
    """

    def __init__(
        self,
        costs: np.ndarray,
        *,
        max_cost: int,
        max_items: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        self.costs = np.asarray(costs, dtype=np.int64)
        if self.costs.ndim != 1 or len(self.costs) == 0:
            raise ValueError("costs must be a non-empty 1-d array")
        if max_cost < 1:
            raise ValueError(f"max_cost must be >= 1, got {max_cost}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        self.max_cost, self.max_items = int(max_cost), max_items
        self.shuffle, self.seed = shuffle, int(seed)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning (and by hand) before each epoch; the order is a function of ``seed + epoch``."""
        self.epoch = int(epoch)

    def global_batches(self) -> list[list[int]]:
        """All batches of this epoch, before the split over ranks (the same on every rank)."""
        order = (
            np.random.default_rng(self.seed + self.epoch).permutation(len(self.costs))
            if self.shuffle
            else np.arange(len(self.costs))
        )
        batches, current, total = [], [], 0
        for i in order.tolist():
            c = int(self.costs[i])
            full = self.max_items is not None and len(current) >= self.max_items
            if current and (total + c > self.max_cost or full):
                batches.append(current)
                current, total = [], 0
            current.append(i)
            total += c
        if current:
            batches.append(current)
        return batches

    def _mine(self) -> list[list[int]]:
        batches = self.global_batches()
        pad = (-len(batches)) % self.num_replicas
        batches = batches + [batches[k % len(batches)] for k in range(pad)]
        return batches[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._mine())

    def __len__(self) -> int:
        return len(self._mine())
