"""Direct O(N²) pair sums for free (non-periodic) structures: the exact reference and the small-N path.

With ``k_e = 14.399645 eV·Å/e²`` (:data:`mlip.longrange.constants.K_E`), the potential at atom ``i`` from all
other charges and its split into a short- and a smooth long-range part with a Gaussian width ``σ``:

.. math::

    φ_i = \\sum_{j \\ne i} \\frac{q_j}{r_{ij}}
        = \\sum_{j \\ne i} q_j \\frac{\\operatorname{erfc}(r_{ij}/σ)}{r_{ij}}
        + \\underbrace{\\sum_j q_j \\frac{\\operatorname{erf}(|x_i - x_j|/σ)}{|x_i - x_j|}}_{φ_L(x_i)}
        - \\frac{2 q_i}{σ\\sqrt{π}},

where the ``j = i`` term of ``φ_L`` is its smooth limit ``2 q_i/(σ√π)``, removed again by the self term. The
functions here return the sums in e/Å; callers multiply by ``k_e`` for volts. Rows are processed in chunks so
that memory stays ``O(chunk · N)``.
"""

from __future__ import annotations

import math

import torch

__all__ = ["coulomb_potential_direct", "erf_potential_direct", "erf_potential_at"]

_CHUNK = 1024


def coulomb_potential_direct(positions: torch.Tensor, charges: torch.Tensor) -> torch.Tensor:
    """``Σ_{j≠i} q_j / r_ij`` for every atom ``i``: ``[N]`` in e/Å from ``positions [N, 3]`` Å, ``charges [N]`` e."""
    n = positions.shape[0]
    out = []
    for start in range(0, n, _CHUNK):
        rows = torch.arange(start, min(start + _CHUNK, n), device=positions.device)
        d = positions[rows, None, :] - positions[None, :, :]
        self_pair = rows[:, None] == torch.arange(n, device=positions.device)[None, :]
        r = torch.where(
            self_pair, torch.ones_like(d[..., 0]), d.square().sum(-1)
        ).sqrt()  # no sqrt(0) in backward
        inv = torch.where(self_pair, torch.zeros_like(r), 1.0 / r)
        out.append(inv @ charges)
    return torch.cat(out) if out else positions.new_zeros(0)


def erf_potential_at(
    targets: torch.Tensor, positions: torch.Tensor, charges: torch.Tensor, sigma: float
) -> torch.Tensor:
    """``φ_L(y) = Σ_j q_j erf(|y − x_j|/σ)/|y − x_j|`` at arbitrary points ``targets [M, 3]`` Å: ``[M]`` e/Å.

    The coincident limit ``2 q_j/(σ√π)`` is used where ``y = x_j``; the function is smooth there, and its gradient
    is evaluated by the series ``erf(r/σ)/r ≈ (2/(σ√π))(1 − r²/(3σ²))`` below ``r < 1e-4 σ``.
    """
    m = targets.shape[0]
    c0 = 2.0 / (sigma * math.sqrt(math.pi))
    out = []
    for start in range(0, m, _CHUNK):
        d = targets[start : start + _CHUNK, None, :] - positions[None, :, :]
        r2 = d.square().sum(-1)
        small = r2 < (1e-4 * sigma) ** 2
        r = torch.where(small, torch.ones_like(r2), r2).sqrt()
        far = torch.erf(r / sigma) / r
        near = c0 * (1.0 - r2 / (3.0 * sigma * sigma))
        out.append(torch.where(small, near, far) @ charges)
    return torch.cat(out) if out else targets.new_zeros(0)


def erf_potential_direct(positions: torch.Tensor, charges: torch.Tensor, sigma: float) -> torch.Tensor:
    """``φ_L(x_i)`` at every atom (the ``j = i`` term included as its limit): ``[N]`` e/Å."""
    return erf_potential_at(positions, positions, charges, sigma)
