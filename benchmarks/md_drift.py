"""NVE energy conservation of trained models: drift in meV/atom/ps over a long run, through ``mlip-md``.

Usage::

    python train.py --config configs/3bpa_mace.yaml --run-dir runs/3bpa_mace       # or any trained model
    python benchmarks/md_drift.py --model runs/3bpa_mace/model.pt --system 3bpa --dtype float64 [--ps 10]
        [--timestep 1.0] [--temperature 300] [--out DIR]

Systems: ``3bpa``, the first frame of ``../shared/data/3bpa/train_300K.xyz`` (27 atoms, free); ``si64``, a
2x2x2 conventional diamond-Si cell (64 atoms, a = 5.43 Å). Momenta start from a Maxwell-Boltzmann draw at
``--temperature`` (seed 0). Runs ``mlip-md`` (NVE, velocity Verlet, ASE engine, Verlet-skin neighbour list) and
fits a line to the total energy per atom against time: the slope is the drift (meV/atom/ps); also prints the
largest excursion of the total energy from its start (meV/atom) and the mean temperature.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from ase.build import bulk
from ase.io import read, write

from mlip.cli.md import main as md_main

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def structure(name: str):
    if name == "3bpa":
        return read(SHARED / "3bpa" / "train_300K.xyz", index=0)
    return bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 2, 2))


def drift(log: Path, n_atoms: int) -> tuple[float, float, float]:
    """(slope meV/atom/ps, max |E - E0| meV/atom, mean T K) of an ``mlip-md`` log."""
    rows = np.loadtxt(log, delimiter=",", skiprows=1)
    t, etot, temp = rows[:, 1], rows[:, 5] / n_atoms * 1000, rows[:, 6]
    slope = float(np.polyfit(t, etot, 1)[0])
    return slope, float(np.abs(etot - etot[0]).max()), float(temp.mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--system", choices=["3bpa", "si64"], required=True)
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--ps", type=float, default=10.0)
    p.add_argument("--timestep", type=float, default=1.0)
    p.add_argument("--temperature", type=float, default=300.0)
    p.add_argument(
        "--out", default=None, help="keep the trajectory and log here (default: a temporary directory)"
    )
    args = p.parse_args()
    atoms = structure(args.system)
    atoms.calc = None
    steps = round(args.ps * 1000 / args.timestep)
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(args.out or tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        write(out_dir / "start.xyz", atoms)
        traj = out_dir / f"{args.system}_{args.dtype}.extxyz"
        t = time.perf_counter()
        rc = md_main([str(out_dir / "start.xyz"), str(traj), "--model", args.model, "--ensemble", "nve",
                      "--temperature", str(args.temperature), "--timestep", str(args.timestep), "--steps",
                      str(steps), "--interval", "20", "--dtype", args.dtype, "--engine", "ase"])  # fmt: skip
        seconds = time.perf_counter() - t
        if rc != 0:
            raise SystemExit(rc)
        slope, excursion, temp = drift(traj.with_name(traj.name + ".log"), len(atoms))
    print(f"{args.model} {args.system} {args.dtype}: {args.ps} ps at {args.timestep} fs ({steps} steps, "
          f"{seconds:.0f} s): drift {slope:+.4f} meV/atom/ps, max |E-E0| {excursion:.4f} meV/atom, "
          f"mean T {temp:.0f} K")  # fmt: skip


if __name__ == "__main__":
    main()
