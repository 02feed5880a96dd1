"""Backbones with the long-range term: the physics kit, charge constraint, Coulomb tail, config round trip."""

import ase
import numpy as np
import pytest
import torch

from mlip import keys as K
from mlip.data import atoms_to_graph, collate
from mlip.longrange import K_E
from mlip.longrange.layer import coulomb_node_energies
from mlip.testing.models import tiny_facet, tiny_mace
from mlip.testing.suite import ModelPhysicsSuite

LONG_RANGE = {"kind": "auto", "accuracy": 1e-10}


class TestMACELongRangePhysics(ModelPhysicsSuite):  # slabs included (their symmetry checks run)
    def make_model(self, dtype):
        return tiny_mace(dtype, long_range=LONG_RANGE)


class TestFacetLongRangePhysics(ModelPhysicsSuite):
    def make_model(self, dtype):
        return tiny_facet(dtype, long_range=LONG_RANGE, grid_resolution=32)


def _predict(model, atoms_list):
    batch = collate([atoms_to_graph(a, model.r_max) for a in atoms_list])
    return model(batch, compute_forces=True), batch


def test_charges_sum_to_the_net_charge_of_each_structure():
    torch.manual_seed(0)
    model = tiny_mace(torch.float64, long_range=LONG_RANGE)
    a = ase.Atoms("CuAuO", positions=[[0, 0, 0], [2.2, 0, 0], [0, 2.0, 0.3]])
    b = ase.Atoms("HHO", positions=[[0, 0, 0], [0.96, 0, 0], [0, 1.1, 0.1]])
    b.info["charge"] = -1.0
    out, batch = _predict(model, [a, b])
    sums = torch.zeros(2, dtype=torch.float64).index_add(0, batch[K.BATCH], out[K.CHARGES])
    torch.testing.assert_close(sums, torch.tensor([0.0, -1.0], dtype=torch.float64), atol=1e-12, rtol=0)
    assert out[K.CHARGES].abs().max() > 1e-4  # the head is not trivially zero


def test_separated_ions_interact_beyond_the_cutoff_as_point_charges():
    torch.manual_seed(0)
    model = tiny_mace(torch.float64, long_range=LONG_RANGE)
    far = [ase.Atoms("CuAu", positions=[[0, 0, 0], [r, 0, 0]]) for r in (12.0, 24.0)]
    out, _ = _predict(model, far)
    q = out[K.CHARGES][:2]
    expected = K_E * q[0] * q[1] * (1 / 12.0 - 1 / 24.0)
    torch.testing.assert_close(out[K.ENERGY][0] - out[K.ENERGY][1], expected, rtol=1e-10, atol=1e-12)
    f = out[K.FORCES][:2, 0]
    torch.testing.assert_close(f[1], K_E * q[0] * q[1] / 12.0**2, rtol=1e-10, atol=1e-12)


def test_a_wire_and_a_charged_slab_are_rejected_with_a_clear_message():
    model = tiny_mace(torch.float64, long_range=LONG_RANGE)
    wire = ase.Atoms(
        "CuAu", positions=[[0, 0, 0], [1.5, 1.5, 1.5]], cell=np.eye(3) * 3.6, pbc=(True, False, False)
    )
    with pytest.raises(ValueError, match="not wires"):
        _predict(model, [wire])
    slab = ase.Atoms(
        "CuAu", positions=[[0, 0, 0], [1.5, 1.5, 1.5]], cell=np.eye(3) * 3.6, pbc=(True, True, False)
    )
    slab.info["charge"] = 1.0
    with pytest.raises(ValueError, match="neutral slabs only"):
        _predict(model, [slab])


def test_a_slab_in_a_model_is_the_2d_sum_of_its_charges(monkeypatch):
    """The model's Coulomb energy of a slab (padded to at least r_max, its own edges as the real-space pairs, its
    σ) equals the public slab sum of the charges it predicts (another padding and σ), whatever vacuum the
    structure was given."""
    from ase.build import fcc111

    import mlip.models.base as base
    from mlip.longrange import coulomb_energy

    seen = []

    def spy(*args, **kwargs):
        seen.append(coulomb_node_energies(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(base, "coulomb_node_energies", spy)
    torch.manual_seed(0)
    model = tiny_mace(torch.float64, long_range=LONG_RANGE)
    slab = fcc111("Cu", size=(2, 2, 3), vacuum=6.0, periodic=True)
    slab.pbc = (True, True, False)
    slab.numbers[[1, 6]] = 79
    slab.rattle(0.05, seed=1)
    taller = slab.copy()
    taller.cell[2] *= 3.0
    out, batch = _predict(model, [slab, taller])
    per_atom = seen[0]
    for b in range(2):
        sel = batch[K.BATCH] == b
        pos, q = batch[K.POSITIONS][sel], out[K.CHARGES][sel].detach()
        expected = coulomb_energy(pos, q, batch[K.CELL][b], batch[K.PBC][b], accuracy=1e-12)
        got = per_atom[sel].sum().detach()
        assert abs(float(expected)) > 1e-4
        torch.testing.assert_close(got, expected, rtol=1e-8, atol=0)


def test_long_range_config_round_trips_and_validates():
    model = tiny_mace(torch.float64, long_range={"kind": "ewald", "sigma": 1.5})
    d = model.config.to_dict()
    assert d["long_range"] == {"kind": "ewald", "sigma": 1.5, "accuracy": 1e-6, "charge_hidden": 16}
    with pytest.raises(ValueError, match="long_range.kind"):
        tiny_mace(torch.float64, long_range={"kind": "pme"})
    with pytest.raises(ValueError, match="unknown long_range option"):
        tiny_mace(torch.float64, long_range={"kind": "auto", "cutoff": 3})


@pytest.mark.parametrize("charged", [False, True])
def test_model_term_equals_the_reference_ewald_and_direct_sums(charged):
    """The in-graph term (real space over the model's edges, σ = r_max/√p) against :func:`coulomb_energy`
    (its own neighbour list and σ) for a triclinic cell smaller than twice the cutoff and a molecule."""
    from mlip.longrange import coulomb_energy
    from mlip.longrange.config import LongRangeConfig
    from mlip.longrange.layer import coulomb_node_energies, model_sigma, plan_long_range

    rng = np.random.default_rng(3)
    bulk = ase.Atoms(
        "CuAuOH", scaled_positions=rng.uniform(0, 1, (4, 3)), pbc=True,
        cell=[[3.9, 0.0, 0.0], [0.7, 4.1, 0.0], [0.4, -0.5, 3.7]],
    )  # fmt: skip
    mol = ase.Atoms("CuAuO", positions=[[0, 0, 0], [2.4, 0.1, 0], [0.3, 2.2, 0.4]])
    config = LongRangeConfig(accuracy=1e-10)
    r_max = 4.0
    batch = collate([atoms_to_graph(a, r_max) for a in (bulk, mol)])
    q = torch.tensor(rng.normal(size=7), dtype=torch.float64)
    if not charged:
        q[:4] -= q[:4].mean()
    plan, large = plan_long_range(batch[K.CELL], batch[K.PBC], batch[K.BATCH], r_max=r_max, config=config)
    batch.update(plan)
    sender, receiver = batch[K.EDGE_INDEX]
    x = batch[K.POSITIONS]
    vectors = (
        x[sender]
        - x[receiver]
        + torch.einsum("ei,eij->ej", batch[K.EDGE_SHIFTS], batch[K.CELL][batch[K.BATCH][receiver]])
    )
    energies = coulomb_node_energies(
        vectors, x, q, batch[K.CELL], batch, sigma=model_sigma(r_max, config), config=config, large_free=large
    )
    cell = torch.tensor(bulk.cell.array)
    want_bulk = coulomb_energy(x[:4], q[:4], cell, method="ewald", accuracy=1e-10)
    want_mol = coulomb_energy(x[4:], q[4:], method="direct")
    assert float(energies[:4].sum()) == pytest.approx(float(want_bulk), rel=1e-8)
    assert float(energies[4:].sum()) == pytest.approx(float(want_mol), rel=1e-12)
    assert model_sigma(r_max, config) * np.sqrt(-np.log(1e-10)) == pytest.approx(r_max)
