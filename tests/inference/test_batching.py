"""``batched_outputs``: batches stay within the budget (a larger graph alone), keep input order, equal one graph at
a time; an error from the source comes after the batch gathered before it. The training run's final evaluation
(``mlip.training.metrics.evaluate``) scores the same as ``mlip.predict`` frame by frame."""

import numpy as np
import pytest
import torch
from torch import nn

from mlip import keys as K
from mlip.data import GraphDataset, atoms_to_graph, generate_emt_dataset
from mlip.inference.batching import batched_outputs
from mlip.inference.predict import iter_predict
from mlip.testing.models import tiny_mace
from mlip.testing.structures import cu_au_bulk, cu_slab, methanol_like
from mlip.training.metrics import ErrorAccumulator, evaluate


class _Sum(nn.Module):
    """Energy = sum of coordinates of the graph; forces = its atom indices; records batch sizes."""

    def __init__(self):
        super().__init__()
        self.sizes: list[tuple[int, int, int]] = []

    def forward(self, batch, *, compute_forces, compute_stress):
        n_graphs = int(batch[K.N_ATOMS].shape[0])
        self.sizes.append((len(batch[K.POSITIONS]), int(batch[K.EDGE_INDEX].shape[1]), n_graphs))
        energy = torch.zeros(n_graphs, dtype=batch[K.POSITIONS].dtype).index_add_(
            0, batch[K.BATCH], batch[K.POSITIONS].sum(1)
        )
        out = {K.ENERGY: energy, K.FORCES: batch[K.POSITIONS].clone()}
        if compute_stress:
            out[K.STRESS] = torch.zeros(n_graphs, 3, 3)
        return out


def _graphs():
    frames = [cu_au_bulk(repeat=2), methanol_like(), cu_slab(), cu_au_bulk(seed=3), methanol_like(seed=2)]
    return [(i, atoms_to_graph(a, 4.0)) for i, a in enumerate(frames)]


@pytest.mark.parametrize(
    ("max_atoms", "max_edges", "max_frames"), [(40, None, None), (10, None, 2), (500, 900, 3)]
)
def test_batches_keep_the_budget_and_the_order(max_atoms, max_edges, max_frames):
    model, graphs = _Sum(), _graphs()
    tags, energies = [], []
    for t, batch, out in batched_outputs(
        model, graphs, device="cpu", max_atoms=max_atoms, max_edges=max_edges, max_frames=max_frames
    ):
        tags += t
        energies += out[K.ENERGY].tolist()
        assert len(t) == int(batch[K.N_ATOMS].shape[0])
    assert tags == list(range(len(graphs)))
    want = [float(g[K.POSITIONS].sum()) for _, g in graphs]
    np.testing.assert_allclose(energies, want, rtol=1e-12)
    assert len(model.sizes) > 1
    for atoms, edges, frames in model.sizes:
        alone = frames == 1
        assert alone or atoms <= max_atoms
        assert alone or max_edges is None or edges <= max_edges
        assert max_frames is None or frames <= max_frames


def test_stress_only_where_a_label_asks_for_it():
    model, graphs = _Sum(), _graphs()
    for _, g in graphs:
        g[K.STRESS_WEIGHT] = torch.zeros(1)
    outs = list(batched_outputs(model, graphs, device="cpu", max_atoms=10**6))
    assert K.STRESS not in outs[0][2]
    graphs[2][1][K.STRESS_WEIGHT] = torch.ones(1)
    assert K.STRESS in next(iter(batched_outputs(model, graphs, device="cpu", max_atoms=10**6)))[2]
    assert K.STRESS not in next(iter(batched_outputs(_Sum(), graphs[:2], device="cpu", max_atoms=10**6)))[2]


def test_an_error_in_the_source_comes_after_the_batch_before_it():
    graphs = _graphs()

    def source():
        yield from graphs[:3]
        raise OSError("frame 3 is torn")

    seen = []

    def consume():
        for tags, _, _ in batched_outputs(_Sum(), source(), device="cpu", max_atoms=10**6):
            seen.extend(tags)

    with pytest.raises(OSError, match="torn"):
        consume()
    assert seen == [0, 1, 2]


def test_bad_budget_is_refused():
    with pytest.raises(ValueError, match="budget"):
        next(iter(batched_outputs(_Sum(), _graphs(), device="cpu", max_atoms=0)))


def test_training_evaluation_equals_predict_frame_by_frame():
    torch.manual_seed(0)
    model = tiny_mace(torch.float64).eval()
    frames = generate_emt_dataset(12, seed=5)
    dataset = GraphDataset(frames, model.r_max)
    by_predict = ErrorAccumulator()
    for i, result in iter_predict(model, [f.atoms for f in frames], max_atoms=1):
        by_predict.add_frame(frames[i], result)
    want = by_predict.metrics()
    for budget in ({"max_atoms": 1}, {"max_atoms": 100, "max_frames": 3}, {"max_atoms": 10**6}):
        got = evaluate(model, dataset, **budget).metrics()
        assert got.keys() == want.keys()
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-10, err_msg=key)
