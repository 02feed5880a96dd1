"""Peak memory and time of one energy+forces+stress call against system size, MACE and Facet, on the CPU.

Usage::

    python benchmarks/large_systems.py [--models mace facet] [--atoms 1000 4096 8000 17576 32768 64000 97336]
        [--channels 32] [--dtype float32] [--limit-gb 22] [--chunk-atoms 0]

Each size runs in a fresh subprocess (its peak resident memory, ``ru_maxrss``, is its own): a rattled diamond-Si supercell of n = 8 k³ atoms, the model of
``configs/si_mace.yaml`` / ``configs/si_facet.yaml`` (``--channels`` channels, max_ell 3 / 2, r_max 5 Å, random
weights: speed and memory do not depend on them), one warm-up call and one timed call through
:class:`mlip.MLIPCalculator`. Sizes after the first whose peak would pass ``--limit-gb`` by linear extrapolation
are not attempted (reported as such). ``--chunk-atoms N`` evaluates in spatial blocks of about N atoms with their
halos (``MLIPCalculator(chunk_atoms=N)``, :mod:`mlip.inference.chunked`): the same results, memory set by N. Prints atoms, edges, seconds per call, peak GB, and GB per 1,000 atoms.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CHILD = r"""
import json, sys, time, torch
from ase.build import bulk
from mlip.calculators import MLIPCalculator
from mlip.models import build_model
name, k, channels, dtype, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
torch.manual_seed(0)
extra = dict(max_ell=3, correlation=3, radial_mlp=[64, 64, 64]) if name == "mace" else dict(max_ell=2, max_L=2)
model = build_model(dict(name=name, atomic_numbers=[14], atomic_energies=[-1.0], r_max=5.0, channels=channels,
                         num_interactions=2, num_bessel=8, avg_num_neighbors=20.0, dtype=dtype, **extra)).eval()
atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat((k, k, k))
atoms.rattle(0.03, seed=0)
calc = MLIPCalculator(model, chunk_atoms=chunk or None)
atoms.calc = calc
atoms.get_forces()
atoms.rattle(0.001, seed=1)
t = time.perf_counter()
atoms.get_stress()
seconds = time.perf_counter() - t
edges = int(calc.neighbors(atoms.positions, atoms.cell.array, atoms.pbc, model.r_max)[0].shape[1])
import resource
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
print(json.dumps({"atoms": len(atoms), "edges": edges, "seconds": seconds, "peak_gb": peak}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["mace", "facet"])
    p.add_argument("--atoms", nargs="+", type=int, default=[1000, 4096, 8000, 17576, 32768, 64000, 97336])
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--limit-gb", type=float, default=22.0)
    p.add_argument(
        "--chunk-atoms", type=int, default=0, help="evaluate in blocks of this many atoms (0: whole)"
    )
    args = p.parse_args()
    print(
        f"{'model':6s} {'atoms':>7s} {'edges':>9s} {'s/call':>8s} {'peak GB':>8s} {'GB/1k atoms':>11s}",
        flush=True,
    )
    for name in args.models:
        per_atom = None
        for n in args.atoms:
            k = round((n / 8) ** (1 / 3))
            if per_atom is not None and per_atom * 8 * k**3 > args.limit_gb:
                print(
                    f"{name:6s} {8 * k**3:7d}   not attempted: about {per_atom * 8 * k**3:.0f} GB > {args.limit_gb}"
                )
                continue
            t = time.perf_counter()
            argv = [name, str(k), str(args.channels), args.dtype, str(args.chunk_atoms)]
            proc = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True)
            if proc.returncode != 0:
                tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
                print(
                    f"{name:6s} {8 * k**3:7d}   failed after {time.perf_counter() - t:.0f} s: {tail}",
                    flush=True,
                )
                break
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            peak = r["peak_gb"]
            per_atom = peak / r["atoms"]
            print(f"{name:6s} {r['atoms']:7d} {r['edges']:9d} {r['seconds']:8.2f} {peak:8.2f} "
                  f"{1000 * peak / r['atoms']:11.3f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
