"""The least-squares re-fit of per-element reference energies: exact, invariant to the starting E0s, stored."""

import numpy as np
import pytest
import torch
from ase.build import bulk
from test_training import TINY  # tests/training is on sys.path (pytest's default "prepend" import mode)

from mlip import keys as K
from mlip.data import atoms_to_graph, collate, generate_emt_dataset
from mlip.data.graph import Frame, frame_to_graph
from mlip.models import build_model, load_model, save_model
from mlip.training.e0_refit import energy_normal_equations, refit_atomic_energies

MODEL = {**TINY["model"], "atomic_numbers": [29, 79], "atomic_energies": [-1.0, -2.0], "dtype": "float64"}


def _batches(frames, size=5):
    graphs = [frame_to_graph(f, 4.0) for f in frames]
    return [collate(graphs[i : i + size]) for i in range(0, len(graphs), size)]


@pytest.fixture(scope="module")
def frames():
    return generate_emt_dataset(24, seed=3)


def _model(energies=(-1.0, -2.0)):
    torch.manual_seed(0)
    return build_model({**MODEL, "atomic_energies": list(energies)})


def _per_atom_residuals(model, batches):
    out = []
    with torch.no_grad():
        for b in batches:
            pred = model(b, compute_forces=False)[K.ENERGY]
            keep = b[K.ENERGY_WEIGHT] > 0
            out.append(((b[K.ENERGY] - pred) / b[K.N_ATOMS])[keep])
    return torch.cat(out)


def test_refit_is_the_least_squares_solution(frames):
    model, batches = _model(), _batches(frames)
    report = refit_atomic_energies(model, batches)
    after = _per_atom_residuals(model, batches)
    # normal equations hold: the residuals are orthogonal to every element's composition column
    eq = energy_normal_equations(model, batches)
    assert eq.atb.abs().max().item() < 1e-9
    # the reported RMSE after the fit is the one measured after it, and it is lower than before
    assert report["rmse_after"] == pytest.approx(1000 * after.pow(2).mean().sqrt().item(), rel=1e-9)
    assert report["rmse_after"] < report["rmse_before"]
    assert report["frames"] == len(frames)
    # and agrees with numpy's least squares on the same residuals
    rows = np.array([[np.mean(f.atoms.numbers == z) for z in (29, 79)] for f in frames])
    fresh = _model()
    b = _per_atom_residuals(fresh, batches).numpy()
    delta, *_ = np.linalg.lstsq(rows, b, rcond=None)
    assert [report["delta_e0"]["Cu"], report["delta_e0"]["Au"]] == pytest.approx(delta, abs=1e-9)


def test_refit_does_not_depend_on_the_starting_e0s(frames):
    batches = _batches(frames)
    a, b = _model((-1.0, -2.0)), _model((-0.7, -2.3))
    refit_atomic_energies(a, batches)
    refit_atomic_energies(b, batches)
    assert torch.allclose(a.atomic_energies, b.atomic_energies, atol=1e-9)


def test_one_composition_moves_only_the_determined_combination():
    """Every frame Cu3Au: only 3 δ_Cu + δ_Au is determined; the minimum-norm fit changes nothing else."""
    frames = []
    for k in range(6):
        atoms = bulk("Cu", "fcc", a=3.7, cubic=True)
        atoms.numbers[0] = 79
        atoms.rattle(0.05, seed=k)
        frames.append(Frame(atoms=atoms, energy=-3.0 - 0.01 * k))
    model = _model()
    before = model.atomic_energies.clone()
    report = refit_atomic_energies(model, _batches(frames, size=3))
    d = (model.atomic_energies - before).numpy()
    assert d[0] / d[1] == pytest.approx(3.0)  # minimum norm along (3, 1)
    assert report["rmse_after"] <= report["rmse_before"]


def test_frames_without_energy_are_skipped_and_none_leaves_the_model(frames):
    unlabelled = [Frame(atoms=f.atoms, forces=f.forces) for f in frames[:4]]
    model = _model()
    before = model.atomic_energies.clone()
    assert refit_atomic_energies(model, _batches(unlabelled)) == {"frames": 0}
    assert torch.equal(model.atomic_energies, before)
    report = refit_atomic_energies(model, _batches(unlabelled + frames[:8]))
    assert report["frames"] == 8


def test_refitted_e0s_are_in_the_model_file(frames, tmp_path):
    model = _model()
    refit_atomic_energies(model, _batches(frames))
    save_model(model, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    assert torch.equal(loaded.atomic_energies, model.atomic_energies)
    assert loaded.config.atomic_energies == tuple(model.atomic_energies.tolist())
    atoms = frames[0].atoms
    batch = collate([atoms_to_graph(atoms, 4.0)])
    assert loaded(batch)[K.ENERGY].item() == pytest.approx(model(batch)[K.ENERGY].item(), abs=1e-9)


def test_set_atomic_energies_refuses_a_wrong_shape():
    with pytest.raises(ValueError, match="atomic energies"):
        _model().set_atomic_energies(torch.zeros(3))
    with pytest.raises(ValueError, match="atomic energies"):
        _model().set_atomic_energies(torch.tensor([0.0, float("nan")]))
