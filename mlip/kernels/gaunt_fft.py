"""Gaunt tensor product by 2D Fourier transforms (Luo, Chen, Krishnapriyan, ICLR 2024).

Every real spherical harmonic of degree ``l`` is a trigonometric polynomial on the torus ``(θ, φ)``,
``Ŷ_lm(θ, φ) = Σ_{|u|,|v| <= l} y^{lm}_{uv} e^{i(uθ + vφ)}``. The product of two such functions is the
convolution of their coefficient arrays, computed here by zero-padded FFTs, and projected back with

.. math::  z^{lm}_{uv} = \\int_0^{2π}\\!\\!\\int_0^{π} e^{i(uθ + vφ)}\\, Ŷ_{lm}(θ, φ) \\sin θ\\, dθ\\, dφ,

so ``z_{lm} = Re Σ_{uv} F_{uv} z^{lm}_{uv}``. Results equal :class:`~mlip.kernels.gaunt_grid.GauntGridTP` and
the Gaunt-weighted CG product (same shapes and conventions).

Cost: coefficients ``O(B C L^3)`` (dense here: ``O(B C L^4)``), FFTs ``O(B C L^2 log L)``, projection
``O(B C L^3)`` dense.

Shapes: ``x [B, (lmax1+1)^2, C]``, ``y [B, (lmax2+1)^2, C]`` -> ``[B, (lmax_out+1)^2, C]``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import nn

from mlip.kernels.gaunt import orthonormal_sh
from mlip.kernels.gaunt_grid import check_sphere_inputs

__all__ = [
    "GauntFFTTP",
    "samples",
    "spectrum_to_sh",
    "half_spectrum_layout",
    "interleave",
    "half_spectrum_projection",
    "sh_to_fourier",
    "fourier_to_sh",
]


def _torus_samples(lmax: int, n: int) -> torch.Tensor:
    """``Ŷ`` (degrees ``<= lmax``) sampled on an ``n x n`` uniform torus grid: ``[n, n, (lmax+1)^2]``.

    The Cartesian polynomials of the spherical harmonics extend to ``θ ∈ [π, 2π)`` (where ``sin θ < 0``) as
    trigonometric polynomials of degree ``<= l`` in each angle.
    """
    t = 2 * np.pi * np.arange(n) / n
    theta, phi = np.meshgrid(t, t, indexing="ij")
    vec = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], -1)
    return orthonormal_sh(lmax, torch.tensor(vec, dtype=torch.float64))


@lru_cache(maxsize=32)
def sh_to_fourier(lmax: int) -> torch.Tensor:
    """``y^{lm}_{uv}``: complex ``[(lmax+1)^2, 2lmax+1, 2lmax+1]``, frequencies ``-lmax..lmax`` (centred)."""
    n = 2 * lmax + 1
    samples = _torus_samples(lmax, n).permute(2, 0, 1)  # [d, n, n]
    return torch.fft.fftshift(torch.fft.fft2(samples.to(torch.complex128)) / (n * n), dim=(-2, -1))


def _theta_integral(k: np.ndarray) -> np.ndarray:
    """``∫_0^π e^{ikθ} dθ`` for integer ``k``."""
    out = np.empty(k.shape, dtype=np.complex128)
    zero = k == 0
    out[zero] = np.pi
    kk = k[~zero]
    out[~zero] = ((-1.0) ** kk - 1) / (1j * kk)
    return out


@lru_cache(maxsize=32)
def fourier_to_sh(lmax_out: int, freq: int) -> torch.Tensor:
    """``z^{lm}_{uv}``: complex ``[(lmax_out+1)^2, 2freq+1, 2freq+1]`` for ``|u|, |v| <= freq``."""
    # g = Ŷ_lm sinθ is a trig polynomial of degree <= lmax_out + 1 in θ: get its coefficients exactly
    lg = lmax_out + 1
    n = 2 * lg + 1
    t = 2 * np.pi * np.arange(n) / n
    samples = _torus_samples(lmax_out, n) * torch.tensor(np.sin(t), dtype=torch.float64)[:, None, None]
    g = torch.fft.fftshift(
        torch.fft.fft2(samples.permute(2, 0, 1).to(torch.complex128)) / (n * n), dim=(-2, -1)
    )
    g = g.numpy()  # [d, n, n], frequencies -lg..lg
    u = np.arange(-freq, freq + 1)
    up = np.arange(-lg, lg + 1)
    theta = _theta_integral(u[:, None] + up[None, :])  # [2freq+1, n]: ∫ e^{i(u+u')θ}
    z = np.zeros((g.shape[0], 2 * freq + 1, 2 * freq + 1), dtype=np.complex128)
    for iv, v in enumerate(u):
        if abs(v) > lg:
            continue
        # φ-integral: 2π δ(v + v'), so v' = -v
        z[:, :, iv] = 2 * np.pi * (g[:, :, lg - v] @ theta.T)
    return torch.tensor(z)


class GauntFFTTP(nn.Module):
    """The Fourier route of the module docstring. Shapes as :class:`~mlip.kernels.gaunt_grid.GauntGridTP`.

    Real functions have Hermitian spectra, so only the half ``v >= 0`` is kept (``torch.fft.irfft2`` /
    ``rfft2``), already zero-padded to ``n = 2 (l1 + l2) + 1`` (no wrap-around: the product's frequencies reach
    ``±(l1 + l2)``) and in FFT index order, so no shift or pad runs per call.
    """

    def __init__(self, lmax1: int, lmax2: int, lmax_out: int) -> None:
        super().__init__()
        self.lmax1, self.lmax2, self.lmax_out = lmax1, lmax2, lmax_out
        self.freq = lmax1 + lmax2
        self.size = 2 * self.freq + 1
        n = self.size
        self.register_buffer(
            "sh2f1", interleave(half_spectrum_layout(sh_to_fourier(lmax1), n).flatten(1)), persistent=False
        )
        self.register_buffer(
            "sh2f2", interleave(half_spectrum_layout(sh_to_fourier(lmax2), n).flatten(1)), persistent=False
        )
        self.register_buffer(
            "f2sh", half_spectrum_projection(lmax_out, self.freq), persistent=False
        )  # [2K, d_out]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_sphere_inputs(x, y, self.lmax1, self.lmax2)
        fx = samples(torch.matmul(x.transpose(1, 2), self.sh2f1.to(x.dtype)), self.size)
        fy = samples(torch.matmul(y.transpose(1, 2), self.sh2f2.to(y.dtype)), self.size)
        return spectrum_to_sh(fx * fy, self.f2sh.to(x.dtype))


def samples(coeff: torch.Tensor, n: int) -> torch.Tensor:
    """Half spectra ``[..., C, 2K]`` (``(Re, Im)`` interleaved, ``K = n (n // 2 + 1)``) -> real samples on the
    ``n x n`` torus, ``[..., C, n, n]``."""
    spec = torch.view_as_complex(coeff.unflatten(-1, (-1, 2)).contiguous())
    return torch.fft.irfft2(spec.unflatten(-1, (n, n // 2 + 1)), s=(n, n), norm="forward")


def spectrum_to_sh(prod: torch.Tensor, f2sh: torch.Tensor) -> torch.Tensor:
    """Real torus samples ``[B, C, n, n]`` -> spherical-harmonic coefficients ``[B, d_out, C]`` through
    :func:`half_spectrum_projection` ``f2sh [2K, d_out]``."""
    spec = torch.view_as_real(torch.fft.rfft2(prod, norm="forward")).flatten(-3)  # [B, C, 2K]
    return torch.matmul(spec, f2sh).transpose(-1, -2)


def half_spectrum_layout(coeff: torch.Tensor, n: int) -> torch.Tensor:
    """Centred ``[d, 2l+1, 2l+1]`` coefficients (frequencies ``-l..l``) -> ``[d, n, n // 2 + 1]`` in FFT index
    order (``u mod n``) keeping ``v >= 0`` only: the layout of ``torch.fft.irfft2`` for real functions, with the
    zero padding to ``n`` built in."""
    l = (coeff.shape[-1] - 1) // 2
    out = torch.zeros(coeff.shape[0], n, n // 2 + 1, dtype=coeff.dtype)
    for iu, u in enumerate(range(-l, l + 1)):
        out[:, u % n, : l + 1] = coeff[:, iu, l:]
    return out


def interleave(coeff: torch.Tensor) -> torch.Tensor:
    """Complex ``[d, K]`` -> real ``[d, 2K]`` with ``(Re, Im)`` pairs adjacent (``torch.view_as_real`` order)."""
    return torch.view_as_real(coeff.contiguous()).reshape(coeff.shape[0], -1)


def half_spectrum_projection(lmax_out: int, freq: int) -> torch.Tensor:
    """Real ``[2 n (freq+1), d_out]`` map from a half spectrum ``P [n, freq+1]`` (``rfft2`` of a real product,
    flattened with ``(Re, Im)`` interleaved, as ``torch.view_as_real``) to ``z_lm = Re Σ_{all u,v} P_uv z^{lm}_uv``.

    With ``P_{-u,-v} = conj(P_uv)`` and ``z_{-u,-v} = conj(z_uv)`` (both transforms of real functions), the
    columns ``v > 0`` count twice and ``v = 0`` once."""
    n = 2 * freq + 1
    z = half_spectrum_layout(fourier_to_sh(lmax_out, freq), n)  # [d_out, n, freq+1]
    z[:, :, 1:] *= 2
    z = z.reshape(z.shape[0], -1)
    return torch.stack([z.real, -z.imag], dim=2).reshape(z.shape[0], -1).T.contiguous()
