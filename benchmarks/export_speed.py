"""Energy+forces+stress time of an exported artefact (``mlip-export``) against the eager model it came from.

Usage::

    python benchmarks/export_speed.py [--reps 2 3] [--calls 5] [--dtype float32]

The medium MACE of ``speed_vs_mace.py`` (128x0e+128x1o, max_ell 3, correlation 3, r_max 6 Å) on rattled diamond
Si. "eager" is the model as a user runs it (``Backend.AUTO``: mlip's native CPU kernels); "exported" is the
``torch.export`` program, run by PyTorch's graph interpreter (``Backend.TORCH`` kernels inside), which needs only
torch. Prints the export time and median ms per call (first call discarded); inputs are built once per size.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from ase.build import bulk

from mlip import keys as K
from mlip.data import atoms_to_graph, collate
from mlip.deploy.export import contract_inputs, export_model
from mlip.deploy.exported import ExportedModel
from mlip.testing.models import speed_model


def median_ms(fn, calls: int) -> float:
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, nargs="+", default=[2, 3])
    p.add_argument("--calls", type=int, default=5)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = p.parse_args()
    torch.manual_seed(0)
    model = speed_model("mace", dtype=args.dtype)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        export_model(model, Path(tmp) / "m.pt2")
        print(f"export: {time.perf_counter() - t:.1f} s", flush=True)
        art = ExportedModel(Path(tmp) / "m.pt2")
        for n in args.reps:
            atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat((n, n, n))
            atoms.rattle(0.05, seed=0)
            batch = collate([atoms_to_graph(atoms, model.r_max)])
            inputs = contract_inputs(atoms, model.r_max)
            eager = median_ms(
                lambda b=batch: model(b, compute_forces=True, compute_stress=True)[K.FORCES].sum().item(),
                args.calls,
            )
            exported = median_ms(lambda i=inputs: art(*i)["forces"].sum().item(), args.calls)
            print(
                f"{len(atoms)} atoms: eager {eager:.1f} ms, exported {exported:.1f} ms (ratio {exported / eager:.2f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
