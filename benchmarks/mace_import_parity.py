"""Parity of the MACE import on every fixture of ``tests/fixtures/mace``: the precision mace-torch's ``U`` matrices
carry, the change-of-basis residual, and the largest energy and relative force differences from mace-torch's
float64 outputs (molecule, bulk cell, slab; every head).

    python benchmarks/mace_import_parity.py
"""

import json
from pathlib import Path

import numpy as np
from ase import Atoms

from mlip.inference.predict import predict
from mlip.interop.mace_import import model_from_export

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "mace"
CASES = [("mp0_medium", [None]), ("off_small", [None]), ("tiny", [None]), ("tiny_mp0b", ["mp", "pbe"]),
         ("tiny_f32", [None]), ("tiny_f64_generic", [None]), ("tiny_f32_doubled", [None])]  # fmt: skip


def main() -> None:
    print("| fixture | U precision | basis residual | max abs energy error | max force error / max force |")
    print("|---|---|---|---|---|")
    for name, heads in CASES:
        d_e = d_f = 0.0
        for head in heads:
            report: dict = {}
            model = model_from_export(FIXTURES / name, head=head, report=report)
            ref = json.loads((FIXTURES / f"{name}.reference.json").read_text())
            ref = {k: v for k, v in ref.items() if head is None or k.endswith(f"@{head}")}
            frames = [Atoms(numbers=i["numbers"], positions=i["positions"], cell=i["cell"], pbc=i["pbc"])
                      for i in ref.values()]  # fmt: skip
            for item, out in zip(ref.values(), predict(model, frames).results):
                forces = np.asarray(item["forces"])
                d_e = max(d_e, abs(out["energy"] - item["energy"]))
                d_f = max(d_f, float(np.abs(out["forces"] - forces).max() / np.abs(forces).max()))
        print(
            f"| {name} | {report['basis_precision']} | {report['basis_residual']:.1e} | {d_e:.1e} eV | {d_f:.1e} |"
        )


if __name__ == "__main__":
    main()
