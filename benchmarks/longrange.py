"""Chebyshev–Tucker against the direct sum for free structures: times and errors for N = 1k ... 16k.

Random neutral charges at a fixed density (8,000 atoms in a 60 Å cube, 0.037 Å⁻³), float64. For each N, two
comparisons:

* the smooth part ``φ_L`` alone: the direct erf sum ``Σ_j q_j erf(r_ij/σ)/r_ij`` (O(N²), chunked) against
  Chebyshev–Tucker at ``--accuracy``, with the relative RMS error of the latter;
* the whole potential ``Σ_{j≠i} q_j/r_ij``: the direct 1/r sum against the split (erfc short range within
  ``σ√(ln 1/ε)`` + Chebyshev–Tucker ``φ_L`` − self term), with its relative RMS error.

Times are forward plus the backward pass for forces (``E = ½ Σ q φ``), the best of ``--repeat`` runs. A first
table gives the accuracy targets of the issue: 1,000 charges in a 30 Å cube at σ = 2 Å (accuracy 1e-5) and
σ = 4 Å (accuracy 1e-8), with the degrees and ranks the accuracy setting chooses.

    python benchmarks/longrange.py [--sigma 4] [--accuracy 1e-5] [--sizes 1000 2000 4000 8000 16000]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from mlip.longrange.api import split_free_potential
from mlip.longrange.chebyshev_tucker import chebyshev_tucker_potential
from mlip.longrange.direct import coulomb_potential_direct, erf_potential_direct


def _timed(fn, x, q, repeat):
    best, out = math.inf, None
    for _ in range(repeat):
        xx = x.clone().requires_grad_(True)
        t = time.perf_counter()
        phi = fn(xx, q)
        energy = 0.5 * (q * phi).sum()
        energy.backward()
        best = min(best, time.perf_counter() - t)
        out = phi.detach()
    return best, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sigma", type=float, default=4.0)
    p.add_argument("--accuracy", type=float, default=1e-5)
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000, 8000, 16000])
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, sigma {args.sigma} Å, accuracy {args.accuracy:g}"
    )
    print("| σ Å | accuracy | (n, r, K) | φ_L relative RMS error |")
    print("|---|---|---|---|")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1000, 3, generator=g, dtype=torch.float64) * 30.0
    q = torch.randn(1000, generator=g, dtype=torch.float64)
    q -= q.mean()
    for s, a in ((2.0, 1e-5), (4.0, 1e-8)):
        with torch.no_grad():
            phi, plan = chebyshev_tucker_potential(x, q, s, accuracy=a)
            ref = erf_potential_direct(x, q, s)
        err = ((phi - ref).norm() / ref.norm()).item()
        print(f"| {s} | {a:g} | ({plan.degree[0]}, {plan.rank[0]}, {plan.n_gauss}) | {err:.1e} |")
    print()
    print(
        "| N | box Å | (n, r, K) | erf direct s | CT s | speed-up | φ_L err | 1/r direct s | split s | speed-up | err |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    sigma, acc = args.sigma, args.accuracy
    for n in args.sizes:
        box = 60.0 * (n / 8000) ** (1 / 3)
        g = torch.Generator().manual_seed(n)
        x = torch.rand(n, 3, generator=g, dtype=torch.float64) * box
        q = torch.randn(n, generator=g, dtype=torch.float64)
        q -= q.mean()
        t_erf, ref_long = _timed(lambda xx, qq: erf_potential_direct(xx, qq, sigma), x, q, args.repeat)
        t_ct, phi_long = _timed(
            lambda xx, qq: chebyshev_tucker_potential(xx, qq, sigma, accuracy=acc)[0], x, q, args.repeat
        )
        t_direct, phi_direct = _timed(coulomb_potential_direct, x, q, args.repeat)
        t_split, phi_split = _timed(
            lambda xx, qq: split_free_potential(xx, qq, sigma=sigma, accuracy=acc), x, q, args.repeat
        )
        with torch.no_grad():
            _, plan = chebyshev_tucker_potential(x, q, sigma, accuracy=acc)
        err_long = ((phi_long - ref_long).norm() / ref_long.norm()).item()
        err_total = ((phi_split - phi_direct).norm() / phi_direct.norm()).item()
        res = f"({plan.degree[0]}, {plan.rank[0]}, {plan.n_gauss})"
        print(
            f"| {n} | {box:.1f} | {res} | {t_erf:.2f} | {t_ct:.2f} | {t_erf / t_ct:.1f}x | {err_long:.1e} "
            f"| {t_direct:.2f} | {t_split:.2f} | {t_direct / t_split:.1f}x | {err_total:.1e} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
