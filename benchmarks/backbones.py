"""One table comparing the backbones (MACE, Facet, TDN), every row measured in the same run on this machine.

Usage::

    python benchmarks/backbones.py [--channels 32] [--max-L 1] [--calls 7]
        [--runs-3bpa mace=DIR facet=DIR tdn=DIR] [--runs-mo mace=DIR facet=DIR tdn=DIR]

Each model takes the ``model`` section of ``configs/3bpa_<name>.yaml``. ``--channels`` and ``--max-L`` override
the width for all three, so they can be compared at the same width. Columns:

* parameters;
* energy+forces ms (median of ``--calls`` after a warm-up) on rattled diamond Si, 64 and 216 atoms, float32;
* training seconds per epoch on 3BPA: the 450 training frames of ``configs/3bpa_mace.yaml`` in batches of 10, with
  forward, force loss, backward and an Adam step (no validation, no EMA);
* validation force RMSE (meV/Å) read from the ``metrics.json`` of finished ``train.py`` runs given with
  ``--runs-3bpa`` / ``--runs-mo`` (20-minute budgets; Mo: ``zuo2020_elemental/Mo_training.extxyz``, last 20 frames
  validate).

``--accuracy DATASET:NAME=DIR ...`` prints instead (with ``--accuracy-only``, only) the accuracy table of finished
runs: validation energy (meV/atom), force (meV/Å) and stress (meV/Å³) RMSE per dataset and model, where ``DIR`` is
a ``train.py`` run directory (``metrics.json``) or a ``benchmarks/peer_mace.py`` output (``result.json``), e.g.
``--accuracy Mo:MACE=runs/mo_mace Mo:mace-torch=runs/peer_mo``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import yaml
from ase.build import bulk
from ase.io import read

from mlip import keys as K
from mlip.data import atoms_to_graph, collate
from mlip.models import build_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def model_section(name: str, overrides: dict) -> dict:
    cfg = yaml.safe_load((ROOT / "configs" / f"3bpa_{name}.yaml").read_text())["model"]
    return {**cfg, **overrides}


def build(name: str, overrides: dict, atomic_numbers: list[int]):
    cfg = model_section(name, overrides)
    cfg.update(
        atomic_numbers=atomic_numbers, atomic_energies=[0.0] * len(atomic_numbers), avg_num_neighbors=20.0
    )
    torch.manual_seed(0)
    return build_model(cfg)


def si_ms(model, repeat: int, calls: int) -> float:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat((repeat,) * 3)
    atoms.rattle(0.05, seed=0)
    batch = collate([atoms_to_graph(atoms, model.r_max)])
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        model(batch, compute_forces=True)[K.FORCES].sum().item()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times[1:])


def epoch_seconds(model, frames) -> float:
    graphs = [atoms_to_graph(a, model.r_max) for a in frames]
    forces = [torch.tensor(a.get_forces(), dtype=torch.float64) for a in frames]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    t = time.perf_counter()
    for s in range(0, len(graphs), 10):
        batch = collate(graphs[s : s + 10])
        out = model(batch, compute_forces=True, training=True)
        loss = (out[K.FORCES] - torch.cat(forces[s : s + 10])).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t


def rmse(runs: dict[str, str], name: str) -> str:
    path = Path(runs[name]) / "metrics.json" if name in runs else None
    if path is None or not path.is_file():
        return "not run"
    return f"{json.loads(path.read_text())['valid']['forces_rmse_mev_per_A']:.1f}"


def accuracy_row(path: str) -> tuple[str, str, str]:
    """Validation energy, force and stress RMSE of a finished run, formatted (``-`` where absent)."""
    d = Path(path)
    if (d / "metrics.json").is_file():
        m = json.loads((d / "metrics.json").read_text())["valid"]
    elif (d / "result.json").is_file():
        m = json.loads((d / "result.json").read_text())
    else:
        return ("not run",) * 3
    keys = ("energy_rmse_mev_per_atom", "forces_rmse_mev_per_A", "stress_rmse_mev_per_A3")
    return tuple("-" if m.get(k) is None else f"{m[k]:.1f}" for k in keys)


def accuracy_table(items: list[str]) -> None:
    print("| dataset | model | val E RMSE (meV/atom) | val F RMSE (meV/Å) | val stress RMSE (meV/Å³) |")
    print("|---|---|---|---|---|")
    for item in items:
        key, path = item.split("=", 1)
        dataset, name = key.split(":", 1)
        e, f, s = accuracy_row(path)
        print(f"| {dataset} | {name} | {e} | {f} | {s} |")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=["mace", "facet", "tdn"])
    p.add_argument("--channels", type=int, default=None)
    p.add_argument("--max-L", type=int, default=None)
    p.add_argument("--calls", type=int, default=7)
    p.add_argument("--runs-3bpa", nargs="*", default=[])
    p.add_argument("--runs-mo", nargs="*", default=[])
    p.add_argument("--accuracy", nargs="*", default=[])
    p.add_argument("--accuracy-only", action="store_true")
    args = p.parse_args()
    if args.accuracy:
        accuracy_table(args.accuracy)
        if args.accuracy_only:
            return
    overrides = {}
    if args.channels is not None:
        overrides["channels"] = args.channels
    if args.max_L is not None:
        overrides["max_L"] = args.max_L
    runs_3bpa = dict(r.split("=", 1) for r in args.runs_3bpa)
    runs_mo = dict(r.split("=", 1) for r in args.runs_mo)
    frames = read(DATA / "3bpa" / "train_300K.xyz", ":450")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, overrides {overrides or 'none'}")
    print(
        "| model | parameters | Si-64 E+F ms | Si-216 E+F ms | 3BPA s/epoch | 3BPA val F RMSE | Mo val F RMSE |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in args.models:
        si = build(name, overrides, [14]).eval()
        params = sum(p.numel() for p in si.parameters())
        ms64, ms216 = si_ms(si, 2, args.calls), si_ms(si, 3, args.calls)
        mol = build(name, overrides, [1, 6, 7, 8]).train()
        sec = epoch_seconds(mol, frames)
        print(f"| {name} | {params:,} | {ms64:.1f} | {ms216:.1f} | {sec:.1f} | {rmse(runs_3bpa, name)} | "
              f"{rmse(runs_mo, name)} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
