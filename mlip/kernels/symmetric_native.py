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

_P = ctypes.c_void_p
_I = ctypes.c_int64


def _entry(dtype: torch.dtype):
    return entry("symmetric", "mlip_sc", dtype, [_I, _P, _P, _P, _P, _P, _P, _P, _I, _P, _I])


class NativeTables:
    """Index tables of one :class:`SymmetricContraction` for the kernels, and the folding of its weights.

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


class _Call:
    """Sizes of one call; runs one kernel (0 forward, 1 weight gradient, 2 input gradient)."""

    def __init__(self, tables: NativeTables, species: torch.Tensor, n_nodes, channels, num_elements, dtype):
        self.tables, self.species = tables, species
        self.n, self.c, self.z, self.dtype = n_nodes, channels, num_elements, dtype
        dims = (tables.dim_in, tables.dim_out, tables.num_monomials, tables.num_pairs, channels, num_elements)
        self.dims = (ctypes.c_int64 * 6)(*dims)
        self.fn = _entry(dtype)

    def run(self, kind: int, a, u=None, v=None, gbar=None) -> torch.Tensor:
        tb = self.tables
        threads = max(1, min(torch.get_num_threads(), self.n // 16))
        shape = {
            0: (self.n, tb.dim_out, self.c),
            1: (threads, self.z, tb.num_pairs, self.c),
            2: (self.n, tb.dim_in, self.c),
        }[kind]
        out = torch.zeros(shape, dtype=self.dtype)
        keep = [t.contiguous() if t is not None else None for t in (a, u, v, gbar)]
        for t in keep:
            if t is not None and t.dtype != self.dtype:
                raise ValueError(f"symmetric contraction: mixed dtypes {t.dtype} and {self.dtype}")
        ptrs = [t.data_ptr() if t is not None else None for t in keep]
        self.fn(
            kind,
            self.dims,
            tb.itab.data_ptr(),
            *ptrs,
            self.species.data_ptr(),
            self.n,
            out.data_ptr(),
            threads,
        )
        return out.sum(0) if kind == 1 else out


class _Contract(torch.autograd.Function):
    @staticmethod
    def forward(ctx, call: _Call, a, v):
        ctx.call = call
        ctx.save_for_backward(a, v)
        return call.run(0, a, v=v)

    @staticmethod
    def backward(ctx, gbar):
        a, v = ctx.saved_tensors
        ga = _InputGrad.apply(ctx.call, a, v, gbar) if ctx.needs_input_grad[1] else None
        gv = _WeightGrad.apply(ctx.call, a, gbar) if ctx.needs_input_grad[2] else None
        return None, ga, gv


class _NoThirdOrder(torch.autograd.Function):
    """Passes a second-order result through, connected to what it depends on; differentiating it raises.

    (``once_differentiable`` is not enough: its error node hangs off the result alone, so a gradient taken with
    respect to an input never reaches it and a third derivative would silently miss these terms.)"""

    @staticmethod
    def forward(ctx, result, *inputs):
        return result.view_as(result)

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError(
            "the native symmetric contraction is differentiable twice (forces and force training); a third "
            "derivative is not implemented: use backend 'torch'"
        )


def _guard(results, *inputs):
    if not torch.is_grad_enabled():
        return results
    linked = [t for t in inputs if t is not None and t.requires_grad]
    if not linked:
        return results
    return tuple(None if r is None else _NoThirdOrder.apply(r, *linked) for r in results)


class _InputGrad(torch.autograd.Function):
    """``ga = d/da <gbar, B(a; V)>``; linear in ``V`` and ``gbar``."""

    @staticmethod
    def forward(ctx, call: _Call, a, v, gbar):
        ctx.call = call
        ctx.save_for_backward(a, v, gbar)
        return call.run(2, a, v=v, gbar=gbar)

    @staticmethod
    def backward(ctx, u):
        a, v, gbar = ctx.saved_tensors
        call, need = ctx.call, ctx.needs_input_grad
        d_a = call.run(2, a, u=u, v=v, gbar=gbar) if need[1] else None  # Hessian-vector products of monomials
        d_v = call.run(1, a, u=u, gbar=gbar) if need[2] else None
        d_gbar = call.run(0, a, u=u, v=v) if need[3] else None
        return None, *_guard((d_a, d_v, d_gbar), a, v, gbar, u)


class _WeightGrad(torch.autograd.Function):
    """``gV = d/dV <gbar, B(a; V)>``, summed over the nodes of each element; linear in ``gbar``."""

    @staticmethod
    def forward(ctx, call: _Call, a, gbar):
        ctx.call = call
        ctx.save_for_backward(a, gbar)
        return call.run(1, a, gbar=gbar)

    @staticmethod
    def backward(ctx, gv_bar):
        a, gbar = ctx.saved_tensors
        call, need = ctx.call, ctx.needs_input_grad
        d_a = call.run(2, a, v=gv_bar, gbar=gbar) if need[1] else None
        d_gbar = call.run(0, a, v=gv_bar) if need[2] else None
        return None, *_guard((d_a, d_gbar), a, gbar, gv_bar)


def contract_native(tables: NativeTables, a: torch.Tensor, species: torch.Tensor, weight: torch.Tensor):
    """``B [N, D_out, C]`` for ``a [N, D, C]``, element indices ``species [N]`` and weights ``[Z, n_w, C]``."""
    if a.device.type != "cpu":
        raise ValueError(f"Backend.NATIVE runs on the CPU; got {a.device} tensors (use 'auto' or 'torch')")
    species = species.to(torch.int64).contiguous()
    if species.numel() and (int(species.min()) < 0 or int(species.max()) >= weight.shape[0]):
        raise ValueError(
            f"element indices must be in [0, {weight.shape[0]}), got {species.min()}..{species.max()}"
        )
    v = tables.fold(weight.to(a.dtype))
    call = _Call(tables, species, a.shape[0], a.shape[2], weight.shape[0], a.dtype)
    return _Contract.apply(call, a, v)
