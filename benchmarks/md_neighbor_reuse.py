"""MD steps/s with the Verlet-skin neighbour list reused against a list rebuilt every step, same run, same cell.

Usage::

    python benchmarks/md_neighbor_reuse.py [--atoms 1000] [--steps 20] [--model small medium] [--skin 0.5]

A rattled diamond-Si cell of about ``--atoms`` atoms (5x5x5 conventional cells = 1000) runs NVE velocity Verlet
(ASE, 1 fs, 600 K start) through :class:`mlip.MLIPCalculator` with ``skin=0`` (rebuild every step) and with
``skin=--skin`` (reuse), from the same start. ``medium`` is the speed benchmarks' MACE (128 channels, r_max 6 Å,
float32), ``small`` an 8-channel MACE (r_max 4 Å) where the neighbour list is a larger share of a step. Prints
steps/s of both, their ratio, how many lists the reusing run built, and the largest force difference between the
two runs at the last step (the same trajectory to rounding).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from ase import units
from ase.build import bulk
from ase.md.velocitydistribution import thermalize_momenta
from ase.md.verlet import VelocityVerlet

from mlip.calculators import MLIPCalculator
from mlip.models import build_model
from mlip.testing.models import speed_model


def small_model():
    return build_model(dict(
        name="mace", atomic_numbers=[14], atomic_energies=[-1.0], r_max=4.0, channels=8, max_ell=2, max_L=1,
        correlation=2, radial_mlp=[16], avg_num_neighbors=10.0, dtype="float32",
    )).eval()  # fmt: skip


def run(model, atoms, skin: float, steps: int):
    atoms = atoms.copy()
    calc = MLIPCalculator(model, skin=skin)
    atoms.calc = calc
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    dyn.run(1)  # warm-up step (first call)
    t = time.perf_counter()
    dyn.run(steps)
    rate = steps / (time.perf_counter() - t)
    return rate, calc.nl_builds, atoms.get_forces()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--atoms", type=int, default=1000)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--model", nargs="+", default=["small", "medium"], choices=["small", "medium"])
    p.add_argument("--skin", type=float, default=0.5)
    args = p.parse_args()
    torch.manual_seed(0)
    n = max(1, round((args.atoms / 8) ** (1 / 3)))
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat((n, n, n))
    atoms.rattle(0.03, seed=0)
    thermalize_momenta(atoms, temperature_K=600, rng=np.random.default_rng(0))
    print(f"{len(atoms)} Si atoms, {args.steps} NVE steps of 1 fs, torch threads {torch.get_num_threads()}")
    print(f"{'model':8s} {'rebuild steps/s':>16s} {'reuse steps/s':>14s} {'ratio':>6s} {'lists built':>12s} "
          f"{'max |dF| eV/Å':>14s}")  # fmt: skip
    for name in args.model:
        model = small_model() if name == "small" else speed_model("mace", dtype="float32")
        rebuild, built0, f0 = run(model, atoms, 0.0, args.steps)
        reuse, built1, f1 = run(model, atoms, args.skin, args.steps)
        print(f"{name:8s} {rebuild:16.3f} {reuse:14.3f} {reuse / rebuild:6.2f} {built1:5d} of {args.steps + 1:<4d} "
              f"{np.abs(f0 - f1).max():14.2e}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
