"""Checks of a TorchSim model against an ASE calculator, for :class:`mlip.sim.torchsim.MLIPModel`.

TorchSim's newer releases ship ``torch_sim.testing`` (``SIMSTATE_BULK_GENERATORS``,
``assert_model_calculator_consistency``); the newest release on our package index (0.3.0) does not. Tests use
TorchSim's own when it can be imported and these otherwise: the same crystals and the same comparison (energy, forces, and Voigt stress of the model's first system against the calculator's).
"""

from __future__ import annotations

import ase
import numpy as np
import torch
from ase.build import bulk, molecule
from ase.spacegroup import crystal

__all__ = ["BULK_ELEMENTS", "assert_model_calculator_consistency", "bulk_structures", "rattled", "benzene"]


def rattled(atoms: ase.Atoms, seed: int = 3, scale: float = 0.1) -> ase.Atoms:
    """A copy with every atom moved by ``scale`` Å times a Weibull(1) length in a random direction."""
    rng = np.random.default_rng(seed)
    out = atoms.copy()
    direction = rng.normal(size=out.positions.shape)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    out.positions += scale * rng.weibull(1.0, size=(len(out), 1)) * direction
    return out


def _spacegroup(basis: list[tuple], group: int, cellpar: list[float]) -> ase.Atoms:
    return crystal(
        symbols=[b[0] for b in basis], basis=[b[1:] for b in basis], spacegroup=group, cellpar=cellpar
    )


def _casio3() -> ase.Atoms:
    basis = [
        ("Ca", 0.19831, 0.42266, 0.76060), ("Ca", 0.20241, 0.92919, 0.76401), ("Ca", 0.50333, 0.75040, 0.52691),
        ("Si", 0.1851, 0.3875, 0.2684), ("Si", 0.1849, 0.9542, 0.2691), ("Si", 0.3973, 0.7236, 0.0561),
        ("O", 0.3034, 0.4616, 0.4628), ("O", 0.3014, 0.9385, 0.4641), ("O", 0.5705, 0.7688, 0.1988),
        ("O", 0.9832, 0.3739, 0.2655), ("O", 0.9819, 0.8677, 0.2648), ("O", 0.4018, 0.7266, 0.8296),
        ("O", 0.2183, 0.1785, 0.2254), ("O", 0.2713, 0.8704, 0.0938), ("O", 0.2735, 0.5126, 0.0931),
    ]  # fmt: skip
    return _spacegroup(basis, 2, [7.9258, 7.3202, 7.0653, 90.055, 95.217, 103.426])


def _distorted_al() -> ase.Atoms:
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    strain = np.array([[1.0, 0.05, -0.03], [0.04, 1.0, 0.06], [-0.02, 0.03, 1.0]])
    atoms.set_cell(atoms.cell.array @ strain.T, scale_atoms=True)
    atoms.positions += np.random.default_rng(42).normal(scale=0.01, size=atoms.positions.shape)
    return atoms


def _osn2() -> ase.Atoms:
    from ase.geometry import cellpar_to_cell

    a = 3.211996
    cell = cellpar_to_cell([a, a, a, 60, 60, 60])
    return ase.Atoms("OsN", scaled_positions=[[0.75, 0.7501, -0.25], [0, 0, 0]], cell=cell, pbc=True)


def bulk_structures() -> dict[str, ase.Atoms]:
    """The bulk crystals of TorchSim's model tests (1 to 256 atoms; cubic, hexagonal, rhombohedral, monoclinic and
    triclinic cells; rattled ones), by name."""
    sio2 = _spacegroup([("O", 0.413, 0.2711, 0.2172), ("Si", 0.4673, 0, 0.3333)], 152,
                       [4.9019, 4.9019, 5.3988, 90, 90, 120])  # fmt: skip
    si = bulk("Si", "diamond", a=5.43, cubic=True)
    return {
        "cu": bulk("Cu", "fcc", a=3.58, cubic=True),
        "mg": bulk("Mg", "hcp", a=3.17, c=5.14),
        "sb": bulk("Sb", "rhombohedral", a=4.58, alpha=60),
        "tio2": _spacegroup(
            [("Ti", 0.5, 0.5, 0), ("O", 0.695679, 0.695679, 0.5)], 136, [4.6, 4.6, 2.96, 90, 90, 90]
        ),
        "ga": _spacegroup([("Ga", 0, 0.344304, 0.415401)], 64, [4.43, 7.60, 4.56, 90, 90, 90]),
        "niti": _spacegroup(
            [("Ni", 0.369548, 0.25, 0.217074), ("Ti", 0.076622, 0.25, 0.671102)],
            11,
            [2.89, 3.97, 4.83, 90.0, 105.23, 90.0],
        ),  # fmt: skip
        "ti": bulk("Ti", "hcp", a=2.94, c=4.64),
        "si": si,
        "rattled_si": rattled(si),
        "sio2": sio2,
        "rattled_sio2": rattled(sio2),
        "ar_supercell": bulk("Ar", "fcc", a=5.26, cubic=True).repeat([2, 2, 2]),
        "fe_supercell": bulk("Fe", "fcc", a=5.26, cubic=True).repeat([4, 4, 4]),
        "casio3": _casio3(),
        "osn2": _osn2(),
        "distorted_fcc_al": _distorted_al(),
    }


BULK_ELEMENTS = (1, 6, 7, 8, 12, 13, 14, 18, 20, 22, 26, 28, 29, 31, 51, 76)
"""Atomic numbers of :func:`bulk_structures` and benzene (a model for the checks must know them)."""


def benzene() -> ase.Atoms:
    """The non-periodic member of TorchSim's set."""
    return molecule("C6H6")


def assert_model_calculator_consistency(
    model, calculator, state, *, rtol: float = 1e-5, atol: float = 1e-5
) -> None:
    """Energy, forces and (periodic states) Voigt stress of ``model(state)`` for the state's first system equal
    ``calculator``'s on the same structure, to ``rtol``/``atol``."""
    import torch_sim as ts

    atoms = ts.io.state_to_atoms(state)[0]
    atoms.calc = calculator
    out = model(state)
    n = len(atoms)
    dtype, device = out["forces"].dtype, out["forces"].device
    torch.testing.assert_close(
        float(out["energy"][0]), float(atoms.get_potential_energy()), rtol=rtol, atol=atol
    )
    want = torch.tensor(atoms.get_forces(), dtype=dtype, device=device)
    torch.testing.assert_close(out["forces"][:n], want, rtol=rtol, atol=atol)
    if "stress" in out:
        s = out["stress"][0]
        voigt = torch.stack([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
        want = torch.tensor(atoms.get_stress(), dtype=dtype, device=device)
        torch.testing.assert_close(voigt, want, rtol=rtol, atol=atol)
