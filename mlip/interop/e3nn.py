"""e3nn interop: irreps and feature layouts.

Layouts. mlip stores equivariant features channel-last, ``[..., irreps.dim, C]`` (cuEquivariance's ``ir_mul``):
an :class:`~mlip.kernels.Irreps` lists the irreps of one channel and every irrep carries all ``C`` channels. e3nn
stores ``[..., Irreps.dim]`` mul-major (``mul_ir``): for each block ``mul x ir`` of an ``e3nn.o3.Irreps``, ``mul``
consecutive vectors of ``2l+1`` components. So mlip's ``irreps`` with ``C`` channels is e3nn's
``C x ir_1 + C x ir_2 + ...``, and block ``k`` converts as

.. math::  x^{\\mathrm{e3nn}}[..., o_k + c (2l_k+1) + m] = x^{\\mathrm{mlip}}[..., o'_k + m, c]

with ``o_k = C o'_k`` the offsets of the block in either layout.

Conventions shared by both (nothing to convert): the real spherical-harmonic basis (``l = 1`` ordered
``y, z, x``), parities, and ``component`` normalisation (``Σ_m Y_lm(r)² = 2l + 1``); Clebsch–Gordan tensors are
e3nn's ``wigner_3j`` (unit Frobenius norm, the same sign), computed to float64 rounding in
:mod:`mlip.kernels.cg`.
"""

from __future__ import annotations

import torch

from mlip.kernels import Irrep, Irreps

try:
    from e3nn import o3
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("mlip.interop.e3nn needs e3nn: pip install e3nn") from err

__all__ = ["from_e3nn_irreps", "from_e3nn_layout", "to_e3nn_irreps", "to_e3nn_layout"]


def to_e3nn_irreps(irreps: Irreps | str, channels: int) -> o3.Irreps:
    """e3nn's irreps of mlip ``irreps`` with ``channels`` channels: ``"0e+1o", 8 -> 8x0e+8x1o``."""
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    return o3.Irreps([(channels, (ir.l, ir.p)) for ir in Irreps(irreps)])


def from_e3nn_irreps(irreps: o3.Irreps | str) -> tuple[Irreps, int]:
    """``(mlip irreps, channels)`` of e3nn irreps whose blocks all have one multiplicity (``8x0e+8x1o ->
    (0e+1o, 8)``); other irreps have no channel-last form and raise ``ValueError``."""
    irreps = o3.Irreps(irreps)
    muls = {mul for mul, _ in irreps}
    if len(muls) != 1:
        raise ValueError(
            f"{irreps}: every block needs the same multiplicity for mlip's channel-last layout, got {sorted(muls)}"
        )
    return Irreps([Irrep(ir.l, ir.p) for _, ir in irreps]), muls.pop()


def to_e3nn_layout(x: torch.Tensor, irreps: Irreps | str) -> torch.Tensor:
    """``[..., irreps.dim, C]`` (mlip) -> ``[..., C * irreps.dim]`` (e3nn, irreps ``to_e3nn_irreps(irreps, C)``)."""
    irreps = Irreps(irreps)
    if x.ndim < 2 or x.shape[-2] != irreps.dim:
        raise ValueError(f"expected [..., {irreps.dim}, C] for {irreps}, got {list(x.shape)}")
    # split, not slices: the backward of a split is one concatenation (a slice's allocates a zero-filled copy)
    parts = torch.split(x, [ir.dim for ir in irreps], dim=-2)
    return torch.cat([p.transpose(-1, -2).reshape(*x.shape[:-2], -1) for p in parts], dim=-1)


def from_e3nn_layout(x: torch.Tensor, irreps: Irreps | str, channels: int) -> torch.Tensor:
    """``[..., C * irreps.dim]`` (e3nn) -> ``[..., irreps.dim, C]`` (mlip); the inverse of :func:`to_e3nn_layout`."""
    irreps = Irreps(irreps)
    if x.shape[-1] != channels * irreps.dim:
        raise ValueError(
            f"expected [..., {channels * irreps.dim}] for {channels} x ({irreps}), got {list(x.shape)}"
        )
    parts = torch.split(x, [channels * ir.dim for ir in irreps], dim=-1)
    blocks = [p.reshape(*x.shape[:-1], channels, ir.dim).transpose(-1, -2) for p, ir in zip(parts, irreps)]
    return torch.cat(blocks, dim=-2)
