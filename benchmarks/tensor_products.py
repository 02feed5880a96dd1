"""Time the channel-wise (``uuu``) products of two spherical functions: CG vs Gaunt (grid, Fourier), vector grid.

Pattern "many/many" (MIMO, as in The Price of Freedom): inputs with every degree ``<= L``, output every degree
``<= 2L``. Kinds:

* ``cg_paths``: the CG product over all even paths with Gaunt weights, path by path (our reference);
* ``cg_dense``: the same coupling as one dense ``[d1, d2, d_out]`` tensor in one einsum;
* ``gaunt_grid``: :class:`mlip.kernels.GauntGridTP`; ``gaunt_fft``: :class:`mlip.kernels.GauntFFTTP`;
* ``vector_grid``: :class:`mlip.kernels.VectorGridTP` (odd paths).

Usage::

    python benchmarks/tensor_products.py --lmax 1 2 3 4 6 8 --batch 10000 --channels 1 32 --out tp.csv

Prints and writes (CSV) ms per call (median of ``--repeats`` after a warm-up) for forward and forward+backward,
and draws a log-log plot next to the CSV.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

import torch

from mlip.kernels import (
    GauntFFTTP,
    GauntGridTP,
    VectorGridTP,
    clebsch_gordan,
    gaunt_alpha,
    gaunt_product_reference,
)


def dense_gaunt(l1: int, l2: int, lo: int) -> torch.Tensor:
    c = torch.zeros((l1 + 1) ** 2, (l2 + 1) ** 2, (lo + 1) ** 2, dtype=torch.float64)
    for a in range(l1 + 1):
        for b in range(l2 + 1):
            for o in range(abs(a - b), min(a + b, lo) + 1):
                al = gaunt_alpha(a, b, o)
                if al:
                    c[a * a : (a + 1) ** 2, b * b : (b + 1) ** 2, o * o : (o + 1) ** 2] = al * clebsch_gordan(
                        a, b, o
                    )
    return c


def kinds(lmax: int, dtype: torch.dtype) -> dict:
    lo = 2 * lmax
    dense = dense_gaunt(lmax, lmax, lo).to(dtype)
    return {
        "cg_paths": lambda x, y: gaunt_product_reference(x, y, lmax, lmax, lo),
        "cg_dense": lambda x, y: torch.einsum("ijk,bic,bjc->bkc", dense, x, y),
        "gaunt_grid": GauntGridTP(lmax, lmax, lo),
        "gaunt_fft": GauntFFTTP(lmax, lmax, lo),
        "vector_grid": VectorGridTP(lmax, lmax, lo),
    }


def timed(fn, x, y, backward: bool, repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        out = fn(x, y)
        if backward:
            out.square().sum().backward()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times[1:])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lmax", type=int, nargs="+", default=[1, 2, 3, 4, 6, 8])
    p.add_argument("--batch", type=int, default=10000)
    p.add_argument("--channels", type=int, nargs="+", default=[1, 32])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--kinds", nargs="+", default=None)
    p.add_argument("--out", default="tensor_products.csv")
    args = p.parse_args()
    rows = []
    for channels in args.channels:
        for lmax in args.lmax:
            for name, fn in kinds(lmax, torch.float32).items():
                if args.kinds and name not in args.kinds:
                    continue
                x = torch.randn(args.batch, (lmax + 1) ** 2, channels, requires_grad=True)
                y = torch.randn(args.batch, (lmax + 1) ** 2, channels, requires_grad=True)
                fwd = timed(fn, x, y, False, args.repeats)
                both = timed(fn, x, y, True, args.repeats)
                rows.append(
                    {
                        "pattern": "mimo",
                        "kind": name,
                        "lmax": lmax,
                        "channels": channels,
                        "batch": args.batch,
                        "forward_ms": fwd,
                        "forward_backward_ms": both,
                    }
                )
                print(
                    f"C={channels:3d} L={lmax} {name:12s} fwd {fwd:9.2f} ms  fwd+bwd {both:9.2f} ms",
                    flush=True,
                )
    out = Path(args.out)
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, out.with_suffix(".png"))


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    channel_sets = sorted({r["channels"] for r in rows})
    fig, axes = plt.subplots(1, len(channel_sets), figsize=(6 * len(channel_sets), 4.5), squeeze=False)
    for ax, c in zip(axes[0], channel_sets):
        for kind in sorted({r["kind"] for r in rows}):
            pts = sorted(
                (r["lmax"], r["forward_backward_ms"])
                for r in rows
                if r["kind"] == kind and r["channels"] == c
            )
            ax.loglog(*zip(*pts), "o-", label=kind)
        ax.set_xlabel("lmax")
        ax.set_ylabel("forward+backward, ms")
        ax.set_title(f"many/many, {c} channel(s)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(str(path), dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
