"""Backend.NATIVE against Backend.TORCH on the CPU: the two kernels of a MACE training step, one thread.

    python benchmarks/native_kernels.py [--nodes 159] [--edges 2184] [--channels 32] [--repeats 7]

Times, for each backend, the forward pass, the first backward with ``create_graph`` (forces) and the second
backward (the force loss's gradient), the minimum over ``--repeats`` runs, for

* the channel-wise product of MACE's second layer: ``0e+1o`` node features x harmonics up to l = 3 ->
  ``0e+1o+2e+3o``, gathered from senders and summed on receivers;
* the symmetric contraction ``Sym^{1..3}(0e+1o+2e+3o) -> 0e+1o`` of one element.

The default sizes are one batch of ``configs/mo_mace.yaml`` (3 Mo frames of up to 54 atoms at r_max 4 A).
"""

from __future__ import annotations

import argparse
import time

import torch

from mlip.kernels import Irreps
from mlip.kernels.channelwise import ChannelwiseTPDescriptor, channelwise_tp
from mlip.kernels.symmetric_contraction import SymmetricContraction, SymmetricContractionDescriptor


def _time(fn_forward, inputs, repeats):
    best = [float("inf")] * 3
    for _ in range(repeats):
        leaves = [t.detach().clone().requires_grad_() for t in inputs]
        t0 = time.perf_counter()
        out = fn_forward(*leaves)
        t1 = time.perf_counter()
        grads = torch.autograd.grad(out.pow(2).sum(), leaves[:2], create_graph=True)
        t2 = time.perf_counter()
        sum(g.pow(2).sum() for g in grads).backward()
        t3 = time.perf_counter()
        best = [min(b, x) for b, x in zip(best, (t1 - t0, t2 - t1, t3 - t2))]
    return [1e3 * b for b in best]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=159)
    p.add_argument("--edges", type=int, default=2184)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    n, e, c = args.nodes, args.edges, args.channels

    tp_desc = ChannelwiseTPDescriptor(Irreps("0e+1o"), Irreps.spherical_harmonics(3), Irreps("0e+1o+2e+3o"))
    x = torch.randn(n, 4, c, generator=g)
    y = torch.randn(e, 16, generator=g)
    w = torch.randn(e, tp_desc.num_paths, c, generator=g)
    snd, rcv = torch.randint(0, n, (e,), generator=g), torch.randint(0, n, (e,), generator=g)
    sc_desc = SymmetricContractionDescriptor(Irreps.spherical_harmonics(3), Irreps("0e+1o"), 3)
    a = torch.randn(n, 16, c, generator=g)
    species = torch.zeros(n, dtype=torch.int64)

    print(
        f"nodes {n}, edges {e}, channels {c}, one thread; ms: forward / backward (create_graph) / 2nd backward"
    )
    for backend in ("torch", "native"):
        tp = channelwise_tp(tp_desc, backend)
        t_tp = _time(lambda x, y, w, tp=tp: tp(x, y, w, snd, rcv, n), (x, y, w), args.repeats)
        torch.manual_seed(0)
        sc = SymmetricContraction(sc_desc, channels=c, num_elements=1, backend=backend)
        t_sc = _time_sc(sc, a, species, args.repeats)
        print(
            f"channel-wise product  {backend:6s} {t_tp[0]:7.1f} {t_tp[1]:7.1f} {t_tp[2]:7.1f}  total {sum(t_tp):7.1f}"
        )
        print(
            f"symmetric contraction {backend:6s} {t_sc[0]:7.1f} {t_sc[1]:7.1f} {t_sc[2]:7.1f}  total {sum(t_sc):7.1f}"
        )


def _time_sc(sc, a, species, repeats):
    best = [float("inf")] * 3
    for _ in range(repeats):
        leaf = a.detach().clone().requires_grad_()
        t0 = time.perf_counter()
        out = sc(leaf, species)
        t1 = time.perf_counter()
        (ga,) = torch.autograd.grad(out.pow(2).sum(), leaf, create_graph=True)
        t2 = time.perf_counter()
        ga.pow(2).sum().backward()
        t3 = time.perf_counter()
        best = [min(b, x) for b, x in zip(best, (t1 - t0, t2 - t1, t3 - t2))]
    return [1e3 * b for b in best]


if __name__ == "__main__":
    main()
