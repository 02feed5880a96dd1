"""A built-in NaCl dataset labelled by the Tosi–Fumi (Born–Mayer–Huggins) potential with exact Coulomb.

.. math::

    E = \\sum_{i<j} \\Big[A_{ij} e^{(σ_{ij} - r_{ij})/ρ} - \\frac{C_{ij}}{r_{ij}^6} - \\frac{D_{ij}}{r_{ij}^8}\\Big]
        + E_\\text{Coulomb}(q_\\text{Na} = +1, q_\\text{Cl} = -1)

with the parameters of Tosi and Fumi, J. Phys. Chem. Solids 25, 45 (1964) (``b = 0.338e-19 J``, Pauling factors
1.25 / 1 / 0.75, ``σ_Na = 1.170 Å``, ``σ_Cl = 1.585 Å``, ``ρ = 0.317 Å``; ``C`` and ``D`` from Mayer's dispersion
coefficients), converted to eV and Å. The short-range pair term ``V(r)`` is truncated at
:data:`SHORT_RANGE_CUTOFF` ``r_c`` with shifted forces, ``V(r) − V(r_c) − (r − r_c) V'(r_c)``, so that energy and
forces stay continuous when a pair crosses ``r_c`` (the shift is below 1e-4 eV per pair). The Coulomb energy is exact: Ewald to 1e-10 for periodic
cells, the direct sum for free clusters. Forces and stress are its derivatives by autograd, so the labels are
consistent to rounding.

Configurations (:func:`generate_nacl_dataset`, ``config_type`` in brackets):

* ``crystal``: rattled, strained rock-salt cells of 8 and 16 atoms;
* ``melt``: snapshots of Langevin dynamics at 1,500 K (above NaCl's 1,074 K melting point) of 16-atom cells
  expanded by 8 %;
* ``slab``: rattled (100) slabs of 16 atoms with 10 Å of vacuum, periodic in all three directions;
* ``clusters``: two oppositely charged rock-salt fragments (Na₄Cl₃⁺ and Na₃Cl₄⁻, rattled and randomly
  oriented) whose closest atoms are 7–12 Å apart, free boundary conditions. No short-range model with a 5 Å
  cutoff sees one fragment from the other; their interaction (about 1–2 eV) is pure Coulomb.
"""

from __future__ import annotations

import numpy as np
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes

from mlip.data.graph import Frame
from mlip.data.neighbors import neighbor_list
from mlip.longrange import coulomb_energy

__all__ = ["SHORT_RANGE_CUTOFF", "TosiFumiNaCl", "generate_nacl_dataset", "tosi_fumi_energy"]

SHORT_RANGE_CUTOFF = 10.0
"""Å. Truncation of the Born–Mayer–Huggins sum."""

_B = 0.338e-19 / 1.602176634e-19  # eV
_PAULING = {(11, 11): 1.25, (11, 17): 1.0, (17, 17): 0.75}
_SIGMA = {11: 1.170, 17: 1.585}  # Å
_RHO = 0.317  # Å
_C = {(11, 11): 1.68, (11, 17): 11.2, (17, 17): 116.0}  # 1e-79 J m^6
_D = {(11, 11): 0.8, (11, 17): 13.9, (17, 17): 233.0}  # 1e-99 J m^8
_J_M6 = 1e-79 / 1.602176634e-19 * 1e60  # -> eV Å^6
_J_M8 = 1e-99 / 1.602176634e-19 * 1e80  # -> eV Å^8
_CHARGE = {11: 1.0, 17: -1.0}


def _pair_table(numbers_i: torch.Tensor, numbers_j: torch.Tensor, dtype) -> tuple[torch.Tensor, ...]:
    """``A, σ, C, D`` per pair (eV, Å, eV Å⁶, eV Å⁸)."""
    is_cl = (numbers_i == 17).long() + (numbers_j == 17).long()  # 0 Na-Na, 1 Na-Cl, 2 Cl-Cl
    keys = [(11, 11), (11, 17), (17, 17)]
    a = torch.tensor([_PAULING[k] * _B for k in keys], dtype=dtype)[is_cl]
    sigma = torch.tensor([_SIGMA[k[0]] + _SIGMA[k[1]] for k in keys], dtype=dtype)[is_cl]
    c = torch.tensor([_C[k] * _J_M6 for k in keys], dtype=dtype)[is_cl]
    d = torch.tensor([_D[k] * _J_M8 for k in keys], dtype=dtype)[is_cl]
    return a, sigma, c, d


def tosi_fumi_energy(positions: torch.Tensor, numbers: np.ndarray, cell: torch.Tensor | None) -> torch.Tensor:
    """Total energy (eV, 0-d, differentiable) of Na/Cl atoms at ``positions [N, 3]`` Å; ``cell [3, 3]`` for a
    fully periodic cell or ``None`` for a free cluster."""
    z = np.asarray(numbers)
    if not set(z.tolist()) <= {11, 17}:
        raise ValueError(
            f"the Tosi–Fumi NaCl model knows Na (11) and Cl (17) only, got {sorted(set(z.tolist()))}"
        )
    pbc = np.array([cell is not None] * 3)
    box = np.zeros((3, 3)) if cell is None else cell.detach().numpy()
    (j, i), shifts = neighbor_list(positions.detach().numpy(), box, pbc, SHORT_RANGE_CUTOFF)
    j, i = torch.as_tensor(j), torch.as_tensor(i)
    vec = positions[j] - positions[i]
    if cell is not None:
        vec = vec + torch.as_tensor(shifts, dtype=positions.dtype) @ cell
    r = vec.norm(dim=1)
    zt = torch.as_tensor(z)
    a, sigma, c, d = _pair_table(zt[i], zt[j], positions.dtype)

    def pair(x):
        return a * torch.exp((sigma - x) / _RHO) - c / x**6 - d / x**8

    def slope(x):
        return -a / _RHO * torch.exp((sigma - x) / _RHO) + 6 * c / x**7 + 8 * d / x**9

    rc = torch.full_like(r, SHORT_RANGE_CUTOFF)
    short = 0.5 * (pair(r) - pair(rc) - (r - rc) * slope(rc)).sum()  # each pair is listed twice
    q = torch.tensor([_CHARGE[int(k)] for k in z], dtype=positions.dtype)
    coulomb = coulomb_energy(
        positions, q, cell, method="ewald" if cell is not None else "direct", accuracy=1e-10
    )
    return short + coulomb


class TosiFumiNaCl(Calculator):
    """ASE calculator of :func:`~mlip.datasets.nacl.tosi_fumi_energy`: energy, forces, stress (periodic cells), charges (±1 e)."""

    implemented_properties = ["energy", "free_energy", "forces", "stress", "charges"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        periodic = bool(self.atoms.pbc.all())
        if self.atoms.pbc.any() and not periodic:
            raise ValueError("TosiFumiNaCl needs full or no periodicity")
        x = torch.tensor(self.atoms.positions, dtype=torch.float64, requires_grad=True)
        strain = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
        sym = 0.5 * (strain + strain.T)
        cell = torch.tensor(self.atoms.cell.array, dtype=torch.float64) if periodic else None
        energy = tosi_fumi_energy(
            x + x @ sym, self.atoms.numbers, None if cell is None else cell + cell @ sym
        )
        grad_x, grad_eps = torch.autograd.grad(energy, (x, strain))
        self.results = {
            "energy": float(energy.detach()),
            "free_energy": float(energy.detach()),
            "forces": -grad_x.numpy(),
            "charges": np.array([_CHARGE[int(k)] for k in self.atoms.numbers]),
        }
        if periodic:
            s = grad_eps.numpy() / self.atoms.get_volume()
            self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


def _label(atoms: Atoms, kind: str) -> Frame:
    atoms = atoms.copy()
    atoms.calc = TosiFumiNaCl()
    periodic = bool(atoms.pbc.all())
    return Frame(
        atoms=Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc),
        energy=float(atoms.get_potential_energy()),
        forces=atoms.get_forces().copy(),
        stress=atoms.get_stress(voigt=False).copy() if periodic else None,
        charges=atoms.calc.results["charges"].copy(),
        config_type=kind,
    )


def _rocksalt(rng, repeat) -> Atoms:
    return bulk("NaCl", "rocksalt", a=5.64 * rng.uniform(0.97, 1.03), cubic=True).repeat(repeat)


def _crystal(rng) -> Atoms:
    atoms = _rocksalt(rng, (1, 1, 1) if rng.random() < 0.5 else (2, 1, 1))
    eps = rng.uniform(-0.03, 0.03, size=(3, 3))
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
    atoms.positions += rng.normal(scale=rng.uniform(0.03, 0.15), size=atoms.positions.shape)
    return atoms


def _melt_trajectory(rng, n_frames: int) -> list[Atoms]:
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import thermalize_momenta

    atoms = _rocksalt(rng, (2, 1, 1))
    atoms.set_cell(atoms.cell.array * 1.08, scale_atoms=True)
    atoms.calc = TosiFumiNaCl()
    thermalize_momenta(atoms, temperature_K=1500, rng=rng)
    dyn = Langevin(atoms, 2.0 * units.fs, temperature_K=1500, friction=0.02, rng=rng, fixcm=False)
    dyn.run(150)
    out = []
    for _ in range(n_frames):
        dyn.run(25)
        out.append(Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True))
    return out


def _slab(rng) -> Atoms:
    atoms = _rocksalt(rng, (1, 1, 2))
    atoms.center(vacuum=5.0, axis=2)  # 10 Å of vacuum between periodic images
    atoms.pbc = True
    atoms.positions += rng.normal(scale=rng.uniform(0.03, 0.12), size=atoms.positions.shape)
    return atoms


def _fragment(rng, cation_rich: bool) -> Atoms:
    """A rattled, randomly rotated 7-atom rock-salt fragment (a 2x2x2 cube minus one corner), charge ±1."""
    a = 5.64 / 2
    cube = np.array([[i, j, k] for i in range(2) for j in range(2) for k in range(2)], dtype=float) * a
    numbers = np.array(
        [11 if (i + j + k) % 2 == 0 else 17 for i in range(2) for j in range(2) for k in range(2)]
    )
    drop = int(rng.choice(np.flatnonzero(numbers == (17 if cation_rich else 11))))
    keep = np.arange(8) != drop
    atoms = Atoms(numbers=numbers[keep], positions=cube[keep] - cube[keep].mean(0))
    atoms.rotate(rng.uniform(0, 360), rng.normal(size=3), center=(0, 0, 0))
    atoms.positions += rng.normal(scale=0.08, size=atoms.positions.shape)
    return atoms


def _clusters(rng) -> Atoms:
    plus, minus = _fragment(rng, True), _fragment(rng, False)
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    gap = rng.uniform(7.0, 12.0)
    # place `minus` along `direction` so that the closest pair is `gap` apart (bisection on the offset)
    lo, hi = 0.0, 40.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        d = np.linalg.norm(plus.positions[:, None] - (minus.positions + mid * direction)[None], axis=-1).min()
        lo, hi = (mid, hi) if d < gap else (lo, mid)
    minus.positions += hi * direction
    return plus + minus


def generate_nacl_dataset(
    n_frames: int = 240, *, seed: int = 0, kinds: tuple[str, ...] | None = None
) -> list[Frame]:
    """``n_frames`` labelled frames cycling through ``kinds`` (default all four of the module docstring)."""
    kinds = kinds or ("crystal", "melt", "slab", "clusters")
    unknown = set(kinds) - {"crystal", "melt", "slab", "clusters"}
    if unknown:
        raise ValueError(f"unknown NaCl configuration kinds {sorted(unknown)}")
    rng = np.random.default_rng(seed)
    counts = {k: len(range(i, n_frames, len(kinds))) for i, k in enumerate(kinds)}
    melts = _melt_trajectory(rng, counts["melt"]) if counts.get("melt") else []
    frames = []
    for i in range(n_frames):
        kind = kinds[i % len(kinds)]
        if kind == "crystal":
            atoms = _crystal(rng)
        elif kind == "melt":
            atoms = melts.pop(0)
        elif kind == "slab":
            atoms = _slab(rng)
        else:
            atoms = _clusters(rng)
        frames.append(_label(atoms, kind))
    return frames
