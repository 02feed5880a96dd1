"""Ewald summation: Madelung constant, pymatgen, finite differences, batching, charged cells, input errors."""

import math

import numpy as np
import pytest
import torch

from mlip.longrange import K_E, coulomb_energy, electrostatic_potential
from mlip.longrange.ewald import ewald_potential

MADELUNG_NACL = 1.747564594633182  # per ion pair, nearest-neighbour distance 1


def _rocksalt_conventional(a: float):
    fcc = torch.tensor([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]], dtype=torch.float64)
    pos = torch.cat([fcc, fcc + torch.tensor([0.5, 0.0, 0.0], dtype=torch.float64)]) * a
    q = torch.tensor([1.0] * 4 + [-1.0] * 4, dtype=torch.float64)
    return pos, q, torch.eye(3, dtype=torch.float64) * a


def _random_cell(n: int, seed: int, charged: bool = False):
    rng = np.random.default_rng(seed)
    volume_per_atom = 12.0
    lattice = np.eye(3) + rng.uniform(-0.35, 0.35, (3, 3))  # triclinic
    lattice *= (n * volume_per_atom / abs(np.linalg.det(lattice))) ** (1 / 3)
    frac = rng.uniform(0, 1, (n, 3))
    q = rng.normal(size=n)
    if not charged:
        q -= q.mean()
    return (
        torch.tensor(frac @ lattice, dtype=torch.float64),
        torch.tensor(q, dtype=torch.float64),
        torch.tensor(lattice, dtype=torch.float64),
    )


@pytest.mark.parametrize("a", [2.0, 5.64])
def test_madelung_constant_of_rocksalt(a):
    pos, q, cell = _rocksalt_conventional(a)
    energy = coulomb_energy(pos, q, cell)
    madelung = -energy.item() / 4 * (a / 2) / K_E
    assert abs(madelung - MADELUNG_NACL) / MADELUNG_NACL < 1e-6


def test_madelung_constant_in_the_primitive_triclinic_cell():
    a = 5.64
    cell = torch.tensor([[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]], dtype=torch.float64) * a
    pos = torch.tensor([[0.0, 0.0, 0.0], [0.5 * a, 0.0, 0.0]], dtype=torch.float64)
    q = torch.tensor([1.0, -1.0], dtype=torch.float64)
    madelung = -coulomb_energy(pos, q, cell).item() * (a / 2) / K_E
    assert abs(madelung - MADELUNG_NACL) / MADELUNG_NACL < 1e-6


@pytest.mark.parametrize(("n", "seed"), [(8, 0), (27, 1), (64, 2), (216, 3), (512, 4)])
def test_random_triclinic_cells_match_pymatgen(n, seed):
    from pymatgen.analysis.ewald import EwaldSummation
    from pymatgen.core import Lattice, Structure

    pos, q, cell = _random_cell(n, seed)
    structure = Structure(
        Lattice(cell.numpy()),
        ["H"] * n,
        pos.numpy(),
        coords_are_cartesian=True,
        site_properties={"charge": q.numpy()},
    )
    reference = EwaldSummation(structure, acc_factor=16.0).total_energy
    ours = coulomb_energy(pos, q, cell).item()
    assert abs(ours - reference) / abs(reference) < 1e-6


def test_charged_cell_matches_pymatgen_and_does_not_depend_on_sigma():
    from pymatgen.analysis.ewald import EwaldSummation
    from pymatgen.core import Lattice, Structure

    pos, q, cell = _random_cell(16, 7, charged=True)
    assert abs(q.sum().item()) > 0.1
    energies = [coulomb_energy(pos, q, cell, sigma=s, accuracy=1e-10).item() for s in (1.0, 1.6, 2.5)]
    assert max(energies) - min(energies) < 1e-8 * abs(energies[0])
    structure = Structure(
        Lattice(cell.numpy()),
        ["H"] * 16,
        pos.numpy(),
        coords_are_cartesian=True,
        site_properties={"charge": q.numpy()},
    )
    reference = EwaldSummation(structure, acc_factor=16.0).total_energy
    assert abs(energies[0] - reference) / abs(reference) < 1e-6


def test_energy_does_not_depend_on_sigma():
    pos, q, cell = _random_cell(32, 11)
    energies = [coulomb_energy(pos, q, cell, sigma=s, accuracy=1e-10).item() for s in (0.8, 1.5, 3.0)]
    assert max(energies) - min(energies) < 1e-9 * abs(energies[0])


def test_forces_and_stress_match_central_differences():
    pos, q, cell = _random_cell(12, 5)
    pos.requires_grad_(True)
    strain = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)

    def energy(p, c, eps):
        sym = 0.5 * (eps + eps.T)
        return coulomb_energy(p + p @ sym, q, c + c @ sym, accuracy=1e-12)

    e = energy(pos, cell, strain)
    grad_x, grad_eps = torch.autograd.grad(e, (pos, strain))
    forces = -grad_x
    volume = torch.linalg.det(cell).abs()
    stress = grad_eps / volume
    h = 1e-5
    fd_forces = torch.zeros_like(forces)
    with torch.no_grad():
        for i in range(pos.shape[0]):
            for d in range(3):
                dp = torch.zeros_like(pos)
                dp[i, d] = h
                fd_forces[i, d] = -(energy(pos + dp, cell, strain) - energy(pos - dp, cell, strain)) / (2 * h)
        fd_stress = torch.zeros(3, 3, dtype=torch.float64)
        for a in range(3):
            for b in range(3):
                de = torch.zeros(3, 3, dtype=torch.float64)
                de[a, b] = h
                fd_stress[a, b] = (energy(pos, cell, de) - energy(pos, cell, -de)) / (2 * h) / volume
    assert (forces - fd_forces).abs().max() / forces.abs().max() < 1e-6
    assert (stress - fd_stress).abs().max() / stress.abs().max() < 1e-6


def test_batched_cells_equal_single_evaluations():
    systems = [_random_cell(n, seed) for n, seed in ((5, 0), (17, 1), (9, 2))]
    pos = torch.cat([s[0] for s in systems])
    q = torch.cat([s[1] for s in systems])
    cells = torch.stack([s[2] for s in systems])
    batch = torch.cat([torch.full((len(s[1]),), b) for b, s in enumerate(systems)])
    together = ewald_potential(pos, q, cells, batch, accuracy=1e-8)
    apart = torch.cat([ewald_potential(p, c, cell, accuracy=1e-8) for p, c, cell in systems])
    torch.testing.assert_close(together, apart, rtol=1e-12, atol=1e-12)


def test_potential_and_energy_agree():
    pos, q, cell = _random_cell(10, 3)
    phi = electrostatic_potential(pos, q, cell)
    assert phi.shape == (10,)
    assert math.isclose(0.5 * (q * phi).sum().item(), coulomb_energy(pos, q, cell).item(), rel_tol=1e-12)


def test_float32_is_close_to_float64():
    pos, q, cell = _random_cell(20, 9)
    e64 = coulomb_energy(pos, q, cell).item()
    e32 = coulomb_energy(pos.float(), q.float(), cell.float()).item()
    assert abs(e32 - e64) / abs(e64) < 1e-4


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda p, q, c: (p, q, torch.zeros(3, 3, dtype=torch.float64)), "singular"),
        (lambda p, q, c: (p.clone().index_fill_(0, torch.tensor([0]), float("nan")), q, c), "NaN"),
        (lambda p, q, c: (p, q[:-1], c), "charges must have shape"),
        (lambda p, q, c: (p, q, c[:2]), "cell must have shape"),
    ],
)
def test_bad_input_raises_a_clear_error(change, match):
    pos, q, cell = _random_cell(6, 0)
    pos, q, cell = change(pos, q, cell)
    with pytest.raises(ValueError, match=match):
        coulomb_energy(pos, q, cell)


def test_method_and_periodicity_mismatches_are_rejected():
    pos, q, cell = _random_cell(6, 0)
    with pytest.raises(
        ValueError, match=r"mixed periodicity .*\(a wire\)"
    ):  # a slab is supported (test_slab.py)
        coulomb_energy(pos, q, cell, torch.tensor([True, False, False]))
    with pytest.raises(ValueError, match="needs a periodic cell"):
        coulomb_energy(pos, q, method="ewald")
    with pytest.raises(ValueError, match="for free structures"):
        coulomb_energy(pos, q, cell, method="direct")
    with pytest.raises(ValueError, match="unknown method"):
        coulomb_energy(pos, q, cell, method="pme")
    with pytest.raises(ValueError, match="accuracy"):
        coulomb_energy(pos, q, cell, accuracy=2.0)
