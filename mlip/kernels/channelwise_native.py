"""``Backend.NATIVE`` channel-wise product: fused C++ loops on the CPU, gather and scatter included.

The product of :mod:`mlip.kernels.channelwise` is the derivative of the 4-linear form

.. math::  T(x, y, w, g) = \\sum_e \\sum_{ijk} C_{ijk} \\sum_c x_{s(e) i c}\\, y_{e j}\\, w_{e p(k) c}\\, g_{r(e) k c}

with respect to ``g`` (``s``/``r``: senders/receivers, ``p(k)``: the path of output component ``k``, ``C`` the
CG table with :math:`\\sqrt{2 l_3 + 1}` folded in). Its vector-Jacobian products are ``dT/dx``, ``dT/dy`` and
``dT/dw`` with the output gradient in the ``g`` slot, and the derivative of any slot in the direction of another
is again a slot with one argument replaced, so one custom operator, ``torch.ops.mlip.channelwise_slot`` (a
``torch.library`` op with a fake implementation for ``torch.compile`` and an autograd formula that calls the op
again), over the four compiled slots gives gradients of every order: forces (first backward) and the force loss (double backward) included.

Each call is one pass over the edges without ``[E, D_out, C]`` intermediates (the PyTorch backend materialises
those per output group, and its batched products over edges have inner sizes of 1-9); the scatter into receivers
and the gather from senders are part of the loop. The kernels are in ``native_channelwise.cpp``.
"""

from __future__ import annotations

import ctypes

import torch
from torch import nn

from mlip.kernels.channelwise_descriptor import ChannelwiseTPDescriptor, split_groups
from mlip.kernels.native import entry, load_library
from mlip.kernels.tracing import is_tracing

_SLOTS = ("g", "x", "y", "w")  # slot numbers of the C entry point: 0 = forward product, 1-3 = gradients
_P = ctypes.c_void_p
_I = ctypes.c_int64


__all__ = ["ChannelwiseTPNative"]


def _entry(dtype: torch.dtype):
    return entry("channelwise", "mlip_cw", dtype, [_I, _P, _P, _P, _P, _P, _P, _P, _P, _P, _I, _I, _P, _I])


def _tables(descriptor: ChannelwiseTPDescriptor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Sparse CG table: int32 ``[ai | aj | kpath | kistart | kilen]``, float64 values, and ``MAXI``."""
    s1, s2 = descriptor.irreps_in1.slices(), descriptor.irreps_in2.slices()
    maxi = max(descriptor.irreps_in1[p.i1].dim for p in descriptor.paths)
    ai, aj, vals, kpath, kistart, kilen = [], [], [], [], [], []
    k0 = 0
    for p_idx, (p, c) in enumerate(zip(descriptor.paths, descriptor.path_coefficients())):
        for a, b, m in torch.nonzero(c.abs() > 1e-14).tolist():
            ai.append((k0 + m) * maxi + a)
            aj.append(s2[p.i2].start + b)
            vals.append(float(c[a, b, m]))
        dim_out = p.ir_out.dim
        kpath += [p_idx] * dim_out
        kistart += [s1[p.i1].start] * dim_out
        kilen += [descriptor.irreps_in1[p.i1].dim] * dim_out
        k0 += dim_out
    itab = torch.tensor(ai + aj + kpath + kistart + kilen, dtype=torch.int32)
    return itab, torch.tensor(vals, dtype=torch.float64), maxi


_SHAPES = {  # the shape of each slot's tensor from (n_x, n_g, E) and dims = (D1, D2, D_out, P, C, MAXI, nnz)
    "x": lambda n_x, n_g, e, d: (n_x, d[0], d[4]),
    "y": lambda n_x, n_g, e, d: (e, d[1]),
    "w": lambda n_x, n_g, e, d: (e, d[3], d[4]),
    "g": lambda n_x, n_g, e, d: (n_g, d[2], d[4]),
}

torch.library.define(
    "mlip::channelwise_slot",
    "(int slot, Tensor itab, Tensor values, Tensor? x, Tensor? y, Tensor? w, Tensor? g, Tensor senders, "
    "Tensor receivers, SymInt[] dims, SymInt n_x, SymInt n_g) -> Tensor",
)


def _slot_args(x, y, w, g) -> dict[str, torch.Tensor | None]:
    return {"x": x, "y": y, "w": w, "g": g}


@torch.library.impl("mlip::channelwise_slot", "CPU")
def _slot_cpu(slot, itab, values, x, y, w, g, senders, receivers, dims, n_x, n_g):
    """``dT/d(slot)`` by the compiled kernel: the other three of ``x, y, w, g`` given, the one in ``slot`` None."""
    name = _SLOTS[slot]
    args = _slot_args(x, y, w, g)
    dtype = next(t.dtype for t in args.values() if t is not None)
    n_edges = senders.shape[0]
    ptr = {}
    for key, t in args.items():
        if key == name:
            ptr[key] = None
            continue
        shape = _SHAPES[key](n_x, n_g, n_edges, dims)
        if t is None or t.dtype != dtype or tuple(t.shape) != shape:
            got = "None" if t is None else f"{tuple(t.shape)} {t.dtype}"
            raise ValueError(f"{key}: expected {shape} {dtype}, got {got}")
        args[key] = t.contiguous()  # kept alive through the call
        ptr[key] = args[key].data_ptr()
    # index tables as the kernel reads them (a compiled graph may hand over other layouts); named: alive through the call
    senders, receivers = senders.to(torch.int64).contiguous(), receivers.to(torch.int64).contiguous()
    itab = itab.to(torch.int32).contiguous()
    out = torch.zeros(_SHAPES[name](n_x, n_g, n_edges, dims), dtype=dtype)
    c_dims = (ctypes.c_int64 * 7)(*dims)
    values = values.to(dtype)  # a named reference: alive through the call
    _entry(dtype)(
        slot, c_dims, itab.data_ptr(), values.data_ptr(), ptr["x"], ptr["y"], ptr["w"], ptr["g"],
        senders.data_ptr(), receivers.data_ptr(), n_edges, out.shape[0], out.data_ptr(), torch.get_num_threads(),
    )  # fmt: skip
    return out


@torch.library.register_fake("mlip::channelwise_slot")
def _slot_fake(slot, itab, values, x, y, w, g, senders, receivers, dims, n_x, n_g):
    like = next(t for t in (x, y, w, g) if t is not None)
    return like.new_empty(_SHAPES[_SLOTS[slot]](n_x, n_g, senders.shape[0], dims))


def _slot_setup(ctx, inputs, output) -> None:
    slot, itab, values, x, y, w, g, senders, receivers, dims, n_x, n_g = inputs
    ctx.save_for_backward(x, y, w, g)
    ctx.static = (slot, itab, values, senders, receivers, dims, n_x, n_g)


def _slot_backward(ctx, grad):
    """The slot's output is linear in each of the other three arguments, and ``T`` is symmetric in its four
    slots' roles: ``d/d(name) <grad, dT/d(slot)> = dT/d(name)`` with ``grad`` in ``slot`` (module docstring)."""
    slot, itab, values, senders, receivers, dims, n_x, n_g = ctx.static
    args = _slot_args(*ctx.saved_tensors)
    args[_SLOTS[slot]] = grad
    grads = {}
    for k, name in enumerate(("x", "y", "w", "g")):
        if ctx.needs_input_grad[3 + k] and name != _SLOTS[slot]:
            a = dict(args, **{name: None})
            grads[name] = torch.ops.mlip.channelwise_slot(
                _SLOTS.index(name),
                itab,
                values,
                a["x"],
                a["y"],
                a["w"],
                a["g"],
                senders,
                receivers,
                dims,
                n_x,
                n_g,
            )
    return (
        None,
        None,
        None,
        grads.get("x"),
        grads.get("y"),
        grads.get("w"),
        grads.get("g"),
        None,
        None,
        None,
        None,
        None,
    )


torch.library.register_autograd("mlip::channelwise_slot", _slot_backward, setup_context=_slot_setup)


class ChannelwiseTPNative(nn.Module):
    """The channel-wise product through the compiled CPU kernels (float32 or float64 CPU tensors).

    Same call signature and shapes as :class:`mlip.kernels.channelwise.ChannelwiseTPTorch`: ``x [N_x, D1, C]``
    (gathered with ``senders``, else ``[E, D1, C]``), ``y [E, D2]``, ``w [E, P, C]`` -> ``[E or num_receivers,
    D_out, C]``; :meth:`forward_groups` returns views of that one output per output-irrep group.
    Building the first instance compiles the kernels (:func:`mlip.kernels.native.load_library`).
    """

    def __init__(self, descriptor: ChannelwiseTPDescriptor) -> None:
        super().__init__()
        self.descriptor = descriptor
        load_library("channelwise")  # fail here, with the compiler's message, not in the first forward
        itab, values, maxi = _tables(descriptor)
        d = descriptor
        # (D1, D2, D_out, P, C, MAXI, nnz) of the kernel; C (here -1) is the input's, per call
        self.dims = (
            d.irreps_in1.dim,
            d.irreps_in2.dim,
            d.irreps_out.dim,
            d.num_paths,
            -1,
            maxi,
            values.numel(),
        )
        self.register_buffer("itab", itab, persistent=False)
        self.register_buffer("cg_values", values, persistent=False)
        self._groups = descriptor.groups

    def forward(self, x, y, w, senders=None, receivers=None, num_receivers=None) -> torch.Tensor:
        d = self.descriptor
        if x.device.type != "cpu":
            raise ValueError(
                f"Backend.NATIVE runs on the CPU; got {x.device} tensors (use 'auto' or 'torch')"
            )
        n_edges = y.shape[0]
        if x.dim() != 3 or x.shape[1] != d.irreps_in1.dim:
            raise ValueError(f"x must be [N, {d.irreps_in1.dim}, C] for {d.irreps_in1}, got {tuple(x.shape)}")
        if senders is None:
            if x.shape[0] != n_edges:
                raise ValueError(
                    f"without senders x must have one row per edge ({n_edges}), got {x.shape[0]}"
                )
            senders = torch.arange(n_edges)
        if receivers is None:
            n_g, receivers = n_edges, torch.arange(n_edges)
        else:
            if num_receivers is None:
                raise ValueError("num_receivers is required with receivers")
            n_g = num_receivers
        if senders.shape != (n_edges,) or receivers.shape != (n_edges,):
            raise ValueError(f"senders and receivers must be [E={n_edges}]")
        senders = senders.to(torch.int64).contiguous()
        receivers = receivers.to(torch.int64).contiguous()
        if not is_tracing():
            for name, idx, bound in (("senders", senders, x.shape[0]), ("receivers", receivers, n_g)):
                if n_edges and (int(idx.min()) < 0 or int(idx.max()) >= bound):
                    raise ValueError(
                        f"{name} must be in [0, {bound}), got {int(idx.min())}..{int(idx.max())}"
                    )
        if y.dtype != x.dtype or w.dtype != x.dtype:
            raise ValueError(f"x, y, w must share a dtype, got {x.dtype}, {y.dtype}, {w.dtype}")
        return torch.ops.mlip.channelwise_slot(
            0,
            self.itab,
            self.cg_values,
            x,
            y,
            w,
            None,
            senders,
            receivers,
            [*self.dims[:4], x.shape[2], *self.dims[5:]],
            x.shape[0],
            n_g,
        )

    def forward_groups(self, x, y, w, senders=None, receivers=None, num_receivers=None) -> list[torch.Tensor]:
        """The output as ``[E or num_receivers, P_g, 2l+1, C]`` views, one per run of equal output irreps."""
        return split_groups(self.forward(x, y, w, senders, receivers, num_receivers), self._groups)

    def extra_repr(self) -> str:
        d = self.descriptor
        return f"{d.irreps_in1} x {d.irreps_in2} -> {d.irreps_out}, {self.cg_values.numel()} nonzeros"
