"""An imported mace-torch model in mlip against mace-torch itself: energy + forces on diamond Si, same run.

    python benchmarks/mace_import_speed.py --mace-python $PEER_VENV/bin/python [--model IN.model]
        [--cells 3] [--dtype float32] [--repeats 5]

Without ``--model`` a ``ScaleShiftMACE`` with MACE-MP-0 medium's hyperparameters (128x0e+128x1o, max_ell 3,
correlation 3, 2 layers, 89 elements, ZBL, r_max 6 Å; random weights) is built in the mace-torch environment
(``tests/fixtures/mace/make_fixtures.py``). The model is imported with ``mlip-import-mace``; both programs then time
``--repeats`` energy + force calls (after one warm-up) on a rattled ``--cells``³ diamond-Si supercell (8·cells³
atoms), through their ASE calculators (mace-torch's ``MACECalculator``, mlip's ``MLIPCalculator``), in ``--dtype``,
on the CPU. Prints the median ms per call of each and their ratio, and the largest energy and force differences
between the two.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_PEER = r"""
import json, sys, time
import numpy as np, torch
from ase.build import bulk
from mace.calculators import MACECalculator
model, cells, dtype, repeats = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(cells)
atoms.rattle(0.05, seed=0)
atoms.calc = MACECalculator(model_paths=model, device="cpu", default_dtype=dtype)
times = []
for k in range(repeats + 1):
    atoms.positions[0, 0] += 1e-4  # a new geometry each call (no cached results)
    t0 = time.perf_counter(); e = atoms.get_potential_energy(); f = atoms.get_forces(); t1 = time.perf_counter()
    if k:
        times.append(t1 - t0)
print(json.dumps({"ms": 1e3 * float(np.median(times)), "energy": float(e), "forces": f.tolist(),
                  "positions": atoms.positions.tolist(), "threads": torch.get_num_threads()}))
"""

_BUILD = r"""
import sys, torch
sys.path.insert(0, sys.argv[2])
import make_fixtures
torch.set_default_dtype(torch.float64)
torch.manual_seed(0)
torch.save(make_fixtures.build(make_fixtures.SPECS["mp0_medium"]), sys.argv[1])
"""


def _run(python: str, code: str, *args: str) -> str:
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    run = subprocess.run([python, "-c", code, *args], capture_output=True, text=True, env=env)
    if run.returncode:
        sys.exit(f"the mace-torch side failed:\n{run.stderr[-3000:]}")
    return run.stdout.strip().splitlines()[-1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mace-python", required=True)
    p.add_argument("--model", default=None)
    p.add_argument("--cells", type=int, default=3)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    import numpy as np
    from ase.build import bulk

    from mlip.calculators.ase_calculator import MLIPCalculator

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(Path(tmp) / "mp0_medium.model")
        if args.model is None:
            _run(args.mace_python, _BUILD, model, str(ROOT / "tests" / "fixtures" / "mace"))
        imported = Path(tmp) / "imported.pt"
        subprocess.run(
            [sys.executable, "-m", "mlip.cli.import_mace", model, str(imported), "--mace-python",
             args.mace_python], check=True, capture_output=True,
        )  # fmt: skip
        peer = json.loads(
            _run(args.mace_python, _PEER, model, str(args.cells), args.dtype, str(args.repeats))
        )
        atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(args.cells)
        atoms.calc = MLIPCalculator(str(imported), dtype=args.dtype)
        times = []
        for k in range(args.repeats + 1):
            atoms.positions[0, 0] += 1e-4
            t0 = time.perf_counter()
            atoms.get_potential_energy()
            atoms.get_forces()
            if k:
                times.append(time.perf_counter() - t0)
        ours_ms = 1e3 * float(np.median(times))
        atoms.positions = np.asarray(peer["positions"])  # mace-torch's last geometry
        d_e = abs(atoms.get_potential_energy() - peer["energy"])
        d_f = float(np.abs(atoms.get_forces() - np.asarray(peer["forces"])).max())
    n = len(atoms)
    print(
        f"{n} atoms, {args.dtype}, CPU, {peer['threads']} threads, median of {args.repeats} energy+force calls"
    )
    print(f"mace-torch       {peer['ms']:9.1f} ms")
    print(f"mlip (imported)  {ours_ms:9.1f} ms   {peer['ms'] / ours_ms:5.2f}x")
    print(f"largest |dE| {d_e:.2e} eV, largest |dF| {d_f:.2e} eV/A (same geometry)")


if __name__ == "__main__":
    main()
