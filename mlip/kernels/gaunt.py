"""Gaunt coefficients and spherical grids (Gauss–Legendre in cos β × uniform in α).

With orthonormal real spherical harmonics ``Ŷ = Y / sqrt(4π)`` (``Y`` component-normalised, as
:func:`mlip.kernels.spherical_harmonics`), the Gaunt coefficient is

.. math::  G^{l_1 l_2 l_3}_{m_1 m_2 m_3} = \\int_{S^2} Ŷ_{l_1 m_1} Ŷ_{l_2 m_2} Ŷ_{l_3 m_3}\\, dΩ
           = α(l_1, l_2, l_3)\\, C^{l_1 l_2 l_3}_{m_1 m_2 m_3}

with ``C`` the unit-norm real Clebsch–Gordan tensor of :mod:`mlip.kernels.cg`; ``α = 0`` when ``l1 + l2 + l3`` is
odd (Luo, Chen, Krishnapriyan, ICLR 2024).

Quadrature: ``n_β`` Gauss–Legendre nodes in ``cos β`` and ``n_α`` uniform nodes in ``α`` integrate exactly every
product of spherical harmonics of total degree ``D`` when ``n_β >= ceil((D + 1) / 2)`` and ``n_α >= D + 1``
(Xie et al., "The Price of Freedom", ICML 2025).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np
import torch

from mlip.kernels.cg import clebsch_gordan, spherical_harmonics

__all__ = ["SphereGrid", "degree_index", "orthonormal_sh", "gaunt_coefficients", "gaunt_alpha"]


@dataclass(frozen=True)
class SphereGrid:
    """A product grid on the sphere.

    Attributes:
        n_beta: Gauss–Legendre nodes in ``cos β``.
        n_alpha: uniform nodes in ``α``.
    """

    n_beta: int
    n_alpha: int

    @classmethod
    def exact_for(cls, total_degree: int) -> SphereGrid:
        """The smallest grid integrating every spherical-harmonic product of ``total_degree`` exactly."""
        return cls(n_beta=math.ceil((total_degree + 1) / 2), n_alpha=total_degree + 1)

    def points_and_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit vectors ``[n_beta * n_alpha, 3]`` and quadrature weights ``[n_beta * n_alpha]`` (sum ``4π``),
        float64."""
        return _points_and_weights(self.n_beta, self.n_alpha)


@lru_cache(maxsize=64)
def _points_and_weights(n_beta: int, n_alpha: int) -> tuple[torch.Tensor, torch.Tensor]:
    z, w_beta = np.polynomial.legendre.leggauss(n_beta)
    alpha = 2 * np.pi * np.arange(n_alpha) / n_alpha
    sin_beta = np.sqrt(1 - z**2)
    x = (sin_beta[:, None] * np.cos(alpha)[None, :]).ravel()
    y = (sin_beta[:, None] * np.sin(alpha)[None, :]).ravel()
    zz = np.repeat(z, n_alpha)
    points = torch.tensor(np.stack([x, y, zz], -1), dtype=torch.float64)
    weights = torch.tensor(np.repeat(w_beta, n_alpha) * (2 * np.pi / n_alpha), dtype=torch.float64)
    return points, weights


def degree_index(lmax: int) -> torch.Tensor:
    """Degree ``l`` of each of the ``(lmax+1)^2`` spherical-harmonic components: ``[0, 1, 1, 1, 2, ...]``."""
    return torch.repeat_interleave(torch.arange(lmax + 1), torch.arange(lmax + 1) * 2 + 1)


def orthonormal_sh(lmax: int, points: torch.Tensor) -> torch.Tensor:
    """Orthonormal real spherical harmonics ``[n_points, (lmax+1)^2]`` at unit vectors ``points [n_points, 3]``."""
    return spherical_harmonics(lmax, points) / math.sqrt(4 * math.pi)


@cache
def _gaunt64(l1: int, l2: int, l3: int) -> torch.Tensor:
    grid = SphereGrid.exact_for(l1 + l2 + l3)
    points, weights = grid.points_and_weights()
    y = orthonormal_sh(max(l1, l2, l3), points)
    blocks = [y[:, l * l : (l + 1) * (l + 1)] for l in (l1, l2, l3)]
    return torch.einsum("g,gi,gj,gk->ijk", weights, *blocks)


def gaunt_coefficients(l1: int, l2: int, l3: int) -> torch.Tensor:
    """``G[m1, m2, m3]`` (float64, a fresh copy) by exact quadrature; see the module docstring."""
    return _gaunt64(l1, l2, l3).clone()


def gaunt_alpha(l1: int, l2: int, l3: int) -> float:
    """``α(l1, l2, l3)`` with ``G = α C``; zero for odd ``l1 + l2 + l3`` or a forbidden triangle."""
    if not abs(l1 - l2) <= l3 <= l1 + l2 or (l1 + l2 + l3) % 2:
        return 0.0
    return float((_gaunt64(l1, l2, l3) * clebsch_gordan(l1, l2, l3)).sum())
