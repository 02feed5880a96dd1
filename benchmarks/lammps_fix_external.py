"""mlip inside LAMMPS (``fix external``, :mod:`mlip.deploy.lammps`): ``run 0`` time against the ASE calculator
on the same structure and model, and the energy drift of an NVE run.

Usage::

    python benchmarks/lammps_fix_external.py [--model model.pt | --medium] [--reps 2 3] [--nve-steps 1000]

Without ``--model`` it builds the medium MACE of ``speed_vs_mace.py`` (float32; ``--dtype float64`` for the drift
run) for diamond Si (8·N³ atoms, rattled). The ASE time is the median of ``--calls`` calls of
``atoms.get_forces()`` after moving an atom (so the calculator recomputes); the LAMMPS time is the median of
``run 0`` (one evaluation, plus LAMMPS's setup). The NVE run starts from 300 K velocities with 1 fs steps and
reports the total energy's drift (a linear fit) and its largest excursion, meV/atom.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ase.build import bulk
from ase.io import write

from mlip.calculators import MLIPCalculator
from mlip.deploy.lammps import LAMMPSDriver, load_lammps
from mlip.models import load_model
from mlip.testing.models import speed_model


def lammps_for(atoms, model, workdir: Path):
    write(workdir / "in.data", atoms, format="lammps-data", specorder=["Si"], masses=True, units="metal")
    lmp = load_lammps()(cmdargs=["-screen", "none", "-log", "none"])
    lmp.commands_string(f"""
        units metal
        atom_style atomic
        read_data {workdir / "in.data"}
        fix mlip all external pf/callback 1 1
        fix_modify mlip energy yes virial yes
        thermo_style custom step temp pe ke etotal press
    """)
    driver = LAMMPSDriver(lmp, model, elements=["Si"])
    return lmp, driver


def time_run0(atoms, model, calls: int, workdir: Path) -> tuple[float, float]:
    calc = MLIPCalculator(model)
    atoms = atoms.copy()
    atoms.calc = calc
    ase_times = []
    for i in range(calls):
        atoms.positions[0, 0] += 1e-4 * (-1) ** i
        t = time.perf_counter()
        atoms.get_forces()
        ase_times.append(time.perf_counter() - t)
    lmp, _ = lammps_for(atoms, model, workdir)
    lmp_times = []
    for _ in range(calls):
        t = time.perf_counter()
        lmp.command("run 0")
        lmp_times.append(time.perf_counter() - t)
    lmp.close()
    return 1000 * statistics.median(ase_times[1:]), 1000 * statistics.median(lmp_times[1:])


def nve_drift(atoms, model, steps: int, workdir: Path) -> dict:
    lmp, driver = lammps_for(atoms, model, workdir)
    lmp.commands_string(
        "velocity all create 300 4928459 mom yes rot no dist gaussian\nfix nve all nve\ntimestep 0.001"
    )
    energies = []
    t = time.perf_counter()
    for _ in range(steps // 10):
        lmp.command("run 10 pre no post no")
        energies.append(lmp.get_thermo("etotal"))
    seconds = time.perf_counter() - t
    e = np.array(energies) / len(atoms)
    ps = np.arange(len(e)) * 10 * 0.001
    slope = np.polyfit(ps, e, 1)[0]
    return {
        "atoms": len(atoms), "steps": steps, "ps": steps * 0.001, "temp_K_end": lmp.get_thermo("temp"),
        "drift_meV_per_atom_per_ps": 1000 * slope, "max_excursion_meV_per_atom": 1000 * float(np.ptp(e)),
        "ms_per_step": 1000 * seconds / steps, "evaluations": driver.calls,
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="an mlip model file for Si (default: the medium MACE)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--reps", type=int, nargs="+", default=[2, 3])
    p.add_argument("--calls", type=int, default=5)
    p.add_argument("--nve-steps", type=int, default=1000)
    p.add_argument("--nve-rep", type=int, default=2)
    args = p.parse_args()
    torch.manual_seed(0)
    model = load_model(args.model, dtype=args.dtype) if args.model else speed_model("mace", dtype=args.dtype)
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.reps:
            atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat((n, n, n))
            atoms.rattle(0.05, seed=0)
            ase_ms, lmp_ms = time_run0(atoms, model, args.calls, Path(tmp))
            print(f"{len(atoms)} atoms: ASE calculator {ase_ms:.1f} ms, LAMMPS run 0 {lmp_ms:.1f} ms "
                  f"(ratio {lmp_ms / ase_ms:.2f})", flush=True)  # fmt: skip
        if args.nve_steps:
            atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat((args.nve_rep,) * 3)
            print("NVE:", nve_drift(atoms, model, args.nve_steps, Path(tmp)), flush=True)


if __name__ == "__main__":
    main()
