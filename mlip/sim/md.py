"""Molecular dynamics with an mlip model: one structure through ASE, many at once through TorchSim.

Ensembles and integrators (the time step ``dt``, temperature ``T`` and pressure ``P`` of :class:`MDSettings`):

==========  ==============================================================  ======================================
ensemble    ASE engine (one structure)                                      TorchSim engine (many structures)
==========  ==============================================================  ======================================
NVE         velocity Verlet (``ase.md.verlet.VelocityVerlet``)              ``torch_sim.integrators.nve``
NVT         Langevin (friction γ) or a Nosé–Hoover chain (damping τ_T)      Langevin (``nvt_langevin``, γ)
NPT         isotropic MTK barostat + Nosé–Hoover chains (τ_T, τ_P),         Langevin piston (``npt_langevin``)
            ``ase.md.nose_hoover_chain.IsotropicMTKNPT``
==========  ==============================================================  ======================================

Starting momenta: those stored on the structure (``atoms.get_momenta()``, e.g. a frame of an earlier run), else a
Maxwell–Boltzmann draw at ``T`` (``seed``) with the centre-of-mass motion removed. A :class:`MDRun` advances all its
systems by a number of steps and reports a snapshot of each: the structure with its momenta, and the potential and
kinetic energy (eV), the temperature (K, from ``3N`` degrees of freedom, ASE's convention) and the pressure (GPa,
virial plus ideal-gas term; NaN for structures without a cell volume).
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum

import ase
import numpy as np
from ase import units

from mlip.errors import MLIPInputError

__all__ = [
    "Ensemble",
    "MDRun",
    "MDSettings",
    "Snapshot",
    "Thermostat",
    "check_structures",
    "fixed_atoms",
    "initial_momenta",
    "ASERun",
]


class Ensemble(str, Enum):
    NVE = "nve"
    NVT = "nvt"
    NPT = "npt"


class Thermostat(str, Enum):
    LANGEVIN = "langevin"
    NOSE_HOOVER = "nose-hoover"


@dataclass(frozen=True, kw_only=True)
class MDSettings:
    """What to simulate. Units: K, fs, 1/ps, GPa."""

    ensemble: Ensemble = Ensemble.NVE
    temperature_K: float = 300.0
    timestep_fs: float = 1.0
    steps: int = 1000
    interval: int = 10
    thermostat: Thermostat = Thermostat.LANGEVIN
    friction_per_ps: float = 10.0
    tdamp_fs: float = 100.0
    pressure_GPa: float = 0.0
    pdamp_fs: float = 1000.0
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "ensemble", Ensemble(self.ensemble))
        object.__setattr__(self, "thermostat", Thermostat(self.thermostat))
        checks = [
            (math.isfinite(self.temperature_K) and self.temperature_K >= 0, f"the temperature must be >= 0 K, got {self.temperature_K}"),
            (math.isfinite(self.timestep_fs) and self.timestep_fs > 0, f"the time step must be > 0 fs, got {self.timestep_fs}"),
            (self.timestep_fs <= 10, f"a time step of {self.timestep_fs} fs is implausible (units are fs; 0.5-2 is usual)"),
            (self.steps >= 1 and self.interval >= 1, f"steps and interval must be >= 1, got {self.steps}, {self.interval}"),
            (self.friction_per_ps > 0 and self.tdamp_fs > 0 and self.pdamp_fs > 0, "friction, tdamp and pdamp must be > 0"),
            (math.isfinite(self.pressure_GPa), f"the pressure must be finite, got {self.pressure_GPa}"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise MLIPInputError(message)

    def replace(self, **changes) -> MDSettings:
        return dataclasses.replace(self, **changes)


@dataclass
class Snapshot:
    """One system after ``step`` steps."""

    atoms: ase.Atoms
    epot: float
    ekin: float
    temperature_K: float
    pressure_GPa: float


def check_structures(structures: list[ase.Atoms], settings: MDSettings, *, where: str = "structure") -> None:
    """Refuse what the ensemble cannot run: NPT on a structure that is not periodic in all three directions."""
    if settings.ensemble is Ensemble.NPT:
        for k, atoms in enumerate(structures):
            if not atoms.pbc.all():
                raise MLIPInputError(
                    f"{where}[{k}]: NPT needs a cell periodic in all three directions (pbc={atoms.pbc.tolist()}); "
                    "use NVT or NVE for molecules and slabs"
                )


def initial_momenta(atoms: ase.Atoms, settings: MDSettings, seed: int) -> np.ndarray:
    """The stored momenta, or a Maxwell–Boltzmann draw at the temperature with no centre-of-mass motion."""
    if atoms.has("momenta"):
        return atoms.get_momenta()
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    work = atoms.copy()
    thermalize_momenta(work, temperature_K=settings.temperature_K, rng=np.random.default_rng(seed))
    Stationary(work)
    return work.get_momenta()


class MDRun(ABC):
    """Interface of the engines: ``advance(n)`` runs ``n`` steps; ``snapshots()`` reports every system."""

    @abstractmethod
    def advance(self, n: int) -> None: ...

    @abstractmethod
    def snapshots(self) -> list[Snapshot]: ...


class ASERun(MDRun):
    """One structure with an ASE integrator and :class:`~mlip.calculators.ase_calculator.MLIPCalculator`."""

    def __init__(self, atoms: ase.Atoms, calculator, settings: MDSettings):
        self.atoms = atoms.copy()
        self.atoms.set_momenta(initial_momenta(atoms, settings, settings.seed))
        self.atoms.calc = calculator
        dt, s = settings.timestep_fs * units.fs, settings
        if s.ensemble is Ensemble.NVE:
            from ase.md.verlet import VelocityVerlet

            self.dyn = VelocityVerlet(self.atoms, timestep=dt)
        elif s.ensemble is Ensemble.NVT and s.thermostat is Thermostat.LANGEVIN:
            from ase.md.langevin import Langevin

            self.dyn = Langevin(self.atoms, timestep=dt, temperature_K=s.temperature_K,
                                friction=s.friction_per_ps / (1000 * units.fs), fixcm=False,
                                rng=np.random.default_rng(s.seed))  # fmt: skip
        elif s.ensemble is Ensemble.NVT:
            from ase.md.nose_hoover_chain import NoseHooverChainNVT

            self.dyn = NoseHooverChainNVT(self.atoms, timestep=dt, temperature_K=s.temperature_K,
                                          tdamp=s.tdamp_fs * units.fs)  # fmt: skip
        else:
            from ase.md.nose_hoover_chain import IsotropicMTKNPT

            self.dyn = IsotropicMTKNPT(self.atoms, timestep=dt, temperature_K=s.temperature_K,
                                       pressure_au=s.pressure_GPa * units.GPa, tdamp=s.tdamp_fs * units.fs,
                                       pdamp=s.pdamp_fs * units.fs)  # fmt: skip

    def advance(self, n: int) -> None:
        self.dyn.run(n)

    def snapshots(self) -> list[Snapshot]:
        a = self.atoms
        epot, ekin = float(a.get_potential_energy()), float(a.get_kinetic_energy())
        pressure = math.nan
        if a.pbc.all():
            stress = a.get_stress(include_ideal_gas=True)
            pressure = -float(stress[:3].mean()) / units.GPa
        frame = a.copy()
        frame.calc = None
        return [Snapshot(frame, epot, ekin, _temperature(ekin, len(a) - int(fixed_atoms(a).sum())), pressure)]


def _temperature(ekin: float, n_atoms: int) -> float:
    """Kelvin of ``ekin`` eV over ``3 n_atoms`` degrees of freedom (the atoms free to move)."""
    return 2.0 * ekin / (3.0 * max(n_atoms, 1) * units.kB)


def fixed_atoms(atoms: ase.Atoms) -> np.ndarray:
    """``[N]`` bool: the atoms ``FixAtoms`` constraints of ``atoms`` hold (other constraints are not looked at)."""
    from ase.constraints import FixAtoms

    mask = np.zeros(len(atoms), dtype=bool)
    for constraint in atoms.constraints:
        if isinstance(constraint, FixAtoms):
            mask[constraint.get_indices()] = True
    return mask
