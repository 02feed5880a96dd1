"""Relaxation throughput: many cells batched through TorchSim against one by one through ASE, same run.

Usage::

    python train.py                                   # the quick-start Cu-Au model, runs/<timestamp>/model.pt
    python benchmarks/batched_relax.py --model runs/<timestamp>/model.pt [--n 200] [--fmax 0.05] [--steps 300]
        [--relax-cell] [--device cpu] [--dtype float64] [--max-atoms 2048]

``--n`` fcc Cu-Au cells of 8 to 64 atoms (conventional cells repeated 2x1x1 up to 4x2x2; 0-50 % Au at random
sites; a random symmetric strain of up to 3 %; rattled by 0.03-0.1 Å; seeded) are relaxed with FIRE to ``--fmax``
(positions, and the cell with ``--relax-cell``), first all together by :func:`mlip.sim.batch_relax.
relax_many` (TorchSim, batches of up to ``--max-atoms`` atoms), then one at a time by
:func:`mlip.sim.relax` (ASE, the same model and settings). Prints structures/s of both, their ratio, how
many converged, the mean steps, and the largest energy difference per atom between the two engines' minima.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from ase.build import bulk

from mlip.calculators import MLIPCalculator, relax
from mlip.sim.batch_relax import relax_many
from mlip.sim.torchsim import MLIPModel

REPEATS = [(2, 1, 1), (2, 2, 1), (3, 2, 1), (2, 2, 2), (3, 2, 2), (4, 2, 2)]  # 8, 16, 24, 32, 48, 64 atoms


def cells(n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=3.61 * rng.uniform(1.0, 1.04), cubic=True).repeat(
            REPEATS[k % len(REPEATS)]
        )
        atoms.numbers[rng.random(len(atoms)) < rng.uniform(0.0, 0.5)] = 79
        eps = rng.uniform(-0.03, 0.03, size=(3, 3))
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
        atoms.positions += rng.normal(scale=rng.uniform(0.03, 0.1), size=atoms.positions.shape)
        out.append(atoms)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--fmax", type=float, default=0.05)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--relax-cell", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--max-atoms", type=int, default=2048)
    args = p.parse_args()
    structures = cells(args.n)
    sizes = [len(a) for a in structures]
    print(f"{args.n} Cu-Au cells, {min(sizes)}-{max(sizes)} atoms ({sum(sizes)} in all), fmax {args.fmax} eV/Å, "
          f"cell {'relaxed' if args.relax_cell else 'fixed'}, {args.device}, {args.dtype}", flush=True)  # fmt: skip
    calc = MLIPCalculator(args.model, device=args.device, dtype=args.dtype)
    model = MLIPModel(calc.model, device=args.device)

    t = time.perf_counter()
    batched = {r.index: r for r in relax_many(enumerate(structures), model, fmax=args.fmax, steps=args.steps,
                                              relax_cell=args.relax_cell, max_atoms=args.max_atoms)}  # fmt: skip
    t_batched = time.perf_counter() - t
    print(f"torchsim batched: {t_batched:8.1f} s  {args.n / t_batched:8.3f} structures/s  "
          f"converged {sum(r.converged for r in batched.values())}/{args.n}  "
          f"mean steps {np.mean([r.steps for r in batched.values()]):.1f}", flush=True)  # fmt: skip

    t = time.perf_counter()
    single = []
    for atoms in structures:
        single.append(relax(atoms, calc, fmax=args.fmax, steps=args.steps, relax_cell=args.relax_cell,
                            return_steps=True))  # fmt: skip
    t_single = time.perf_counter() - t
    print(f"ase one by one:   {t_single:8.1f} s  {args.n / t_single:8.3f} structures/s  "
          f"converged {sum(ok for _, ok, _ in single)}/{args.n}  "
          f"mean steps {np.mean([n for _, _, n in single]):.1f}", flush=True)  # fmt: skip
    diff = [
        abs(batched[i].atoms.get_potential_energy() - single[i][0].get_potential_energy())
        / len(structures[i])
        for i in range(args.n)
        if batched[i].atoms is not None
    ]
    print(f"ratio (batched / one by one): {t_single / t_batched:.2f}x; largest |ΔE| between the minima: "
          f"{max(diff):.2e} eV/atom (median {np.median(diff):.1e})")  # fmt: skip


if __name__ == "__main__":
    main()
