"""mlip's products inside an e3nn NequIP-style interaction layer, against e3nn's own ``TensorProduct``, same run.

    python benchmarks/e3nn_layer.py [--channels 32] [--lmax 3] [--cells 3] [--repeats 5] [--threads 0]

The layer (e3nn modules throughout, only the product swapped)::

    h = Linear(x);  w = FullyConnectedNet(radial(r_ij));  m_i = Σ_j TP(h_j, Y(r̂_ij); w_ij);  out = Linear(m)

on diamond Si (``--cells``³ conventional cells, 8 atoms each, r_max 5 Å, real periodic neighbour list) with node
features ``C x (0e+1o+..+lmax)`` and harmonics up to ``lmax``. Rows:

* ``e3nn``: ``o3.TensorProduct`` with NequIP's uvu instructions, then ``index_add`` over receivers;
* ``mlip drop-in``: :class:`mlip.interop.e3nn_products.ChannelwiseTensorProduct` (same instructions, same
  outputs), called like e3nn's (gathered features in, per-edge output, ``index_add`` outside);
* ``mlip drop-in fused``: the same module with ``senders, receivers``: the gather and the sum run in the kernel;
* ``mlip gaunt_grid``: :class:`mlip.interop.e3nn_products.EdgeProduct` of kind ``gaunt_grid`` (fused; a different
  product with fewer weights, not a parity replacement).

Times (ms, minimum over ``--repeats``): forward, and forward + backward to positions-like inputs with
``create_graph`` (what force training needs) + the second backward. The backend is ``auto`` (native CPU kernels
when they build, cuEquivariance on CUDA), chosen per device.
"""

from __future__ import annotations

import argparse
import time

import torch
from ase.build import bulk
from e3nn import o3
from e3nn.nn import FullyConnectedNet

from mlip.data.graph import atoms_to_graph
from mlip.interop.e3nn_products import ChannelwiseTensorProduct, EdgeProduct
from mlip.keys import CELL, EDGE_INDEX, EDGE_SHIFTS, POSITIONS


def uvu_instructions(irreps_in1, irreps_in2, channels):
    """NequIP's uvu instructions into every irrep up to the inputs' lmax, one output block per instruction."""
    lmax = max(ir.l for _, ir in irreps_in1)
    target = [ir for _, ir in o3.Irreps.spherical_harmonics(lmax)]
    out, ins = [], []
    for i, (_, ir1) in enumerate(irreps_in1):
        for j, (_, ir2) in enumerate(irreps_in2):
            for ir in ir1 * ir2:
                if ir in target:
                    ins.append((i, j, len(out), "uvu", True))
                    out.append((channels, ir))
    irreps_out, perm, _ = o3.Irreps(out).sort()
    return irreps_out, [(i, j, perm[k], m, t) for i, j, k, m, t in ins]


class Interaction(torch.nn.Module):
    """The layer of the module docstring; ``fused`` products take the gather and scatter themselves."""

    def __init__(self, irreps_node, tp, fused: bool) -> None:
        super().__init__()
        self.tp, self.fused = tp, fused
        self.linear_in = o3.Linear(irreps_node, irreps_node)
        self.radial = FullyConnectedNet([8, 64, tp.weight_numel], torch.nn.functional.silu)
        self.linear_out = o3.Linear(tp.irreps_out, irreps_node)

    def forward(self, x, sh, radial, src, dst):
        h, w = self.linear_in(x), self.radial(radial)
        if self.fused:
            m = self.tp(h, sh, w, senders=src, receivers=dst, num_receivers=x.shape[0])
        else:
            m = torch.zeros(x.shape[0], self.tp.irreps_out.dim, dtype=x.dtype).index_add(
                0, dst, self.tp(h[src], sh, w)
            )
        return self.linear_out(m)


def edge_inputs(cells: int, lmax: int):
    """Si graph: node count, ``src, dst``, and a function of positions giving ``(sh, radial basis)``."""
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(cells)
    atoms.rattle(0.05, seed=0)
    graph = atoms_to_graph(atoms, r_max=5.0)
    src, dst = graph[EDGE_INDEX]
    pos = graph[POSITIONS].float()
    vec = pos[src] - pos[dst] + graph[EDGE_SHIFTS].float() @ graph[CELL][0].float()
    irreps_sh = o3.Irreps.spherical_harmonics(lmax)

    def features(vec):
        r = vec.norm(dim=1, keepdim=True)
        sh = o3.spherical_harmonics(irreps_sh, vec, normalize=True, normalization="component")
        n = torch.arange(1, 9, dtype=vec.dtype)
        return sh, torch.sin(n * torch.pi * r / 5.0) / r

    return len(atoms), src, dst, vec, features


def time_layer(layer, x, vec, features, src, dst, repeats):
    best_f = best_fb = float("inf")
    for _ in range(repeats):
        xl, vl = x.detach().clone().requires_grad_(), vec.detach().clone().requires_grad_()
        t0 = time.perf_counter()
        sh, radial = features(vl)
        out = layer(xl, sh, radial, src, dst)
        t1 = time.perf_counter()
        grads = torch.autograd.grad(out.pow(2).sum(), (xl, vl), create_graph=True)
        sum(g.pow(2).sum() for g in grads).backward()
        t2 = time.perf_counter()
        best_f, best_fb = min(best_f, t1 - t0), min(best_fb, t2 - t0)
    return 1e3 * best_f, 1e3 * best_fb, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--lmax", type=int, default=3)
    p.add_argument("--cells", type=int, default=3)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    c = args.channels
    n, src, dst, vec, features = edge_inputs(args.cells, args.lmax)
    irreps_node = o3.Irreps([(c, ir) for _, ir in o3.Irreps.spherical_harmonics(args.lmax)])
    irreps_sh = o3.Irreps.spherical_harmonics(args.lmax)
    irreps_mid, ins = uvu_instructions(irreps_node, irreps_sh, c)
    e3nn_tp = o3.TensorProduct(
        irreps_node, irreps_sh, irreps_mid, ins, shared_weights=False, internal_weights=False
    )
    rows = [
        ("e3nn", e3nn_tp, False),
        ("mlip drop-in", ChannelwiseTensorProduct.from_e3nn(e3nn_tp), False),
        ("mlip drop-in fused", ChannelwiseTensorProduct.from_e3nn(e3nn_tp), True),
        ("mlip gaunt_grid", EdgeProduct(irreps_node, irreps_sh, irreps_node, kind="gaunt_grid"), True),
    ]
    x = torch.randn(n, irreps_node.dim, generator=torch.Generator().manual_seed(0))
    print(
        f"Si {n} atoms, {src.numel()} edges, C={c}, lmax={args.lmax}, float32, {torch.get_num_threads()} threads"
    )
    print(
        f"{'product':22s} {'paths':>5s} {'weights':>7s} {'forward ms':>10s} {'fwd+2 bwd ms':>12s} {'vs e3nn':>7s}"
    )
    reference = None
    base = None
    for name, tp, fused in rows:
        torch.manual_seed(1)
        layer = Interaction(irreps_node, tp, fused)
        if reference is not None and name.startswith("mlip drop-in"):
            layer.load_state_dict(reference.state_dict(), strict=False)
        t_f, t_fb, out = time_layer(layer, x, vec, features, src, dst, args.repeats)
        diff = "-"
        if reference is None:
            reference, ref_out = layer, out
        elif name.startswith("mlip drop-in"):  # same weights as the e3nn layer: same output
            diff = f"{(out - ref_out).abs().max().item() / ref_out.abs().max().item():.1e}"
        base = base or t_fb
        paths = len(getattr(tp, "instructions", [])) or tp.descriptor.num_weights
        print(
            f"{name:20s} {paths:5d} {tp.weight_numel:7d} {t_f:10.1f} {t_fb:12.1f} {base / t_fb:6.2f}x {diff:>12s}"
        )


if __name__ == "__main__":
    main()
