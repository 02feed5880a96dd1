"""Budget-bounded batches: the budget holds, every item once per epoch, deterministic epochs, balanced ranks."""

import numpy as np
import pytest

from mlip.data.sampler import BudgetBatchSampler

COSTS = np.random.default_rng(0).integers(2, 60, size=203)


def test_batches_respect_the_budget_and_cover_every_item_once():
    sampler = BudgetBatchSampler(COSTS, max_cost=150, seed=3)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(COSTS)))
    assert all(COSTS[b].sum() <= 150 for b in batches)
    # greedy filling: adding the next batch's first item would have broken the budget
    assert all(COSTS[a].sum() + COSTS[b[0]] > 150 for a, b in zip(batches, batches[1:]))


def test_an_item_over_budget_gets_its_own_batch_and_max_items_caps_frames():
    costs = np.array([5, 500, 5, 5, 5, 5])
    batches = list(BudgetBatchSampler(costs, max_cost=100, shuffle=False, max_items=3))
    assert batches == [[0], [1], [2, 3, 4], [5]]


def test_order_is_a_function_of_seed_and_epoch():
    a, b = BudgetBatchSampler(COSTS, max_cost=150, seed=1), BudgetBatchSampler(COSTS, max_cost=150, seed=1)
    a.set_epoch(4)
    b.set_epoch(4)
    assert list(a) == list(b)  # a restarted run repeats the epoch
    b.set_epoch(5)
    assert list(a) != list(b)


@pytest.mark.parametrize("replicas", [2, 3, 4])
def test_ranks_get_equal_disjoint_shares(replicas):
    shares = [list(BudgetBatchSampler(COSTS, max_cost=150, seed=2, num_replicas=replicas, rank=r))
              for r in range(replicas)]  # fmt: skip
    assert len({len(s) for s in shares}) == 1
    seen = [i for s in shares for b in s for i in b]
    assert set(seen) == set(range(len(COSTS)))  # padding repeats a few batches, nothing is lost
    n_global = len(BudgetBatchSampler(COSTS, max_cost=150, seed=2).global_batches())
    assert len(shares[0]) == -(-n_global // replicas)
    with pytest.raises(ValueError, match="rank"):
        BudgetBatchSampler(COSTS, max_cost=150, num_replicas=2, rank=2)
