"""Energy+forces time of mlip's MACE against mace-torch, side by side in one run on this machine.

Usage::

    PEER_VENV=/path/to/peer/venv python benchmarks/speed_vs_mace.py [--size medium] [--reps 2 3] [--calls 7] \
        [--modes eager compiled] [--backbones mace facet tdn]

Both models use the configuration of ``../shared/peers/mace_speed.py`` (``medium``: 128x0e+128x1o, max_ell 3,
correlation 3, 2 interactions, r_max 6, radial MLP [64, 64, 64], 8 Bessel functions, float32, CPU) on rattled
diamond-Si supercells (8·N³ atoms). mace-torch runs in its own virtual environment (its pins clash with ours)
through that script; ours runs here, eager and/or with its network compiled (``model.compile_network()``, the
first call compiles and is discarded). Prints median milliseconds per call (first call discarded) and the ratio.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from ase.build import bulk

from mlip import keys as K
from mlip.data import atoms_to_graph, collate
from mlip.testing.models import speed_model

HIDDEN_L = {"small": 0, "medium": 1, "large": 2}
PEER_SCRIPT = Path(__file__).resolve().parents[1].parent / "shared" / "peers" / "mace_speed.py"


def time_ours(
    size: str, n: int, calls: int, compiled: bool = False, name: str = "mace"
) -> tuple[int, int, float]:
    """Median ms of energy+forces for backbone ``name`` at the peer's medium settings (channels 128, max_L, max_ell
    3, r_max 6; Facet and TDN take the fields that apply to them, their other settings at their defaults)."""
    model = speed_model(name, max_L=HIDDEN_L[size])
    if compiled:
        model.compile_network()
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat((n, n, n))
    atoms.rattle(0.05, seed=0)
    batch = collate([atoms_to_graph(atoms, 6.0)])
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        out = model(batch, compute_forces=True)
        out[K.FORCES].sum().item()
        times.append(time.perf_counter() - t)
    return len(atoms), batch[K.EDGE_INDEX].shape[1], 1000 * statistics.median(times[1:])


def time_peer(size: str, reps: list[int]) -> dict[int, float]:
    venv = os.environ.get("PEER_VENV")
    if not venv:
        sys.exit("set PEER_VENV to the mace-torch virtual environment (see ../shared/peers/README.md)")
    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")
    out = subprocess.run(
        [f"{venv}/bin/python", str(PEER_SCRIPT), size, *map(str, reps)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    return {
        int(m.group(1)): float(m.group(2)) for m in re.finditer(r"atoms=(\d+) edges=\d+ ms=([\d.]+)", out)
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", default="medium", choices=list(HIDDEN_L))
    p.add_argument("--reps", type=int, nargs="+", default=[2, 3])
    p.add_argument("--calls", type=int, default=7)
    p.add_argument("--modes", nargs="+", default=["eager"], choices=["eager", "compiled"])
    p.add_argument(
        "--backbones",
        nargs="+",
        default=["mace"],
        choices=["mace", "facet", "tdn"],
        help="ours to time (MACE is the like-for-like comparison; Facet and TDN for reference)",
    )
    args = p.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    peer = time_peer(args.size, args.reps)
    for name in args.backbones:
        for mode in args.modes:
            for n in args.reps:
                atoms, edges, ours = time_ours(
                    args.size, n, args.calls, compiled=mode == "compiled", name=name
                )
                theirs = peer.get(atoms, float("nan"))
                print(
                    f"{args.size} atoms={atoms} edges={edges}: mlip {name} ({mode}) {ours:.1f} ms, "
                    f"mace-torch {theirs:.1f} ms, ratio = {ours / theirs:.3f}"
                )


if __name__ == "__main__":
    main()
