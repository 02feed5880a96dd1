"""The TorchSim engine of :mod:`mlip.sim.md`: all structures in one batched state on the device.

Integrators (``torch_sim.integrators``): NVE ``nve`` (velocity Verlet), NVT ``nvt_langevin`` (friction γ), NPT
``npt_langevin`` (Langevin piston at the external pressure; atoms and cell with friction γ, the piston time
``pdamp``). Fixed atoms (ASE's ``FixAtoms``, as ``mlip-md`` reads them from ``move_mask``) stay exactly where they
are in NVE and NVT: the model's forces on them are zeroed, their mass is made :data:`FIXED_MASS` inside the
integrator (so Langevin's noise moves them by about 1e-12 Å within a step), and after every step their positions
are put back and their momenta zeroed, as ASE's ``FixAtoms`` does. Other constraints, and fixed atoms in NPT (where
the cell scales every position), are refused. Temperatures count ``3 (n - n_fixed)`` degrees of freedom. Units at
this boundary: TorchSim's metal units are ASE's (eV, Å, amu, time in Å·√(amu/eV)), so ``dt =
timestep_fs · ase.units.fs``, ``kT = T · ase.units.kB``, pressures in eV/Å³ (``GPa · ase.units.GPa``).
"""

from __future__ import annotations

import math

import ase
import numpy as np
import torch
from ase import units

from mlip.errors import MLIPInputError
from mlip.sim.md import (
    Ensemble,
    MDRun,
    MDSettings,
    Snapshot,
    Thermostat,
    _temperature,
    fixed_atoms,
    initial_momenta,
)
from mlip.sim.torchsim import MLIPModel, state_to_atoms

__all__ = ["FIXED_MASS", "TorchSimRun", "fixed_mask"]

FIXED_MASS = 1e20
"""amu: the integrator's mass of a fixed atom (its thermal velocity is ~1e-10 of a real atom's)."""


def fixed_mask(structures: list[ase.Atoms]) -> np.ndarray:
    """``[N_total]`` bool: the atoms ``FixAtoms`` holds, over the structures in order; any other ASE constraint is
    refused (one line naming the structure)."""
    from ase.constraints import FixAtoms

    for k, atoms in enumerate(structures):
        for constraint in atoms.constraints:
            if not isinstance(constraint, FixAtoms):
                raise MLIPInputError(
                    f"structure {k}: the TorchSim engine applies FixAtoms only, not {type(constraint).__name__} "
                    "(run it alone with --engine ase)"
                )
    return np.concatenate([fixed_atoms(a) for a in structures]) if structures else np.zeros(0, dtype=bool)


class TorchSimRun(MDRun):
    """``TorchSimRun(structures, model, settings, device="cpu")``: every structure advanced together."""

    def __init__(self, structures: list[ase.Atoms], model, settings: MDSettings, *, device: str = "cpu"):
        import torch_sim as ts
        import torch_sim.integrators as tsi

        if settings.ensemble is Ensemble.NVT and settings.thermostat is not Thermostat.LANGEVIN:
            raise MLIPInputError(
                "the TorchSim engine thermostats NVT with Langevin only (use --thermostat langevin)"
            )
        periodic = {bool(a.pbc.all()) for a in structures}
        if len(periodic) > 1 or any(a.pbc.any() and not a.pbc.all() for a in structures):
            raise MLIPInputError(
                "the TorchSim engine runs structures that are all fully periodic or all free (one pbc flag per batch)"
            )
        fixed = fixed_mask(structures)
        if fixed.any() and settings.ensemble is Ensemble.NPT:
            raise MLIPInputError(
                "NPT with fixed atoms (FixAtoms) is not supported: the barostat scales every position; use NVT"
            )
        self.model = MLIPModel(model, device=device)
        self.settings = settings
        dtype = self.model.dtype
        state = ts.io.atoms_to_state(structures, self.model.device, dtype)
        momenta = np.concatenate(
            [initial_momenta(a, settings, settings.seed + k) for k, a in enumerate(structures)]
        )
        momenta[fixed] = 0.0
        state.momenta = torch.tensor(momenta, dtype=dtype, device=self.model.device)
        self._fixed = torch.as_tensor(fixed, device=self.model.device) if fixed.any() else None
        if self._fixed is not None:
            self.model.fixed = self._fixed
            state.masses = torch.where(self._fixed, torch.full_like(state.masses, FIXED_MASS), state.masses)
            self._fixed_positions = state.positions[self._fixed].clone()
        s = settings
        as_t = lambda x: torch.tensor(x, dtype=dtype, device=self.model.device)  # noqa: E731
        common = dict(
            model=self.model, dt=as_t(s.timestep_fs * units.fs), kT=as_t(s.temperature_K * units.kB)
        )
        gamma = as_t(s.friction_per_ps / (1000 * units.fs))
        if s.ensemble is Ensemble.NVE:
            init, self._update = tsi.nve(**common, seed=s.seed)
        elif s.ensemble is Ensemble.NVT:
            init, self._update = tsi.nvt_langevin(**common, gamma=gamma, seed=s.seed)
        else:
            init, self._update = tsi.npt_langevin(**common, external_pressure=as_t(s.pressure_GPa * units.GPa),
                                                  alpha=gamma, b_tau=as_t(s.pdamp_fs * units.fs), seed=s.seed)  # fmt: skip
        self.state = init(state)
        self._originals = [a.copy() for a in structures]

    def advance(self, n: int) -> None:
        for _ in range(n):
            self.state = self._update(self.state)
            if self._fixed is not None:  # as ASE's FixAtoms: positions put back, momenta zero
                self.state.positions[self._fixed] = self._fixed_positions
                self.state.momenta[self._fixed] = 0.0

    def snapshots(self) -> list[Snapshot]:
        st = self.state
        counts = torch.bincount(st.system_idx, minlength=st.n_systems).tolist()
        momenta = st.momenta.detach().to("cpu", torch.float64).numpy()
        masses = st.masses.detach().to("cpu", torch.float64).numpy()
        fixed = np.zeros(len(masses), dtype=bool) if self._fixed is None else self._fixed.cpu().numpy()
        ekin_atom = 0.5 * (momenta**2).sum(axis=1) / masses
        frames = state_to_atoms(st)
        periodic = frames[0].pbc.all()
        stress = self.model(st)["stress"].detach().to("cpu", torch.float64).numpy() if periodic else None
        out, start = [], 0
        for b, (atoms, n) in enumerate(zip(frames, counts)):
            frame = self._originals[b].copy()
            frame.positions = atoms.positions
            if periodic:
                frame.set_cell(atoms.cell, scale_atoms=False)
            frame.set_momenta(momenta[start : start + n])
            ekin = float(ekin_atom[start : start + n].sum())
            pressure = math.nan
            if periodic:
                volume = abs(np.linalg.det(atoms.cell.array))
                pressure = (-np.trace(stress[b]) / 3 + 2 * ekin / (3 * volume)) / units.GPa
            free = n - int(fixed[start : start + n].sum())
            out.append(Snapshot(frame, float(st.energy[b]), ekin, _temperature(ekin, free), float(pressure)))
            start += n
        return out
