"""MACE's symmetric contraction (the equivariant product basis), Batatia et al. 2022, eq. (10)–(11).

For every node ``n`` of element ``z_n`` and channel ``c``

.. math::  B_{n, LM, c} = \\sum_{ν=1}^{ν_{max}} \\sum_{η} W^{(ν, L)}_{z_n η c}
           \\sum_{t} U^{(ν, L)}_{M t η}\\, \\prod_{a \\in t} A_{n, a, c}

where ``t`` runs over sorted index tuples of length ν (monomials of ``A``'s components) and ``U`` is the basis of
:mod:`mlip.kernels.symmetric_basis`. Shapes: ``A [N, D_in, C]``, element indices ``[N]`` (0-based),
output ``[N, D_out, C]``; weights ``[num_elements, num_weights, C]`` ordered ``for ν: for L in irreps_out``.

Weights are initialised ``randn / n_basis`` per ``(ν, L)`` block, like mace-torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn

from mlip.kernels.backend import Backend
from mlip.kernels.irreps import Irreps
from mlip.kernels.symmetric_basis import SymmetricBasis, symmetric_basis


@dataclass(frozen=True)
class SymmetricContractionDescriptor:
    """``Sym^{1..correlation}(irreps_in) -> irreps_out``, channel-wise, element-dependent weights."""

    irreps_in: Irreps
    irreps_out: Irreps
    correlation: int

    def __post_init__(self) -> None:
        if not 1 <= self.correlation <= 4:
            raise ValueError(f"correlation must be in 1..4, got {self.correlation}")

    @cached_property
    def bases(self) -> tuple[SymmetricBasis, ...]:
        """One basis per ``(ν, L)``, ordered ``for ν: for L in irreps_out`` (the weight order)."""
        return tuple(
            symmetric_basis(self.irreps_in, nu, ir)
            for nu in range(1, self.correlation + 1)
            for ir in self.irreps_out
        )

    @cached_property
    def weight_offsets(self) -> tuple[int, ...]:
        out = [0]
        for b in self.bases:
            out.append(out[-1] + b.num_basis)
        return tuple(out)

    @property
    def num_weights(self) -> int:
        """Weights per element and channel."""
        return self.weight_offsets[-1]

    def output_slice(self, k: int) -> slice:
        """Slice of ``irreps_out`` written by basis ``k``."""
        return self.irreps_out.slices()[k % len(self.irreps_out)]


class SymmetricContraction(nn.Module):
    """Symmetric contraction with learnable element-dependent weights; see the module docstring.

    Args:
        descriptor: what to compute.
        channels: ``C``.
        num_elements: number of element indices.
        backend: :class:`Backend` (``TORCH`` monomial products; ``REFERENCE`` dense ``D^ν`` tensors;
            ``CUEQUIVARIANCE`` cuEquivariance's segmented polynomial).
        dtype: parameter dtype.
    """

    def __init__(
        self,
        descriptor: SymmetricContractionDescriptor,
        *,
        channels: int,
        num_elements: int,
        backend: Backend = Backend.TORCH,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.descriptor = descriptor
        self.channels = channels
        self.num_elements = num_elements
        self.backend = Backend(backend)
        w = torch.empty(num_elements, descriptor.num_weights, channels, dtype=dtype)
        for b, lo, hi in zip(descriptor.bases, descriptor.weight_offsets[:-1], descriptor.weight_offsets[1:]):
            w[:, lo:hi] = torch.randn(num_elements, hi - lo, channels, dtype=dtype) / max(b.num_basis, 1)
        self.weight = nn.Parameter(w)
        for k, b in enumerate(descriptor.bases):
            self.register_buffer(f"U{k}", b.U.to(dtype).clone(), persistent=True)
            self.register_buffer(f"mono{k}", b.monomials.clone(), persistent=False)
        self._cueq = None
        if self.backend is Backend.CUEQUIVARIANCE:
            from mlip.kernels.cueq import SymmetricContractionCueq

            self._cueq = SymmetricContractionCueq(descriptor, channels=channels)

    def _check(self, a: torch.Tensor, species: torch.Tensor) -> None:
        d = self.descriptor
        if a.dim() != 3 or a.shape[1] != d.irreps_in.dim or a.shape[2] != self.channels:
            raise ValueError(f"A must be [N, {d.irreps_in.dim}, {self.channels}], got {tuple(a.shape)}")
        if species.shape != (a.shape[0],):
            raise ValueError(f"species must be [N={a.shape[0]}], got {tuple(species.shape)}")

    def forward(self, a: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        self._check(a, species)
        if self.backend is Backend.CUEQUIVARIANCE:
            return self._cueq(a, species, self.weight)
        if self.backend is Backend.REFERENCE:
            return self._forward_reference(a, species)
        return self._forward_torch(a, species)

    def _forward_torch(self, a: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        d = self.descriptor
        w = self.weight.index_select(0, species)  # [N, num_weights, C]
        out = a.new_zeros(a.shape[0], d.irreps_out.dim, self.channels)
        monomial_products: dict[int, torch.Tensor] = {}  # degree -> [N, T, C]
        for k, (lo, hi) in enumerate(zip(d.weight_offsets[:-1], d.weight_offsets[1:])):
            if hi == lo:
                continue
            degree = d.bases[k].degree
            if degree not in monomial_products:
                mono = getattr(self, f"mono{k}")
                p = a.index_select(1, mono[:, 0])
                for col in range(1, degree):
                    p = p * a.index_select(1, mono[:, col])
                monomial_products[degree] = p
            p = monomial_products[degree]
            u = getattr(self, f"U{k}").to(a.dtype)  # [M, T, eta]
            g = torch.einsum("mte,ntc->nmec", u, p)
            out[:, d.output_slice(k)] += torch.einsum("nmec,nec->nmc", g, w[:, lo:hi])
        return out

    def _forward_reference(self, a: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """Dense ``U_full[M, a_1..a_ν, η]`` contracted with ν copies of ``A`` (memory ``D^ν``; tests only)."""
        d = self.descriptor
        dim = d.irreps_in.dim
        w = self.weight[species]
        out = a.new_zeros(a.shape[0], d.irreps_out.dim, self.channels)
        letters = "ijkl"
        for k, (lo, hi) in enumerate(zip(d.weight_offsets[:-1], d.weight_offsets[1:])):
            b = d.bases[k]
            if hi == lo:
                continue
            u = getattr(self, f"U{k}").to(a.dtype)
            full = a.new_zeros((u.shape[0],) + (dim,) * b.degree + (u.shape[2],))
            full[(slice(None),) + tuple(getattr(self, f"mono{k}").T)] = u  # [M, T, eta] at sorted indices
            idx = letters[: b.degree]
            operands = ",".join(f"n{x}c" for x in idx)
            contracted = torch.einsum(f"m{idx}e,{operands}->nmec", full, *([a] * b.degree))
            out[:, d.output_slice(k)] += torch.einsum("nmec,nec->nmc", contracted, w[:, lo:hi])
        return out
