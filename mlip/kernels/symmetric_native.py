"""``Backend.NATIVE`` symmetric contraction: one compiled pass per node over the monomials, on the CPU.

With the weights folded into the basis, ``V[z, q, c] = sum_η U[M_q, t_q, η] W[z, η, c]`` over the pairs
``q = (M, t)`` where the basis is non-zero (:class:`~mlip.kernels.symmetric_contraction.SymmetricContraction`'s
needed monomials ``t`` of every degree), the contraction is

.. math::  B_{n M c} = \\sum_{q = (M, t)} V_{z_n q c}\\, m_t(A_{n \\cdot c}),
           \\qquad m_t = m_{\\mathrm{prefix}(t)}\\, A_{\\mathrm{last}(t)}

The kernels (``native_symmetric.cpp``) build the monomials per node in registers-sized ``[T, C]`` buffers, never
as ``[T, C, N]`` tensors, and compute the input and weight gradients by a reverse pass over the same recursion.
The folding ``U -> V`` stays in PyTorch, so gradients reach ``W`` through ordinary autograd.

Differentiable twice (what force training needs: forces are a first derivative, their loss's gradient a second);
a third derivative raises an error rather than returning a wrong zero.
"""

from __future__ import annotations

import ctypes

import torch

from mlip.kernels.native import entry
from mlip.kernels.tracing import is_tracing

_P = ctypes.c_void_p
_I = ctypes.c_int64


__all__ = ["NativeTables", "contract_native"]


def _entry(dtype: torch.dtype):
    return entry("symmetric", "mlip_sc", dtype, [_I, _P, _P, _P, _P, _P, _P, _P, _I, _P, _I])


class NativeTables:
    """Index tables of one :class:`~mlip.kernels.symmetric_contraction.SymmetricContraction` for the kernels, and the folding of its weights.

    ``itab`` (int32): ``prefix[T] | last[T] | pair_m[Q] | pair_t[Q]`` over the needed monomials of all degrees
    (degree by degree, so a prefix precedes its monomial); ``u_pairs[k]`` ``[Q_k, n_basis_k]`` the rows of basis
    ``k`` at its pairs; ``pair_blocks[k]`` the range of pairs of basis ``k``.
    """

    def __init__(self, module) -> None:
        d = module.descriptor
        prefix, last, offsets = [], [], [0]
        for degree in range(1, d.correlation + 1):
            pre = getattr(module, f"prefix{degree}").tolist()
            lst = getattr(module, f"last{degree}").tolist()
            base = offsets[degree - 2] if degree > 1 else 0
            prefix += [-1] * len(lst) if degree == 1 else [base + p for p in pre]
            last += lst
            offsets.append(offsets[-1] + len(lst))
        pair_m, pair_t, self.u_pairs, self.pair_blocks = [], [], [], []
        for k, b in enumerate(d.bases):
            u = getattr(module, f"U_needed{k}").to(torch.float64)  # [2L+1, T_nu, n_basis]
            out0 = d.output_slice(k).start
            nz = (u.abs().sum(dim=2) > 0).nonzero().tolist()
            start = len(pair_m)
            for m, t in nz:
                pair_m.append(out0 + m)
                pair_t.append(offsets[b.degree - 1] + t)
            rows = torch.stack([u[m, t] for m, t in nz]) if nz else u.new_zeros(0, u.shape[2])
            self.u_pairs.append(rows)
            self.pair_blocks.append((start, len(pair_m)))
        self.num_monomials, self.num_pairs = len(last), len(pair_m)
        self.itab = torch.tensor(prefix + last + pair_m + pair_t, dtype=torch.int32)
        self.dim_in, self.dim_out = d.irreps_in.dim, d.irreps_out.dim
        self.weight_offsets = d.weight_offsets

    def fold(self, weight: torch.Tensor) -> torch.Tensor:
        """``V [Z, Q, C]`` from the weights ``[Z, num_weights, C]`` (differentiable, PyTorch)."""
        blocks = []
        for k, rows in enumerate(self.u_pairs):
            if rows.shape[0] == 0:
                continue
            lo, hi = self.weight_offsets[k], self.weight_offsets[k + 1]
            blocks.append(torch.einsum("qe,zec->zqc", rows.to(weight.dtype), weight[:, lo:hi]))
        return torch.cat(blocks, dim=1)


# dims = (dim_in, dim_out, num_monomials, num_pairs, C, Z); the output of each kind for n nodes:
_OUT = {
    0: lambda n, d: (n, d[1], d[4]),  # B
    1: lambda n, d: (d[5], d[3], d[4]),  # gV, summed over the nodes of each element
    2: lambda n, d: (n, d[0], d[4]),  # gA
}

torch.library.define(
    "mlip::symmetric_contraction",
    "(int kind, Tensor itab, Tensor a, Tensor? u, Tensor? v, Tensor? gbar, Tensor species, SymInt[] dims) -> Tensor",
)


@torch.library.impl("mlip::symmetric_contraction", "CPU")
def _kernel_cpu(kind, itab, a, u, v, gbar, species, dims):
    """Kernel ``kind`` (0 forward, 1 weight gradient, 2 input gradient; ``u`` a direction for second order)."""
    n = a.shape[0]
    threads = max(1, min(torch.get_num_threads(), n // 16))
    shape = _OUT[kind](n, dims)
    out = torch.zeros((threads, *shape) if kind == 1 else shape, dtype=a.dtype)
    keep = [t.contiguous() if t is not None else None for t in (a, u, v, gbar)]
    for t in keep:
        if t is not None and t.dtype != a.dtype:
            raise ValueError(f"symmetric contraction: mixed dtypes {t.dtype} and {a.dtype}")
    ptrs = [t.data_ptr() if t is not None else None for t in keep]
    species, itab = species.to(torch.int64).contiguous(), itab.to(torch.int32).contiguous()  # named: alive
    c_dims = (ctypes.c_int64 * 6)(*dims)
    _entry(a.dtype)(kind, c_dims, itab.data_ptr(), *ptrs, species.data_ptr(), n, out.data_ptr(), threads)
    return out.sum(0) if kind == 1 else out


@torch.library.register_fake("mlip::symmetric_contraction")
def _kernel_fake(kind, itab, a, u, v, gbar, species, dims):
    return a.new_empty(_OUT[kind](a.shape[0], dims))


def _setup(ctx, inputs, output) -> None:
    kind, itab, a, u, v, gbar, species, dims = inputs
    ctx.save_for_backward(a, u, v, gbar)
    ctx.static = (kind, itab, species, dims)


def _backward(ctx, grad):
    """``B(a; V)`` (kind 0) is linear in ``V``; ``gA`` (kind 2) linear in ``V`` and ``gbar``; ``gV`` (kind 1) linear
    in ``gbar``. A kernel called with a direction ``u`` is already a second derivative: differentiating it raises
    rather than returning a wrong zero (the kernels stop at second order)."""
    kind, itab, species, dims = ctx.static
    a, u, v, gbar = ctx.saved_tensors
    if u is not None:
        raise RuntimeError(
            "the native symmetric contraction is differentiable twice (forces and force training); a third "
            "derivative is not implemented: use backend 'torch'"
        )
    op = torch.ops.mlip.symmetric_contraction
    need = ctx.needs_input_grad
    d_a = d_u = d_v = d_gbar = None
    if kind == 0:  # grad is gbar
        d_a = op(2, itab, a, None, v, grad, species, dims) if need[2] else None
        d_v = op(1, itab, a, None, None, grad, species, dims) if need[4] else None
    elif kind == 2:  # grad is a direction u of the input gradient
        d_a = op(2, itab, a, grad, v, gbar, species, dims) if need[2] else None  # Hessian-vector products
        d_v = op(1, itab, a, grad, None, gbar, species, dims) if need[4] else None
        d_gbar = op(0, itab, a, grad, v, None, species, dims) if need[5] else None
    else:  # kind 1, grad is a weight direction
        d_a = op(2, itab, a, None, grad, gbar, species, dims) if need[2] else None
        d_gbar = op(0, itab, a, None, grad, None, species, dims) if need[5] else None
    return None, None, d_a, d_u, d_v, d_gbar, None, None


torch.library.register_autograd("mlip::symmetric_contraction", _backward, setup_context=_setup)


def contract_native(tables: NativeTables, a: torch.Tensor, species: torch.Tensor, weight: torch.Tensor):
    """``B [N, D_out, C]`` for ``a [N, D, C]``, element indices ``species [N]`` and weights ``[Z, n_w, C]``."""
    if a.device.type != "cpu":
        raise ValueError(f"Backend.NATIVE runs on the CPU; got {a.device} tensors (use 'auto' or 'torch')")
    species = species.to(torch.int64).contiguous()
    checked = not is_tracing() and species.numel()
    if checked and (int(species.min()) < 0 or int(species.max()) >= weight.shape[0]):
        raise ValueError(
            f"element indices must be in [0, {weight.shape[0]}), got {species.min()}..{species.max()}"
        )
    v = tables.fold(weight.to(a.dtype))
    tb = tables
    dims = [tb.dim_in, tb.dim_out, tb.num_monomials, tb.num_pairs, a.shape[2], weight.shape[0]]
    return torch.ops.mlip.symmetric_contraction(0, tb.itab, a, None, v, None, species, dims)
