"""``Backend.NATIVE`` channel-wise product: fused C++ loops on the CPU, gather and scatter included.

The product of :mod:`mlip.kernels.channelwise` is the derivative of the 4-linear form

.. math::  T(x, y, w, g) = \\sum_e \\sum_{ijk} C_{ijk} \\sum_c x_{s(e) i c}\\, y_{e j}\\, w_{e p(k) c}\\, g_{r(e) k c}

with respect to ``g`` (``s``/``r``: senders/receivers, ``p(k)``: the path of output component ``k``, ``C`` the
CG table with :math:`\\sqrt{2 l_3 + 1}` folded in). Its vector-Jacobian products are ``dT/dx``, ``dT/dy`` and
``dT/dw`` with the output gradient in the ``g`` slot, and the derivative of any slot in the direction of another
is again a slot with one argument replaced, so one autograd function (:class:`_Slot`) over the four compiled
slots gives gradients of every order: forces (first backward) and the force loss (double backward) included.

Each call is one pass over the edges without ``[E, D_out, C]`` intermediates (the PyTorch backend materialises
those per output group, and its batched products over edges have inner sizes of 1-9); the scatter into receivers
and the gather from senders are part of the loop. The kernels are in ``native_channelwise.cpp``.
"""

from __future__ import annotations

import ctypes

import torch
from torch import nn

from mlip.kernels.channelwise import ChannelwiseTPDescriptor, ChannelwiseTPTorch
from mlip.kernels.native import entry, load_library

_SLOTS = ("g", "x", "y", "w")  # slot numbers of the C entry point: 0 = forward product, 1-3 = gradients
_P = ctypes.c_void_p
_I = ctypes.c_int64


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


class _Plan:
    """The sizes and index arrays of one call; runs a slot of the compiled kernel."""

    def __init__(self, module: ChannelwiseTPNative, senders, receivers, n_x, n_g, n_edges, channels, dtype):
        d = module.descriptor
        self.module, self.senders, self.receivers = module, senders, receivers
        self.shapes = {
            "x": (n_x, d.irreps_in1.dim, channels),
            "y": (n_edges, d.irreps_in2.dim),
            "w": (n_edges, d.num_paths, channels),
            "g": (n_g, d.irreps_out.dim, channels),
        }
        dims = (d.irreps_in1.dim, d.irreps_in2.dim, d.irreps_out.dim, d.num_paths, channels, module.maxi)
        self.dims = (ctypes.c_int64 * 7)(*dims, module.cg_values.numel())
        self.dtype, self.n_edges = dtype, n_edges
        self.values = module.cg_values.to(dtype)
        self.fn = _entry(dtype)

    def run(self, slot: str, args: dict[str, torch.Tensor | None]) -> torch.Tensor:
        out = torch.zeros(self.shapes[slot], dtype=self.dtype)
        ptr = {}
        for name in ("x", "y", "w", "g"):
            t = args[name]
            if name == slot:
                ptr[name] = None
                continue
            if t.dtype != self.dtype or t.shape != self.shapes[name]:
                raise ValueError(
                    f"{name}: expected {self.shapes[name]} {self.dtype}, got {tuple(t.shape)} {t.dtype}"
                )
            t = t.contiguous()
            args[name] = t  # keep alive through the call
            ptr[name] = t.data_ptr()
        self.fn(
            _SLOTS.index(slot),
            self.dims,
            self.module.itab.data_ptr(),
            self.values.data_ptr(),
            ptr["x"],
            ptr["y"],
            ptr["w"],
            ptr["g"],
            self.senders.data_ptr(),
            self.receivers.data_ptr(),
            self.n_edges,
            out.shape[0],
            out.data_ptr(),
            torch.get_num_threads(),
        )
        return out


class _Slot(torch.autograd.Function):
    """``dT/d(slot)`` from the other three arguments (the one in ``slot`` is ``None``); differentiable to any order."""

    @staticmethod
    def forward(ctx, plan: _Plan, slot: str, x, y, w, g):
        ctx.plan, ctx.slot = plan, slot
        ctx.save_for_backward(x, y, w, g)
        return plan.run(slot, {"x": x, "y": y, "w": w, "g": g})

    @staticmethod
    def backward(ctx, grad):
        x, y, w, g = ctx.saved_tensors
        args = {"x": x, "y": y, "w": w, "g": g, ctx.slot: grad}
        grads = {}
        for name, needed in zip(("x", "y", "w", "g"), ctx.needs_input_grad[2:]):
            if needed and name != ctx.slot:
                a = dict(args, **{name: None})
                grads[name] = _Slot.apply(ctx.plan, name, a["x"], a["y"], a["w"], a["g"])
        return None, None, grads.get("x"), grads.get("y"), grads.get("w"), grads.get("g")


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
        itab, values, self.maxi = _tables(descriptor)
        self.register_buffer("itab", itab, persistent=False)
        self.register_buffer("cg_values", values, persistent=False)
        self._groups = ChannelwiseTPTorch(descriptor).groups

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
            n_g = int(num_receivers)
        if senders.shape != (n_edges,) or receivers.shape != (n_edges,):
            raise ValueError(f"senders and receivers must be [E={n_edges}]")
        senders = senders.to(torch.int64).contiguous()
        receivers = receivers.to(torch.int64).contiguous()
        for name, idx, bound in (("senders", senders, x.shape[0]), ("receivers", receivers, n_g)):
            if n_edges and (int(idx.min()) < 0 or int(idx.max()) >= bound):
                raise ValueError(f"{name} must be in [0, {bound}), got {int(idx.min())}..{int(idx.max())}")
        if y.dtype != x.dtype or w.dtype != x.dtype:
            raise ValueError(f"x, y, w must share a dtype, got {x.dtype}, {y.dtype}, {w.dtype}")
        plan = _Plan(self, senders, receivers, x.shape[0], n_g, n_edges, x.shape[2], x.dtype)
        return _Slot.apply(plan, "g", x, y, w, None)

    def forward_groups(self, x, y, w, senders=None, receivers=None, num_receivers=None) -> list[torch.Tensor]:
        """The output as ``[E or num_receivers, P_g, 2l+1, C]`` views, one per run of equal output irreps."""
        out = self.forward(x, y, w, senders, receivers, num_receivers)
        groups, start = [], 0
        for p0, p1, dim in self._groups:
            width = (p1 - p0) * dim
            groups.append(out[:, start : start + width].view(out.shape[0], p1 - p0, dim, out.shape[2]))
            start += width
        return groups

    def extra_repr(self) -> str:
        d = self.descriptor
        return f"{d.irreps_in1} x {d.irreps_in2} -> {d.irreps_out}, {self.cg_values.numel()} nonzeros"
