"""MACE with every ``tensor_product`` kind and the Gaunt product basis: speed on a 216-atom Si cell, all variants
in one run, and (optionally) the validation errors of their 3BPA training runs.

Usage::

    python benchmarks/mace_variants.py [--device cuda] [--calls 7] [--runs DIR_OF_RUNS]

Each variant is the 3BPA architecture of ``configs/3bpa_mace.yaml`` (32 channels, max_L 1, max_ell 3,
correlation 3, 2 interactions, r_max 5 Å, float32) on rattled diamond Si (3x3x3 conventional cells, 216 atoms).
Prints the median ms of an energy+forces call (first call discarded), the rotation error of the energy and
forces in float64 (``|F(Qx) - Q F(x)| / |F|``, which measures the CP fit for ``cp``), and, with ``--runs``,
the ``valid`` block of ``DIR/<variant>/metrics.json`` for each variant.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from ase.build import bulk

from mlip import keys as K
from mlip.data import atoms_to_graph, collate
from mlip.models import build_model

VARIANTS = {
    "cg": {},
    "gaunt_grid": {"tensor_product": "gaunt_grid"},
    "gaunt_fft": {"tensor_product": "gaunt_fft"},
    "vector_grid": {"tensor_product": "vector_grid"},
    "cp": {"tensor_product": "cp"},
    "gaunt_basis": {"product_basis": "gaunt"},
}


def make(variant: str, dtype: str, device: torch.device):
    config = dict(name="mace", atomic_numbers=[14], atomic_energies=[-1.0], r_max=5.0, num_bessel=8, max_ell=3,
                  channels=32, max_L=1, correlation=3, num_interactions=2, radial_mlp=[64, 64, 64],
                  avg_num_neighbors=20.0, dtype=dtype, **VARIANTS[variant])  # fmt: skip
    torch.manual_seed(0)
    return build_model(config).to(device).eval()


def si_cell(rattle_seed: int = 0):
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat((3, 3, 3))
    atoms.rattle(0.05, seed=rattle_seed)
    return atoms


def batch_of(atoms, device):
    return {k: v.to(device) for k, v in collate([atoms_to_graph(atoms, 5.0)]).items()}


def time_variant(variant: str, device: torch.device, calls: int) -> float:
    model = make(variant, "float32", device)
    batch = batch_of(si_cell(), device)
    times = []
    for _ in range(calls):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = model(batch, compute_forces=True)
        out[K.FORCES].sum().item()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times[1:])


def rotation_error(variant: str, device: torch.device) -> float:
    """``max |F(Qx) - Q F(x)| / max |F|`` in float64 on a 64-atom cell with a random rotation."""
    model = make(variant, "float64", device)
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.1, seed=1)
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    q *= np.linalg.det(q)
    moved = atoms.copy()
    moved.positions = atoms.positions @ q.T
    moved.set_cell(atoms.cell.array @ q.T, scale_atoms=False)
    f0 = model(batch_of(atoms, device))[K.FORCES].detach().cpu().numpy()
    f1 = model(batch_of(moved, device))[K.FORCES].detach().cpu().numpy()
    return float(np.abs(f1 - f0 @ q.T).max() / np.abs(f0).max())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--calls", type=int, default=7)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--runs", type=Path, default=None, help="folder holding one training run per variant")
    args = p.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}"
    print(f"torch {torch.__version__}, device {name}; 216-atom Si, energy+forces, float32")
    print(f"{'variant':12s} {'ms/call':>9s} {'rot. err':>9s} {'val F RMSE':>11s} {'val E RMSE':>11s}")
    for variant in args.variants:
        ms = time_variant(variant, device, args.calls)
        err = rotation_error(variant, device)
        f_rmse = e_rmse = float("nan")
        if args.runs is not None and (args.runs / variant / "metrics.json").is_file():
            valid = json.loads((args.runs / variant / "metrics.json").read_text())["valid"]
            f_rmse, e_rmse = valid["forces_rmse_mev_per_A"], valid["energy_rmse_mev_per_atom"]
        print(f"{variant:12s} {ms:9.1f} {err:9.1e} {f_rmse:11.1f} {e_rmse:11.2f}", flush=True)


if __name__ == "__main__":
    main()
