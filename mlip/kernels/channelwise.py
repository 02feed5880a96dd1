"""Channel-wise (``uvu``) Clebsch–Gordan tensor product: the MACE / NequIP message.

For every path ``p = (l1, l2 -> l3)`` and channel ``c``

.. math::  z^{(p)}_{k c} = \\sqrt{2 l_3 + 1}\\; w_{p c} \\sum_{i j} C^{l_1 l_2 l_3}_{i j k}\\, x_{i c}\\, y_{j}

with ``x`` the (gathered) node features ``[E, D1, C]``, ``y`` one channel of edge features ``[E, D2]`` (the
spherical harmonics) and ``w`` per-edge weights ``[E, P, C]`` (the radial network's output). ``C`` is the
unit-norm real CG tensor, so with component-normalised ``x, y`` every output component has unit variance
(e3nn's ``irrep_normalization="component"`` for ``uvu``; see e3nn's ``TensorProduct`` docs).

Each path writes its own output block: the output irreps list one irrep per path, in path order. Paths are
enumerated as ``for i1 in irreps_in1: for i2 in irreps_in2: for ir in i1 * i2`` and kept when ``ir`` is in
``irreps_out_filter`` (parity included), then stably sorted by the output irrep, so equal irreps are adjacent.

Cost: ``O(E * C * sum_p (2l1+1)(2l2+1)(2l3+1))`` multiply-adds; memory of the output ``E * dim_out * C``.
"""

from __future__ import annotations

import torch
from torch import nn

from mlip.kernels.backend import Backend, auto_choice, cueq_cuda_available
from mlip.kernels.channelwise_descriptor import ChannelwiseTPDescriptor, TPPath, split_groups
from mlip.kernels.channelwise_native import ChannelwiseTPNative
from mlip.kernels.cueq import ChannelwiseTPCueq
from mlip.kernels.native import native_available

__all__ = [
    "TPPath",
    "ChannelwiseTPDescriptor",
    "ChannelwiseTPReference",
    "ChannelwiseTPTorch",
    "split_groups",
    "ChannelwiseTPAuto",
    "channelwise_tp",
]


def _check_inputs(desc: ChannelwiseTPDescriptor, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> None:
    if x.dim() != 3 or x.shape[1] != desc.irreps_in1.dim:
        raise ValueError(
            f"x must be [E, {desc.irreps_in1.dim}, C] for {desc.irreps_in1}, got {tuple(x.shape)}"
        )
    if y.shape != (x.shape[0], desc.irreps_in2.dim):
        raise ValueError(f"y must be [E={x.shape[0]}, {desc.irreps_in2.dim}], got {tuple(y.shape)}")
    if w.shape != (x.shape[0], desc.num_paths, x.shape[2]):
        raise ValueError(f"w must be [E, P={desc.num_paths}, C={x.shape[2]}], got {tuple(w.shape)}")


class ChannelwiseTPReference(nn.Module):
    """The formula of the module docstring, path by path (slow, for tests), with the call signature of every
    backend (:class:`ChannelwiseTPTorch`): the gather and the scatter are plain ``x[senders]`` and ``index_add``.

    Shapes: ``x [N_x, D1, C]`` (gathered with ``senders`` when given, else ``[E, D1, C]``), ``y [E, D2]``,
    ``w [E, P, C]`` -> ``[E, D_out, C]``, or ``[num_receivers, D_out, C]`` summed over ``receivers``.
    """

    def __init__(self, descriptor: ChannelwiseTPDescriptor) -> None:
        super().__init__()
        self.descriptor = descriptor
        for k, c in enumerate(descriptor.path_coefficients()):
            self.register_buffer(f"cg{k}", c, persistent=False)
        self._groups = descriptor.groups

    def forward(self, x, y, w, senders=None, receivers=None, num_receivers=None) -> torch.Tensor:
        d = self.descriptor
        if senders is not None:
            x = x[senders]
        _check_inputs(d, x, y, w)
        s1, s2 = d.irreps_in1.slices(), d.irreps_in2.slices()
        blocks = []
        for k, p in enumerate(d.paths):
            cg = getattr(self, f"cg{k}").to(x.dtype)
            z = torch.einsum("ijk,eic,ej->ekc", cg, x[:, s1[p.i1]], y[:, s2[p.i2]])
            blocks.append(z * w[:, k, None, :])
        out = torch.cat(blocks, dim=1)
        if receivers is None:
            return out
        if num_receivers is None:
            raise ValueError("num_receivers is required with receivers")
        return out.new_zeros(num_receivers, *out.shape[1:]).index_add(0, receivers, out)

    def forward_groups(self, x, y, w, senders=None, receivers=None, num_receivers=None) -> list[torch.Tensor]:
        """The output as ``[E or num_receivers, P_g, 2l+1, C]`` views, one per run of equal output irreps."""
        return split_groups(self.forward(x, y, w, senders, receivers, num_receivers), self._groups)


class ChannelwiseTPTorch(nn.Module):
    """Fused PyTorch channel-wise product, with optional gather of ``x`` and scatter of the output.

    Paths are grouped by output irrep (equal irreps are adjacent, see the module docstring). Per group ``g``
    with ``P_g`` paths of dimension ``2l+1`` (no Python loop over paths):

    1. ``Z_g[e, i, k] = sum_j y[e, j] * Cdense_g[j, i, k]`` — one ``[E, D2] @ [D2, D1 * K_g]`` product;
    2. ``T_g[e, k, c] = sum_i Z_g[e, i, k] x[e, i, c]`` — one batched product ``[E, K_g, D1] @ [E, D1, C]``;
    3. ``out_g = T_g.view(E, P_g, 2l+1, C) * w[:, paths_g, None, :]`` — a broadcast, no copy of the weights.

    Shapes: ``x [N_x, D1, C]`` (gathered with ``senders`` when given, else ``[E, D1, C]``), ``y [E, D2]``,
    ``w [E, P, C]``; output ``[E, D_out, C]``, or ``[num_receivers, D_out, C]`` summed over ``receivers``.
    """

    def __init__(self, descriptor: ChannelwiseTPDescriptor) -> None:
        super().__init__()
        self.descriptor = descriptor
        dense = descriptor.dense_coefficients()
        self._groups = descriptor.groups
        comp = 0
        for g, (p0, p1, dim) in enumerate(self._groups):
            width = (p1 - p0) * dim
            coeff = dense[:, :, comp : comp + width].reshape(dense.shape[0], -1)
            self.register_buffer(f"coeff{g}", coeff.contiguous(), persistent=False)
            comp += width

    @property
    def groups(self) -> list[tuple[int, int, int]]:
        """``descriptor.groups`` (:attr:`ChannelwiseTPDescriptor.groups`) as a list."""
        return list(self._groups)

    def forward_groups(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        w: torch.Tensor,
        senders: torch.Tensor | None = None,
        receivers: torch.Tensor | None = None,
        num_receivers: int | None = None,
    ) -> list[torch.Tensor]:
        """The output as one ``[E or num_receivers, P_g, 2l+1, C]`` tensor per output-irrep group.

        Keeping groups apart (no concatenation) matters for training: the double backward of a concatenation
        or a slice allocates and zero-fills full-size ``[E, D_out, C]`` buffers.
        """
        d = self.descriptor
        if senders is not None:
            x = x.index_select(0, senders)
        _check_inputs(d, x, y, w)
        n_edges, channels = x.shape[0], x.shape[2]
        out = []
        for g, (p0, p1, dim) in enumerate(self._groups):
            coeff = getattr(self, f"coeff{g}").to(y.dtype)
            if d.irreps_in1.dim == 1:
                # scalar x (a first layer): an outer product, where a batched product with an inner size of
                # one runs as a loop of tiny gemms on the CPU (several times slower than the broadcast)
                z = (y @ coeff).view(n_edges, p1 - p0, dim, 1)
                t = z * (x[:, 0, None, :] * w[:, p0:p1]).unsqueeze(2)
            else:
                z = (y @ coeff).view(n_edges, d.irreps_in1.dim, (p1 - p0) * dim)
                t = torch.bmm(z.transpose(1, 2), x).view(n_edges, p1 - p0, dim, channels)
                t = t * w[:, p0:p1, None, :]
            if receivers is not None:
                if num_receivers is None:
                    raise ValueError("num_receivers is required with receivers")
                t = t.new_zeros(num_receivers, *t.shape[1:]).index_add_(0, receivers, t)
            out.append(t)
        return out

    def forward(self, x, y, w, senders=None, receivers=None, num_receivers=None) -> torch.Tensor:
        """``[E or num_receivers, D_out, C]``; see :meth:`forward_groups` for the layout-preserving variant."""
        groups = self.forward_groups(x, y, w, senders, receivers, num_receivers)
        flat = [t.reshape(t.shape[0], -1, t.shape[-1]) for t in groups]
        return torch.cat(flat, dim=1) if len(flat) > 1 else flat[0]


class ChannelwiseTPAuto(nn.Module):
    """``Backend.AUTO``: per call, the backend :func:`~mlip.kernels.backend.resolve` picks for the input's device
    (cuEquivariance's CUDA kernels, the native CPU kernels, else :class:`ChannelwiseTPTorch`). Same call
    signature, including :meth:`forward_groups`. Every candidate is built here, as a registered submodule:
    ``torch``, ``native`` when the native kernels build, ``cueq`` when cuEquivariance's CUDA kernels import
    (it needs ``channels``)."""

    def __init__(self, descriptor: ChannelwiseTPDescriptor, *, channels: int | None = None) -> None:
        super().__init__()
        self.descriptor = descriptor
        self.torch_tp = ChannelwiseTPTorch(descriptor)
        self.native = self.cueq = None
        if native_available():
            self.native = channelwise_tp(descriptor, Backend.NATIVE)
        if cueq_cuda_available():
            self.cueq = channelwise_tp(descriptor, Backend.CUEQUIVARIANCE, channels=channels)

    def _module(self, device: torch.device) -> nn.Module:
        """:func:`~mlip.kernels.backend.auto_choice` among what was built (no environment probing in ``forward``,
        so ``torch.compile`` sees plain attribute reads)."""
        backend = auto_choice(device, native=self.native is not None, cueq=self.cueq is not None)
        return {Backend.NATIVE: self.native, Backend.CUEQUIVARIANCE: self.cueq}.get(backend, self.torch_tp)

    def forward_groups(self, x, y, w, senders=None, receivers=None, num_receivers=None) -> list[torch.Tensor]:
        return self._module(x.device).forward_groups(x, y, w, senders, receivers, num_receivers)

    def forward(self, x, y, w, senders=None, receivers=None, num_receivers=None) -> torch.Tensor:
        return self._module(x.device)(x, y, w, senders, receivers, num_receivers)


def channelwise_tp(
    descriptor: ChannelwiseTPDescriptor, backend: Backend = Backend.TORCH, *, channels: int | None = None
) -> nn.Module:
    """Module executing ``descriptor`` with ``backend``; every backend has the call signature of
    :class:`ChannelwiseTPTorch`, ``forward`` and ``forward_groups``. ``channels``: the channel count the module
    will see, which cuEquivariance's modules are built for (optional elsewhere)."""
    backend = Backend(backend)
    if backend is Backend.REFERENCE:
        return ChannelwiseTPReference(descriptor)
    if backend is Backend.TORCH:
        return ChannelwiseTPTorch(descriptor)
    if backend is Backend.AUTO:
        return ChannelwiseTPAuto(descriptor, channels=channels)
    if backend is Backend.NATIVE:
        return ChannelwiseTPNative(descriptor)
    return ChannelwiseTPCueq(descriptor, channels=channels)
