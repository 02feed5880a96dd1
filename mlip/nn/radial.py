"""Radial bases and cutoff envelopes (distances in Å).

References: Klicpera et al., "Directional message passing" (DimeNet, ICLR 2020), eq. (7)–(8): Bessel basis and
polynomial envelope; MACE uses the same with ``p = 5``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mlip.kernels.constants import load_constant

__all__ = ["BesselBasis", "PolynomialCutoff", "RadialMLP", "polynomial_envelope"]


class BesselBasis(nn.Module):
    """``b_n(r) = sqrt(2 / r_max) * sin(n π r / r_max) / r`` for ``n = 1..num_basis``.

    Shapes: ``r [E]`` (Å, > 0) -> ``[E, num_basis]`` (1/Å^{3/2}).
    """

    def __init__(self, *, r_max: float, num_basis: int = 8, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.r_max = float(r_max)
        self.num_basis = num_basis
        self.register_buffer("frequencies", self._frequencies().to(dtype))
        self.prefactor = math.sqrt(2.0 / r_max)

    def _frequencies(self) -> torch.Tensor:
        """``n π / r_max``, float64 (1/Å)."""
        return math.pi / self.r_max * torch.arange(1, self.num_basis + 1, dtype=torch.float64)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """The frequencies are recomputed in the buffer's dtype, the file's copy only checked
        (:mod:`mlip.kernels.constants`)."""
        load_constant(
            state_dict,
            prefix + "frequencies",
            self._frequencies(),
            self.frequencies,
            what="Bessel frequencies",
        )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        r = r.unsqueeze(-1)
        return self.prefactor * torch.sin(self.frequencies.to(r.dtype) * r) / r


class PolynomialCutoff(nn.Module):
    """Smooth envelope ``u(x)``, ``x = r / r_max``, that vanishes with ``p`` continuous derivatives at ``r_max``:

    .. math::  u(x) = 1 - \\frac{(p+1)(p+2)}{2} x^p + p(p+2) x^{p+1} - \\frac{p(p+1)}{2} x^{p+2}, \\quad x < 1

    and ``0`` for ``x >= 1``. Shapes: ``r [E]`` -> ``[E]``.
    """

    def __init__(self, *, r_max: float, p: int = 5) -> None:
        super().__init__()
        self.r_max = float(r_max)
        self.p = p

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return polynomial_envelope(r / self.r_max, self.p)


def polynomial_envelope(x: torch.Tensor, p: int) -> torch.Tensor:
    """``u(x)`` of :class:`PolynomialCutoff` for ``x = r / r_max`` (any shape; ``r_max`` may vary per element, as
    for :class:`~mlip.nn.pair.ZBLRepulsion`), ``0`` for ``x >= 1``."""
    u = 1.0 - 0.5 * (p + 1) * (p + 2) * x**p + p * (p + 2) * x ** (p + 1) - 0.5 * p * (p + 1) * x ** (p + 2)
    return u * (x < 1.0)


class RadialMLP(nn.Module):
    """MLP from radial basis values to per-edge tensor-product weights: ``[E, n_in] -> [E, n_out]``.

    Layers ``n_in -> hidden[0] -> ... -> n_out``, SiLU between them, no biases (so a zero basis, beyond the
    cutoff, gives zero weights), weights ``~ N(0, 1)`` scaled by ``1/sqrt(fan_in)`` in the forward pass (e3nn's
    ``FullyConnectedNet`` normalisation; the SiLU gain is compensated by a constant factor 1.679).
    """

    _SILU_GAIN = 1.679177  # 1 / sqrt(E[silu(z)^2]) for z ~ N(0, 1)

    def __init__(self, sizes: list[int], *, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.sizes = list(sizes)
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(a, b, dtype=dtype)) for a, b in zip(sizes[:-1], sizes[1:])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.weights)
        for i, w in enumerate(self.weights):
            x = x @ (w.to(x.dtype) / math.sqrt(w.shape[0]))
            if i < n - 1:
                x = torch.nn.functional.silu(x) * self._SILU_GAIN
        return x
