"""Real spherical harmonics of high degree (``l > 12``, beyond e3nn's tabulated polynomials).

For ``r̂ = (sin θ cos φ, sin θ sin φ, cos θ)`` and component normalisation (``Σ_m Y_lm² = 2l + 1``):

.. math::  Y_{l m} = \\sqrt{2l+1}\\, \\sqrt{(2 - δ_{m0}) \\frac{(l-|m|)!}{(l+|m|)!}}\\; P_l^{|m|}(\\cos θ)
           \\times \\begin{cases} \\cos(mφ) & m > 0 \\\\ 1 & m = 0 \\\\ \\sin(|m|φ) & m < 0 \\end{cases}

with the associated Legendre functions ``P_l^m`` (no Condon–Shortley phase) from the stable recurrences
``P_m^m = (2m-1)!! sin^m θ``, ``P_{m+1}^m = (2m+1) cos θ P_m^m``,
``(l-m) P_l^m = (2l-1) cos θ P_{l-1}^m - (l+m-1) P_{l-2}^m``; the normalised form is carried through the
recurrence so nothing overflows. This is a valid real orthogonal basis of each degree; it is not e3nn's
ordering or sign convention, which does not matter for these degrees: mlip derives Wigner matrices and
Clebsch–Gordan coefficients from whichever harmonics :func:`mlip.kernels.spherical_harmonics` returns.
"""

from __future__ import annotations

import math

import torch

__all__ = ["high_degree_harmonics"]


def _normalised_legendre(l: int, z: torch.Tensor, s: torch.Tensor) -> list[torch.Tensor]:
    """``Q_l^m = sqrt((l-m)!/(l+m)!) P_l^m(z)`` for ``m = 0..l`` (``z = cos θ``, ``s = sin θ``)."""
    out = []
    for m in range(l + 1):
        # Q_m^m = sqrt((2m)!)/(2^m m!) * s^m, built as a running product
        q_mm = torch.ones_like(z)
        for k in range(1, m + 1):
            q_mm = q_mm * s * math.sqrt((2 * k - 1) / (2 * k))
        if l == m:
            out.append(q_mm)
            continue
        prev, cur = q_mm, math.sqrt(2 * m + 1) * z * q_mm  # Q_{m+1}^m
        for n in range(m + 2, l + 1):
            a = (2 * n - 1) / math.sqrt((n - m) * (n + m))
            b = math.sqrt((n - 1 - m) * (n - 1 + m) / ((n - m) * (n + m)))
            prev, cur = cur, a * z * cur - b * prev
        out.append(cur)
    return out


def high_degree_harmonics(l: int, vectors: torch.Tensor) -> torch.Tensor:
    """``[..., 2l+1]`` component-normalised real harmonics of degree ``l`` at the directions of ``vectors``
    (ordered ``m = -l..l``)."""
    r = vectors / torch.linalg.norm(vectors, dim=-1, keepdim=True)
    x, y, z = r.unbind(-1)
    s = torch.sqrt(torch.clamp(x * x + y * y, min=0.0))
    phi = torch.atan2(y, x)
    q = _normalised_legendre(l, z, s)
    scale = math.sqrt(2 * l + 1)
    cols = [scale * math.sqrt(2) * q[m] * torch.sin(m * phi) for m in range(l, 0, -1)]
    cols.append(scale * q[0])
    cols += [scale * math.sqrt(2) * q[m] * torch.cos(m * phi) for m in range(1, l + 1)]
    return torch.stack(cols, dim=-1)
