"""Time the channel-wise (``uuu``) product of two spherical functions for every kind and backend.

Patterns, as in "The Price of Freedom" (Xie et al., ICML 2025), for input degree ``L`` (x and y alike):

* ``siso`` single input, single output: x and y of degree ``L`` only, output of degree ``2L`` only
  (``2L - 1`` for ``vector_grid``, whose paths are odd);
* ``simo`` single input, many outputs: x and y of degree ``L`` only, output every degree ``<= 2L``;
* ``mimo`` many inputs, many outputs: x and y with every degree ``<= L``, output every degree ``<= 2L``.

Kinds (``kind/backend``; all compute the even Gaunt-weighted paths except ``vector_grid``, which computes the
odd ones, and ``cp``, which is timed with random rank-``7L^2`` factors, as its cost does not depend on their
values):

* ``cg/reference``: path-by-path CG sum (:func:`mlip.kernels.gaunt_product_reference`'s loop), with the
  Gaunt-weighted blocks ``α C = G`` taken from :func:`mlip.kernels.gaunt_coefficients` (exact quadrature; the
  null-space CG construction is too slow beyond ``l ≈ 10``);
* ``cg/torch``: the same coupling as one dense ``[d1, d2, d_out]`` tensor, two batched matrix products (in
  batch chunks of about 1 GB of intermediates);
* ``cg/cuequivariance``: the dense coupling as a cuEquivariance segmented tensor product (its CUDA kernels on a
  GPU, its naive PyTorch method on a CPU);
* ``gaunt_grid/torch``, ``gaunt_fft/torch``, ``vector_grid/torch``: :mod:`mlip.kernels.gaunt_grid`,
  :mod:`mlip.kernels.gaunt_fft`, :mod:`mlip.kernels.vector_grid`, restricted to the pattern's degrees;
* ``cp/torch``: :class:`mlip.kernels.CPTensorProduct`'s three factor products.

Usage::

    python benchmarks/tensor_products.py --lmax 1 2 3 4 5 6 7 8 --batch 10000 --channels 1 32 --out tp.csv

Prints and writes (CSV) the median ms per call (after one warm-up) of the forward and the forward+backward, a
log-log plot next to the CSV, and the crossover ``L`` of every kind against ``cg/reference`` and against the
fastest CG backend. A cell is skipped (written as empty) once the same kind took over ``--max-ms`` at a smaller
``L``, or when its working memory would exceed ``--max-gb``.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

import torch

from mlip.kernels import gaunt_coefficients
from mlip.kernels.cp import default_rank
from mlip.kernels.gaunt import SphereGrid, orthonormal_sh
from mlip.kernels.gaunt_fft import GauntFFTTP, samples, spectrum_to_sh
from mlip.kernels.vector_grid import tangent_gradients

KINDS = [
    "cg/reference",
    "cg/torch",
    "cg/cuequivariance",
    "gaunt_grid/torch",
    "gaunt_fft/torch",
    "vector_grid/torch",
    "cp/torch",
]


def degrees(pattern: str, lmax: int, odd: bool) -> tuple[list[int], list[int]]:
    """Input degrees (x and y) and output degrees of a pattern."""
    inputs = list(range(lmax + 1)) if pattern == "mimo" else [lmax]
    if pattern == "siso":
        return inputs, [2 * lmax - 1 if odd else 2 * lmax]
    return inputs, list(range(2 * lmax + 1))


def rows_of(ls: list[int]) -> torch.Tensor:
    return torch.cat([torch.arange(l * l, (l + 1) ** 2) for l in ls])


def dense_coupling(ls_in: list[int], ls_out: list[int]) -> torch.Tensor:
    """Gaunt-weighted CG coupling ``[d_in, d_in, d_out]`` over the pattern's even paths."""
    rin, rout = rows_of(ls_in), rows_of(ls_out)
    full = torch.zeros(int(rin.max()) + 1, int(rin.max()) + 1, int(rout.max()) + 1, dtype=torch.float64)
    for a in ls_in:
        for b in ls_in:
            for o in ls_out:
                if abs(a - b) <= o <= a + b and (a + b + o) % 2 == 0:
                    block = gaunt_coefficients(a, b, o)
                    full[a * a : (a + 1) ** 2, b * b : (b + 1) ** 2, o * o : (o + 1) ** 2] = block
    return full[rin][:, rin][:, :, rout].contiguous()


def make(kind: str, pattern: str, lmax: int, dtype, device):
    """``fn(x, y)`` for ``x, y [B, d_in, C]`` of the pattern's input degrees."""
    ls_in, ls_out = degrees(pattern, lmax, odd=kind.startswith("vector"))
    rin, rout = rows_of(ls_in), rows_of(ls_out)
    if kind == "cg/reference":
        blocks = []
        for a in ls_in:
            for b in ls_in:
                for o in ls_out:
                    if abs(a - b) <= o <= a + b and (a + b + o) % 2 == 0:
                        blocks.append((a, b, o, gaunt_coefficients(a, b, o).to(dtype).to(device)))
        offs = {}
        for i, l in enumerate(ls_in):
            offs[l] = sum(2 * k + 1 for k in ls_in[:i])
        offo = {l: sum(2 * k + 1 for k in ls_out[:i]) for i, l in enumerate(ls_out)}
        d_out = len(rout)

        def ref(x, y):
            out = x.new_zeros(x.shape[0], d_out, x.shape[2])
            for a, b, o, c in blocks:
                xa = x[:, offs[a] : offs[a] + 2 * a + 1]
                yb = y[:, offs[b] : offs[b] + 2 * b + 1]
                out[:, offo[o] : offo[o] + 2 * o + 1] += torch.einsum("ijk,bic,bjc->bkc", c, xa, yb)
            return out

        return ref
    if kind == "cg/torch":
        dense = dense_coupling(ls_in, ls_out).to(dtype).to(device)  # [i, j, k]
        d1, d2, do = dense.shape
        mat = dense.permute(0, 2, 1).reshape(d1 * do, d2)  # [(i k), j]

        def cg_dense(x, y):
            b, _, c = x.shape
            step = max(1, int(1e9 / (4 * c * d1 * do * 2)))  # batch chunks of about 1 GB of intermediates
            outs = []
            for s in range(0, b, step):
                xs, ys = x[s : s + step], y[s : s + step]
                t = torch.matmul(mat, ys).view(xs.shape[0], d1, do, c)  # [B, i, k, C]
                outs.append((t * xs.unsqueeze(2)).sum(1))
            return torch.cat(outs) if len(outs) > 1 else outs[0]

        return cg_dense
    if kind == "cg/cuequivariance":
        import cuequivariance as cue
        import cuequivariance_torch as cuet

        def build(c):
            """One segment per degree and one path per even ``(l1, l2, l3)``, like e3nn-style products."""
            stp = cue.SegmentedTensorProduct.from_subscripts("iu,ju,ku+ijk")
            for operand, ls in ((0, ls_in), (1, ls_in), (2, ls_out)):
                for l in ls:
                    stp.add_segment(operand, (2 * l + 1, c))
            for ia, a in enumerate(ls_in):
                for ib, b in enumerate(ls_in):
                    for io, o in enumerate(ls_out):
                        if abs(a - b) <= o <= a + b and (a + b + o) % 2 == 0:
                            stp.add_path(ia, ib, io, c=gaunt_coefficients(a, b, o).numpy())
            poly = cue.SegmentedPolynomial.eval_last_operand(stp)
            method = "uniform_1d" if device.type == "cuda" else "naive"
            return cuet.SegmentedPolynomial(poly, method=method, math_dtype=dtype).to(device)

        cache = {}

        def cueq(x, y):
            c = x.shape[2]
            if c not in cache:
                cache[c] = build(c)
            [out] = cache[c]([x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)])
            return out.view(x.shape[0], -1, c)

        return cueq
    if kind == "gaunt_fft/torch":
        tp = GauntFFTTP(lmax, lmax, max(ls_out)).to(device)
        sh2f = tp.sh2f1[rin].to(dtype).contiguous()
        f2sh = tp.f2sh[:, rout].to(dtype).contiguous()

        def fft(x, y):
            fx = samples(torch.matmul(x.transpose(1, 2), sh2f), tp.size)
            fy = samples(torch.matmul(y.transpose(1, 2), sh2f), tp.size)
            return spectrum_to_sh(fx * fy, f2sh)

        return fft
    if kind in ("gaunt_grid/torch", "vector_grid/torch"):
        vector = kind.startswith("vector")
        grid = SphereGrid.exact_for(2 * lmax + max(ls_out) + (2 if vector else 0))
        points, weights = grid.points_and_weights()
        sh = orthonormal_sh(max(lmax, max(ls_out)), points)
        project = (weights[:, None] * sh[:, rout]).to(dtype).to(device)  # [G, d_out]
        if not vector:
            to_grid = sh[:, rin].T.contiguous().to(dtype).to(device)  # [d_in, G]

            def grid_tp(x, y):
                fx = torch.matmul(to_grid.T, x)
                fy = torch.matmul(to_grid.T, y)
                return torch.matmul(project.T, fx * fy)

            return grid_tp
        g = tangent_gradients(lmax, points)[:, rin]  # [G, d_in, 2]
        gt = g[:, :, 0].T.contiguous().to(dtype).to(device)
        gp = g[:, :, 1].T.contiguous().to(dtype).to(device)

        def vector_tp(x, y):
            pseudo = torch.matmul(gt.T, x) * torch.matmul(gp.T, y) - torch.matmul(gp.T, x) * torch.matmul(
                gt.T, y
            )
            return torch.matmul(project.T, pseudo)

        return vector_tp
    if kind == "cp/torch":
        rank = default_rank(max(lmax, 1))
        gen = torch.Generator().manual_seed(0)
        a, b = (torch.randn(len(rin), rank, generator=gen).to(dtype).to(device) for _ in range(2))
        c = torch.randn(len(rout), rank, generator=gen).to(dtype).to(device)

        def cp(x, y):
            return torch.matmul(c, torch.matmul(a.T, x) * torch.matmul(b.T, y))

        return cp
    raise ValueError(kind)


def working_gb(kind: str, pattern: str, lmax: int, batch: int, channels: int) -> float:
    """Rough peak memory (GB, float32, forward+backward) of a cell, to skip cells that cannot fit."""
    ls_in, ls_out = degrees(pattern, lmax, False)
    d_in, d_out = len(rows_of(ls_in)), len(rows_of(ls_out))
    per_sample = {
        "cg/reference": 4 * d_out,
        "cg/torch": min(2 * d_in * d_out, 4 * d_out + int(1e9 / (4 * batch * channels))),
        "cg/cuequivariance": 4 * d_out,
        "gaunt_grid/torch": 6
        * SphereGrid.exact_for(2 * lmax + max(ls_out)).n_beta
        * (2 * lmax + max(ls_out) + 1),
        "gaunt_fft/torch": 6 * (4 * lmax + 1) ** 2,
        "vector_grid/torch": 10
        * SphereGrid.exact_for(2 * lmax + max(ls_out) + 2).n_beta
        * (2 * lmax + max(ls_out) + 3),
        "cp/torch": 6 * default_rank(max(lmax, 1)),
    }[kind]
    return 4 * batch * channels * per_sample / 1e9


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, x, y, backward: bool, repeats: int, device) -> float:
    times = []
    for _ in range(repeats + 1):
        synchronize(device)
        t = time.perf_counter()
        out = fn(x, y)
        if backward:
            out.square().sum().backward()
        synchronize(device)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times[1:])


def crossovers(rows: list[dict]) -> list[str]:
    """Smallest ``L`` from which a kind stays faster (fwd+bwd) than ``cg/reference`` and than the fastest CG."""
    lines = []
    keys = sorted({(r["device"], r["pattern"], r["channels"]) for r in rows})
    for device, pattern, channels in keys:
        sel = [r for r in rows if (r["device"], r["pattern"], r["channels"]) == (device, pattern, channels)]
        t = {(r["kind"], r["lmax"]): r["forward_backward_ms"] for r in sel if r["forward_backward_ms"] != ""}
        ls = sorted({r["lmax"] for r in sel})
        for kind in [k for k in KINDS if not k.startswith("cg/")]:
            for label, base in (
                ("cg/reference", ["cg/reference"]),
                ("best cg", [k for k in KINDS if k.startswith("cg/")]),
            ):
                wins = []
                for l in ls:
                    ref = [t[(b, l)] for b in base if (b, l) in t]
                    if (kind, l) in t and ref:
                        wins.append((l, t[(kind, l)] < min(ref)))
                cross = next((l for i, (l, _) in enumerate(wins) if all(w for _, w in wins[i:])), None)
                lines.append(f"{device} {pattern} C={channels} {kind} vs {label}: crossover L = {cross}")
    return lines


def write_csv(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lmax", type=int, nargs="+", default=list(range(1, 9)))
    p.add_argument("--batch", type=int, default=10000)
    p.add_argument("--channels", type=int, nargs="+", default=[1, 32])
    p.add_argument("--patterns", nargs="+", default=["siso", "simo", "mimo"])
    p.add_argument("--kinds", nargs="+", default=KINDS)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-ms", type=float, default=20000.0, help="skip larger L once a kind took longer")
    p.add_argument("--max-gb", type=float, default=8.0)
    p.add_argument("--out", default="tensor_products.csv")
    args = p.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}"
    print(f"torch {torch.__version__}, device {name}, batch {args.batch}", flush=True)
    rows = []
    out = Path(args.out)
    for pattern in args.patterns:
        for channels in args.channels:
            too_slow: set[str] = set()
            for lmax in args.lmax:
                for kind in args.kinds:
                    row = dict(device=name, pattern=pattern, kind=kind, lmax=lmax, channels=channels,
                               batch=args.batch, forward_ms="", forward_backward_ms="")  # fmt: skip
                    rows.append(row)
                    if (
                        kind in too_slow
                        or working_gb(kind, pattern, lmax, args.batch, channels) > args.max_gb
                    ):
                        continue
                    fn = make(kind, pattern, lmax, torch.float32, device)
                    ls_in, _ = degrees(pattern, lmax, False)
                    d_in = len(rows_of(ls_in))
                    x = torch.randn(args.batch, d_in, channels, device=device, requires_grad=True)
                    y = torch.randn(args.batch, d_in, channels, device=device, requires_grad=True)
                    row["forward_ms"] = round(timed(fn, x, y, False, args.repeats, device), 3)
                    row["forward_backward_ms"] = round(timed(fn, x, y, True, args.repeats, device), 3)
                    write_csv(rows, out)  # after every cell, so an interrupted run keeps what it measured
                    if row["forward_backward_ms"] > args.max_ms:
                        too_slow.add(kind)
                    print(f"{pattern} C={channels:3d} L={lmax} {kind:20s} fwd {row['forward_ms']:10.3f} ms  "
                          f"fwd+bwd {row['forward_backward_ms']:10.3f} ms", flush=True)  # fmt: skip
    write_csv(rows, out)
    for line in crossovers(rows):
        print(line)
    plot(rows, out.with_suffix(".png"))


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted(
        {(r["pattern"], r["channels"]) for r in rows},
        key=lambda k: (["siso", "simo", "mimo"].index(k[0]), k[1]),
    )
    ncol = len({c for _, c in panels})
    nrow = (len(panels) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(6 * ncol, 4.3 * nrow), squeeze=False)
    for ax, (pattern, c) in zip(axes.flat, panels):
        for kind in KINDS:
            pts = [(r["lmax"], r["forward_backward_ms"]) for r in rows
                   if (r["kind"], r["pattern"], r["channels"]) == (kind, pattern, c) and r["forward_backward_ms"] != ""]  # fmt: skip
            if pts:
                ax.loglog(*zip(*sorted(pts)), "o-", label=kind)
        ax.set_xlabel("L (input degree)")
        ax.set_ylabel("forward+backward, ms")
        ax.set_title(f"{pattern}, {c} channel(s), {rows[0]['device']}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(str(path), dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
