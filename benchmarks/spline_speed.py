"""Spline radial function: one GEMM with the banded basis matrix against gathering four coefficient rows per edge.

Usage::

    python benchmarks/spline_speed.py [--edges 4470] [--outputs 352] [--knots 16] [--calls 20]

Times forward, force-like first derivative (``create_graph=True``) and the backward through it, as training
does, for :class:`~mlip.nn.spline.SplineRadial` (GEMM) and for the same spline evaluated as
``einsum("ej,ejo->eo", β, W[idx])`` (gather; its backward scatter-adds into ``W``). The defaults are the edges of
ten 3BPA molecules and the weights of a 32-channel Facet layer. Prints the mean ms per call and the largest
difference between the two.
"""

from __future__ import annotations

import argparse
import time

import torch

from mlip.nn.spline import SplineRadial


def gathered(spline: SplineRadial, r: torch.Tensor) -> torch.Tensor:
    idx, beta = spline.basis(r)
    rows = spline.coefficients[idx]  # [E, 4, num_out]
    return torch.einsum("ej,ejo->eo", beta, rows) * spline.envelope(r).unsqueeze(-1)


def step(fn, r: torch.Tensor) -> None:
    y = fn(r)
    (grad,) = torch.autograd.grad(y.pow(2).sum(), r, create_graph=True)
    grad.sum().backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--edges", type=int, default=4470)
    parser.add_argument("--outputs", type=int, default=352)
    parser.add_argument("--knots", type=int, default=16)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    spline = SplineRadial(r_max=5.0, num_out=args.outputs, num_knots=args.knots)
    r = (0.5 + 4.5 * torch.rand(args.edges)).requires_grad_()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.edges} edges, "
          f"{args.outputs} outputs, K = {args.knots}")  # fmt: skip
    for name, fn in (("gather", lambda x: gathered(spline, x)), ("gemm", spline)):
        for _ in range(3):
            step(fn, r)
        t = time.perf_counter()
        for _ in range(args.calls):
            step(fn, r)
        print(f"{name:>7}: {(time.perf_counter() - t) / args.calls * 1000:.1f} ms")
    with torch.no_grad():
        print(f"max |gemm - gather| = {float((spline(r) - gathered(spline, r)).abs().max()):.1e}")


if __name__ == "__main__":
    main()
