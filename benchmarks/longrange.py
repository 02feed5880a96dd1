"""Chebyshev–Tucker against the direct sum for free structures: times and errors for N = 1k ... 16k.

Random neutral charges at a fixed density (8,000 atoms in a 60 Å cube, 0.037 Å⁻³), float64. For each N:

* ``direct``: the exact potential ``Σ_{j≠i} q_j/r_ij`` at every atom (O(N²), chunked), the reference;
* ``ct``: the same potential as erfc short range + Chebyshev–Tucker ``φ_L`` − self term, at ``--accuracy``;
* ``phi_L err``: relative RMS error of the Chebyshev–Tucker ``φ_L`` against the direct erf sum;
* ``total err``: relative RMS error of the whole ``ct`` potential against ``direct``.

Times are forward plus the backward pass for forces (``E = ½ Σ q φ``), the best of ``--repeat`` runs.

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
    print("| N | box Å | direct s | CT s | speed-up | (n, r, K) | phi_L err | total err |")
    print("|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        box = 60.0 * (n / 8000) ** (1 / 3)
        g = torch.Generator().manual_seed(n)
        x = torch.rand(n, 3, generator=g, dtype=torch.float64) * box
        q = torch.randn(n, generator=g, dtype=torch.float64)
        q -= q.mean()
        t_direct, phi_direct = _timed(coulomb_potential_direct, x, q, args.repeat)
        t_ct, phi_ct = _timed(
            lambda xx, qq: split_free_potential(xx, qq, sigma=args.sigma, accuracy=args.accuracy),
            x,
            q,
            args.repeat,
        )
        with torch.no_grad():
            phi_long, plan = chebyshev_tucker_potential(x, q, args.sigma, accuracy=args.accuracy)
            ref_long = erf_potential_direct(x, q, args.sigma)
        err_long = ((phi_long - ref_long).norm() / ref_long.norm()).item()
        err_total = ((phi_ct - phi_direct).norm() / phi_direct.norm()).item()
        res = f"({plan.degree[0]}, {plan.rank[0]}, {plan.n_gauss})"
        print(
            f"| {n} | {box:.1f} | {t_direct:.2f} | {t_ct:.2f} | {t_direct / t_ct:.1f}x | {res} | {err_long:.1e} "
            f"| {err_total:.1e} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
