"""CP-factored products: fit error and measured equivariance error against the rank.

Usage::

    python benchmarks/cp_rank.py

For TDN's full coupling tensor (every triangle-valid ``(l1, l2, l3) <= L``, :func:`mlip.kernels.cp.coupling_tensor`)
and for the coupling MACE's second layer uses (``0e+1o`` x ``0e+...+3o`` -> ``0e+...+3o``, even paths), prints, for
several ranks: the relative Frobenius error ``ε = ‖M̂ - M‖ / ‖M‖`` of the seeded ALS fit, the measured equivariance
error ``max ‖f(D x, D y) - D f(x, y)‖ / (‖x‖ ‖y‖)`` over random inputs and rotations, and the bound the fit
implies, ``2 ε ‖M‖`` (as ``M`` is equivariant, the error is ``(M̂ - M)(Dx, Dy) - D (M̂ - M)(x, y)``).
"""

from __future__ import annotations

import torch

from mlip.kernels import Irreps, wigner_d
from mlip.kernels.cp import coupling_tensor, default_rank, fit_cp
from mlip.kernels.edge_products import cp_coupling
from mlip.kernels.product import EdgeProductDescriptor


def equivariance_error(m_hat: torch.Tensor, irreps: tuple[Irreps, Irreps, Irreps], trials: int = 20) -> float:
    g = torch.Generator().manual_seed(0)
    worst = 0.0
    for _ in range(trials):
        q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=g))
        d1, d2, d3 = (wigner_d(i, q) for i in irreps)
        x = torch.randn(m_hat.shape[0], dtype=torch.float64, generator=g)
        y = torch.randn(m_hat.shape[1], dtype=torch.float64, generator=g)
        f = torch.einsum("ijk,i,j->k", m_hat, x, y)
        f_rot = torch.einsum("ijk,i,j->k", m_hat, d1 @ x, d2 @ y)
        worst = max(worst, float((f_rot - d3 @ f).norm() / (x.norm() * y.norm())))
    return worst


def report(name: str, m: torch.Tensor, irreps, ranks: list[int]) -> None:
    for rank in ranks:
        f = fit_cp(m, rank)
        m_hat = torch.einsum("ir,jr,kr->ijk", f.A, f.B, f.C)
        err = equivariance_error(m_hat, irreps)
        bound = 2 * f.relative_error * float(m.norm())
        print(
            f"{name:28s} rank {rank:4d}  fit ε {f.relative_error:9.2e}  equivariance {err:9.2e}  bound {bound:9.2e}"
        )


def main() -> None:
    for lmax in (1, 2, 3):
        # the full tensor mixes parities, so rotations only (proper, det = +1) apply
        sh = Irreps.spherical_harmonics(lmax)
        r = default_rank(lmax)
        report(f"TDN full, L={lmax}", coupling_tensor(lmax), (sh, sh, sh), sorted({r // 2, r, 2 * r, 3 * r}))
    sh3 = Irreps.spherical_harmonics(3)
    desc = EdgeProductDescriptor(irreps_in1=Irreps("0e+1o"), irreps_in2=sh3, irreps_out_filter=sh3, kind="cp")
    report(
        "MACE layer 2 (0e+1o x sh3)",
        cp_coupling(desc),
        (desc.irreps_in1, sh3, desc.irreps_out),
        [16, 32, 48, 63, 64],
    )


if __name__ == "__main__":
    main()
