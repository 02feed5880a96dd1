"""The TorchSim engine of :mod:`mlip.calculators.md`: all structures in one batched state on the device.

Integrators (``torch_sim.integrators``): NVE ``nve`` (velocity Verlet), NVT ``nvt_langevin`` (friction γ), NPT
``npt_langevin`` (Langevin piston at the external pressure; atoms and cell with friction γ, the piston time
``pdamp``). Units at this boundary: TorchSim's metal units are ASE's (eV, Å, amu, time in Å·√(amu/eV)), so ``dt =
timestep_fs · ase.units.fs``, ``kT = T · ase.units.kB``, pressures in eV/Å³ (``GPa · ase.units.GPa``).
"""

from __future__ import annotations

import math

import ase
import numpy as np
import torch
from ase import units

from mlip.calculators.md import (
    Ensemble,
    MDRun,
    MDSettings,
    Snapshot,
    Thermostat,
    _temperature,
    initial_momenta,
)
from mlip.calculators.torchsim import MLIPModel, state_to_atoms
from mlip.errors import MLIPInputError

__all__ = ["TorchSimRun"]


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
        self.model = MLIPModel(model, device=device)
        self.settings = settings
        dtype = self.model.dtype
        state = ts.io.atoms_to_state(structures, self.model.device, dtype)
        momenta = [initial_momenta(a, settings, settings.seed + k) for k, a in enumerate(structures)]
        state.momenta = torch.tensor(np.concatenate(momenta), dtype=dtype, device=self.model.device)
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

    def snapshots(self) -> list[Snapshot]:
        st = self.state
        counts = torch.bincount(st.system_idx, minlength=st.n_systems).tolist()
        momenta = st.momenta.detach().to("cpu", torch.float64).numpy()
        masses = st.masses.detach().to("cpu", torch.float64).numpy()
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
            out.append(Snapshot(frame, float(st.energy[b]), ekin, _temperature(ekin, n), float(pressure)))
            start += n
        return out
