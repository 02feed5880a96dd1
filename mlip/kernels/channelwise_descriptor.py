"""What the channel-wise (``uvu``) Clebsch–Gordan product computes: its paths, output irreps and coefficients
(the formula and normalisation are in :mod:`mlip.kernels.channelwise`). Every backend (the PyTorch reference and
module, the native CPU kernels, cuEquivariance) reads this descriptor; :func:`mlip.kernels.channelwise.channelwise_tp`
maps it and a backend to a module."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mlip.kernels.cached import cached_property
from mlip.kernels.cg import clebsch_gordan
from mlip.kernels.irreps import Irrep, Irreps

__all__ = ["TPPath", "ChannelwiseTPDescriptor", "split_groups"]


@dataclass(frozen=True)
class TPPath:
    """One coupling ``irreps_in1[i1] x irreps_in2[i2] -> ir_out``."""

    i1: int
    i2: int
    ir_out: Irrep


@dataclass(frozen=True)
class ChannelwiseTPDescriptor:
    """What the channel-wise product computes (the *what*; modules below are the *how*).

    Attributes:
        irreps_in1: per-channel irreps of the node features ``x`` ``[E, irreps_in1.dim, C]``.
        irreps_in2: irreps of the single-channel edge features ``y`` ``[E, irreps_in2.dim]``.
        irreps_out_filter: irreps a path may produce; others are dropped.
    """

    irreps_in1: Irreps
    irreps_in2: Irreps
    irreps_out_filter: Irreps

    @cached_property
    def paths(self) -> tuple[TPPath, ...]:
        allowed = set(self.irreps_out_filter)
        found = [
            TPPath(i1, i2, ir)
            for i1, ir1 in enumerate(self.irreps_in1)
            for i2, ir2 in enumerate(self.irreps_in2)
            for ir in ir1 * ir2
            if ir in allowed
        ]
        return tuple(sorted(found, key=lambda p: (p.ir_out.l, p.ir_out.p)))

    @cached_property
    def irreps_out(self) -> Irreps:
        """One block per path, in path order."""
        return Irreps([p.ir_out for p in self.paths])

    @property
    def num_paths(self) -> int:
        return len(self.paths)

    @cached_property
    def groups(self) -> tuple[tuple[int, int, int], ...]:
        """``(first path, end path, 2l+1)`` of each run of paths with one output irrep, in output order: the
        blocks of :meth:`mlip.kernels.channelwise.ChannelwiseTPTorch.forward_groups` (every backend's ``forward_groups`` layout)."""
        runs, start = [], 0
        for k, p in enumerate(self.paths):
            if k + 1 == len(self.paths) or self.paths[k + 1].ir_out != p.ir_out:
                runs.append((start, k + 1, p.ir_out.dim))
                start = k + 1
        return tuple(runs)

    def path_coefficients(self, dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
        """``sqrt(2l3+1) * C^{l1 l2 l3}``, one ``[2l1+1, 2l2+1, 2l3+1]`` tensor per path."""
        out = []
        for p in self.paths:
            l1, l2 = self.irreps_in1[p.i1].l, self.irreps_in2[p.i2].l
            out.append(math.sqrt(p.ir_out.dim) * clebsch_gordan(l1, l2, p.ir_out.l, dtype=dtype))
        return out

    def dense_coefficients(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """All paths in one tensor ``[irreps_in2.dim, irreps_in1.dim, irreps_out.dim]`` (zeros elsewhere)."""
        dense = torch.zeros(self.irreps_in2.dim, self.irreps_in1.dim, self.irreps_out.dim, dtype=dtype)
        s1, s2, so = self.irreps_in1.slices(), self.irreps_in2.slices(), self.irreps_out.slices()
        for k, (p, c) in enumerate(zip(self.paths, self.path_coefficients(dtype))):
            dense[s2[p.i2], s1[p.i1], so[k]] = c.permute(1, 0, 2)
        return dense


def split_groups(out: torch.Tensor, groups: tuple[tuple[int, int, int], ...]) -> list[torch.Tensor]:
    """Views of ``out [R, D_out, C]`` as ``[R, P_g, 2l+1, C]``, one per output-irrep group ``(p0, p1, 2l+1)`` of
    :attr:`ChannelwiseTPDescriptor.groups`: the :meth:`~mlip.kernels.channelwise.ChannelwiseTPTorch.forward_groups` layout of backends that
    compute the whole output at once."""
    views, start = [], 0
    for p0, p1, dim in groups:
        width = (p1 - p0) * dim
        views.append(out[:, start : start + width].view(out.shape[0], p1 - p0, dim, out.shape[2]))
        start += width
    return views
