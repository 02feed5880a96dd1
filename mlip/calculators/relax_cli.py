"""``mlip-relax IN OUT --model PATH [--fmax F] [--steps N] [--relax-cell] [--optimizer fire|bfgs]``."""

from __future__ import annotations

import argparse
import sys

import ase.io
from ase.calculators.singlepoint import SinglePointCalculator

from mlip.calculators.ase_calculator import MLIPCalculator
from mlip.calculators.relax import relax


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mlip-relax", description="Relax every structure of IN and write OUT.")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--model", required=True, help="mlip model file")
    p.add_argument("--fmax", type=float, default=0.01, help="force threshold, eV/Å (default 0.01)")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--relax-cell", action="store_true", help="relax the cell too (FrechetCellFilter)")
    p.add_argument("--optimizer", default="fire", choices=["fire", "bfgs"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default=None, choices=["float32", "float64"])
    args = p.parse_args(argv)
    calc = MLIPCalculator(args.model, device=args.device, dtype=args.dtype)
    images = ase.io.read(args.input, index=":")
    out, failed = [], 0
    for i, atoms in enumerate(images):
        relaxed, ok = relax(
            atoms,
            calc,
            fmax=args.fmax,
            steps=args.steps,
            relax_cell=args.relax_cell,
            optimizer=args.optimizer,
        )
        results = {k: v for k, v in calc.results.items()}
        relaxed.calc = SinglePointCalculator(relaxed, **results)
        relaxed.info["relax_converged"] = ok
        failed += not ok
        fmax = abs(results["forces"]).max()
        print(
            f"[{i}] {relaxed.get_chemical_formula()}: E = {results['energy']:.6f} eV, "
            f"max|F| = {fmax:.4g} eV/Å, converged = {ok}"
        )
        out.append(relaxed)
    ase.io.write(args.output, out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
