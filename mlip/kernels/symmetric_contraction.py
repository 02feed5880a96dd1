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

import torch
from torch import nn

from mlip.kernels.backend import Backend, auto_choice, cueq_cuda_available
from mlip.kernels.constants import load_constant
from mlip.kernels.cueq import SymmetricContractionCueq
from mlip.kernels.element_groups import apply_by_element, pick_element, use_grouped
from mlip.kernels.native import native_available
from mlip.kernels.symmetric_basis import monomials
from mlip.kernels.symmetric_descriptor import SymmetricContractionDescriptor
from mlip.kernels.symmetric_native import NativeTables, contract_native

__all__ = ["SymmetricContractionDescriptor", "SymmetricContraction"]


def _needed_monomials(descriptor: SymmetricContractionDescriptor) -> list[torch.Tensor]:
    """Per degree ν, the indices (into ``monomials(D, ν)``) of the monomials the forward pass must build:
    those with a non-zero coefficient in some basis of degree ν, plus the prefixes that higher degrees use.
    Parity and angular-momentum selection rules make most monomials unused (e.g. 77 of 816 for
    ``Sym^3(0e+1o+2e+3o) -> 0e``)."""
    dim = descriptor.irreps_in.dim
    used = {}
    for b in descriptor.bases:
        mask = b.U.abs().sum(dim=(0, 2)) > 0
        used[b.degree] = used[b.degree] | mask if b.degree in used else mask
    needed: dict[int, set[tuple[int, ...]]] = {}
    for degree in range(descriptor.correlation, 0, -1):
        mono = monomials(dim, degree).tolist()
        chosen = {tuple(mono[i]) for i in used[degree].nonzero().squeeze(-1).tolist()}
        chosen |= {m[:-1] for m in needed.get(degree + 1, set())}
        needed[degree] = chosen
    out = []
    for degree in range(1, descriptor.correlation + 1):
        index = {tuple(m): i for i, m in enumerate(monomials(dim, degree).tolist())}
        out.append(torch.tensor(sorted(index[m] for m in needed[degree]), dtype=torch.int64))
    return out


class SymmetricContraction(nn.Module):
    """Symmetric contraction with learnable element-dependent weights; see the module docstring.

    Args:
        descriptor: what to compute.
        channels: ``C``.
        num_elements: number of element indices.
        backend: :class:`Backend` (``TORCH`` monomial products; ``REFERENCE`` dense ``D^ν`` tensors;
            ``CUEQUIVARIANCE`` cuEquivariance's segmented polynomial; ``NATIVE`` the compiled CPU kernels of
            :mod:`mlip.kernels.symmetric_native`; ``AUTO`` per call by device).
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
        # P_ν[t] = P_{ν-1}[prefix[t]] * A[last[t]] over the needed monomials t of each degree
        dim = descriptor.irreps_in.dim
        needed = _needed_monomials(descriptor)
        for degree, sel in enumerate(needed, start=1):
            mono = monomials(dim, degree)[sel]
            if degree == 1:
                prefix = torch.zeros(len(sel), dtype=torch.int64)
            else:
                lower = {
                    tuple(m): i for i, m in enumerate(monomials(dim, degree - 1)[needed[degree - 2]].tolist())
                }
                prefix = torch.tensor([lower[tuple(m[:-1])] for m in mono.tolist()], dtype=torch.int64)
            self.register_buffer(f"prefix{degree}", prefix, persistent=False)
            self.register_buffer(f"last{degree}", mono[:, -1].clone(), persistent=False)
        # the bases restricted to the needed monomials, ``[2L+1, T_ν, n_basis]``, once (derived from the same
        # computed ``U`` that loading checks the file against, so they stay valid after a load)
        for k, b in enumerate(descriptor.bases):
            u_sel = b.U.index_select(1, needed[b.degree - 1]).to(dtype)
            self.register_buffer(f"U_needed{k}", u_sel, persistent=False)
        self._native = None
        if self.backend is Backend.NATIVE or (self.backend is Backend.AUTO and native_available()):
            self._native = NativeTables(self)
        self._cueq = None
        if self.backend is Backend.CUEQUIVARIANCE or (self.backend is Backend.AUTO and cueq_cuda_available()):
            self._cueq = SymmetricContractionCueq(descriptor, channels=channels)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """The bases ``U`` are recomputed, never taken from the file (:mod:`mlip.kernels.constants`): a stored
        basis must match the one this code computes, since the pruned monomials and the meaning of every weight
        depend on it; the float64 basis then goes into the buffer in its own dtype."""
        for k, b in enumerate(self.descriptor.bases):
            what = f"symmetric-contraction basis for degree {b.degree}, {b.ir_out}"
            load_constant(state_dict, f"{prefix}U{k}", b.U, getattr(self, f"U{k}"), what=what)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _check(self, a: torch.Tensor, species: torch.Tensor) -> None:
        d = self.descriptor
        if a.dim() != 3 or a.shape[1] != d.irreps_in.dim or a.shape[2] != self.channels:
            raise ValueError(f"A must be [N, {d.irreps_in.dim}, {self.channels}], got {tuple(a.shape)}")
        if species.shape != (a.shape[0],):
            raise ValueError(f"species must be [N={a.shape[0]}], got {tuple(species.shape)}")

    def forward(self, a: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        self._check(a, species)
        backend = self.backend
        if backend is Backend.AUTO:  # among what was built (see ChannelwiseTPAuto)
            backend = auto_choice(a.device, native=self._native is not None, cueq=self._cueq is not None)
        if backend is Backend.CUEQUIVARIANCE:
            return self._cueq(a, species, self.weight)
        if backend is Backend.REFERENCE:
            return self._forward_reference(a, species)
        if backend is Backend.NATIVE:
            return contract_native(self._native, a, species, self.weight)
        return self._forward_torch(a, species)

    def _forward_torch(self, a: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """Monomials first, then one contraction per degree with the element's folded weights.

        ``V[z, M, t, c] = sum_η U[M, t, η] W[z, η, c]`` is small (no node axis), so the node-sized work is
        ``out[n, M, c] += sum_t P[n, t, c] V[z_n, M, t, c]``: ``N * D_out * T * C`` multiply-adds per degree
        (eager on the CPU, nodes grouped by element), or ``E`` times that for the contraction alone when every
        element's ``V`` is applied and each node keeps its own (compiled, or on a GPU:
        :mod:`mlip.kernels.element_groups`). Degree-ν monomials are built from degree-(ν-1) ones (one gather and
        one product per degree), once for all elements.
        """
        if use_grouped(a):
            return apply_by_element(
                a, species, lambda x, z: self._contract(self._monomials(x), self.weight[z], x.dtype)
            )
        n_el = self.weight.shape[0]
        out = self._contract(self._monomials(a), self.weight, a.dtype)  # [n, E * D_out, C]
        return pick_element(out.view(a.shape[0], n_el, -1, self.channels), species, dim=1)

    def _monomials(self, a: torch.Tensor) -> list[torch.Tensor]:
        """The needed monomials of every degree of ``a [n, D_in, C]``, each ``[T_ν, C, n]``.

        The ``[T, C, n]`` layout: gathered along the *first* axis (on the CPU the backward of a gather,
        ``index_add_``, is vectorised along dim 0 but loops over indices along others), and each channel's
        ``[T, n]`` slice has a unit stride, so the contraction with ``V`` is one batched matrix product over
        channels that reads the monomials once.
        """
        at = a.permute(1, 2, 0).contiguous()  # [D_in, C, n]
        powers: list[torch.Tensor] = []
        for degree in range(1, self.descriptor.correlation + 1):
            prefix, last = getattr(self, f"prefix{degree}"), getattr(self, f"last{degree}")
            p = at.index_select(0, last)
            powers.append(p if not powers else powers[-1].index_select(0, prefix) * p)
        return powers

    def _contract(self, powers: list[torch.Tensor], weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``sum_ν [C, E' D_out, T_ν] @ [C, T_ν, n]`` -> ``[n, E' D_out, C]`` for ``weight [num_weights, C]``
        (one element, ``E' = 1``) or ``[E, num_weights, C]`` (every element, ``E' = E``)."""
        out = None
        for degree, p in enumerate(powers, start=1):
            v = self._folded_weights(degree, weight, dtype)  # [E', D_out, T, C]
            v = v.reshape(-1, v.shape[-2], v.shape[-1]).permute(2, 0, 1)  # [C, E' D_out, T]
            term = torch.bmm(v, p.transpose(0, 1))  # [C, E' D_out, n]
            out = term if out is None else out + term
        return out.permute(2, 1, 0)

    def _folded_weights(self, degree: int, weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``V = U W``: ``[..., D_out, T_ν, C]`` for ``weight [..., num_weights, C]``."""
        d = self.descriptor
        n_out = len(d.irreps_out)
        blocks = []
        for j in range(n_out):
            k = (degree - 1) * n_out + j
            lo, hi = d.weight_offsets[k], d.weight_offsets[k + 1]
            u = getattr(self, f"U_needed{k}").to(dtype)
            blocks.append(torch.einsum("mte,...ec->...mtc", u, weight[..., lo:hi, :].to(dtype)))
        return torch.cat(blocks, dim=-3)

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
