"""mlip's edge products behind e3nn's tensor-product interface (e3nn layouts in and out).

Two modules, both called like an e3nn ``TensorProduct`` with external per-edge weights
(``shared_weights=False, internal_weights=False``), as the convolutions of NequIP and MACE use it:
``tp(x [E, irreps_in1.dim], y [E, irreps_in2.dim], weight [E, weight_numel]) -> [E, irreps_out.dim]``, all in
e3nn's mul-major layout (:mod:`mlip.interop.e3nn`). Both also take ``senders, receivers, num_receivers``: then
``x`` is per node ``[N, irreps_in1.dim]``, the gather ``x[senders]`` and the sum over ``receivers`` happen inside
mlip's kernel (no ``[E, dim]`` copies of the node features), and the result is ``[num_receivers, irreps_out.dim]``.

:class:`ChannelwiseTensorProduct`
    A drop-in for ``e3nn.o3.TensorProduct(irreps_in1, irreps_in2, irreps_out, instructions)`` whose
    instructions are all ``uvu``: same constructor arguments, same weight layout, same outputs. Instruction
    ``k = (i1, i2, i_out, "uvu", has_weight[, path_weight])`` computes, per channel ``u``,

    .. math::  z^{(k)}_{u,m_3} = \\alpha_k\\, w_{k,u} \\sum_{m_1 m_2} C^{l_1 l_2 l_3}_{m_1 m_2 m_3}
               x_{u,m_1} y_{m_2}, \\qquad
               \\alpha_k^2 = \\frac{n_{irrep}(l_1,l_2,l_3)\\; \\mathrm{path\\_weight}_k}{n_{path}(k)}

    with ``C`` the unit-norm Clebsch–Gordan tensor (e3nn's ``wigner_3j``), ``n_irrep = 2l_3+1``
    (``"component"``), ``(2l_1+1)(2l_2+1)`` (``"norm"``) or 1 (``"none"``), and ``n_path`` the number of
    instructions writing to ``i_out`` (``"element"`` and ``"path"``, which agree when ``mul_in2 = 1`` and the
    input variances are one) or 1 (``"none"``); instructions writing to one ``i_out`` are summed. This is
    e3nn 0.5/0.6's ``TensorProduct`` normalisation with unit input variances. mlip's CG kernel carries
    ``sqrt(2l_3+1) C``, so ``alpha_k / sqrt(2l_3+1)`` is folded into the weights.
:class:`EdgeProduct`
    Any kind of mlip edge product (CG, Gaunt FFT or grid, vector grid, CP) with e3nn layouts: ``irreps_out``
    and ``weight_numel`` are the product's own (:class:`~mlip.kernels.product.EdgeProductDescriptor`), so an
    e3nn layer that sizes its radial network by ``tp.weight_numel`` and its next layer by ``tp.irreps_out``
    takes it unchanged.

Restrictions (checked, ``ValueError``): ``irreps_in1`` has one multiplicity ``C`` on every block (mlip's
channel-last features), ``irreps_in2`` has multiplicity 1 on every block (spherical harmonics), and every output
block has multiplicity ``C``. ``in1_var``, ``in2_var``, ``out_var`` other than ones are not taken.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from mlip.errors import MLIPInputError
from mlip.interop.e3nn import from_e3nn_irreps, from_e3nn_layout, to_e3nn_irreps, to_e3nn_layout
from mlip.kernels import Irrep, Irreps
from mlip.kernels.backend import Backend
from mlip.kernels.product import EdgeProductDescriptor, ProductKind, edge_product

try:
    from e3nn import o3
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("mlip.interop.e3nn_products needs e3nn: pip install e3nn") from err

__all__ = ["ChannelwiseTensorProduct", "EdgeProduct"]

_IRREP_NORMS = ("component", "norm", "none")
_PATH_NORMS = ("element", "path", "none")


def _inputs(irreps_in1, irreps_in2) -> tuple[o3.Irreps, o3.Irreps, Irreps, Irreps, int]:
    """e3nn and mlip forms of both inputs, and the channel count; refuses what has no channel-last form."""
    e1, e2 = o3.Irreps(irreps_in1), o3.Irreps(irreps_in2)
    ours1, channels = from_e3nn_irreps(e1)
    if any(mul != 1 for mul, _ in e2):
        raise ValueError(
            f"irreps_in2 must have multiplicity 1 on every block (spherical harmonics), got {e2}"
        )
    return e1, e2, ours1, Irreps([Irrep(ir.l, ir.p) for _, ir in e2]), channels


class _E3nnLayout(nn.Module):
    """Shared call path: e3nn layouts -> mlip kernel ``[.., D, C]`` -> output blocks -> e3nn layout."""

    irreps_in1: o3.Irreps
    irreps_in2: o3.Irreps
    irreps_out: o3.Irreps
    weight_numel: int

    def _check(self, x, y, weight, senders) -> None:
        edges = y.shape[0]
        rows = x.shape[0] if senders is None else senders.shape[0]
        if x.ndim != 2 or x.shape[1] != self.irreps_in1.dim:
            raise ValueError(
                f"x must be [E or N, {self.irreps_in1.dim}] ({self.irreps_in1}), got {list(x.shape)}"
            )
        if y.shape != (rows, self.irreps_in2.dim):
            raise ValueError(
                f"y must be [E={rows}, {self.irreps_in2.dim}] ({self.irreps_in2}), got {list(y.shape)}"
            )
        if weight.shape != (edges, self.weight_numel):
            raise ValueError(
                f"weight must be [E={edges}, {self.weight_numel}] (per edge), got {list(weight.shape)}"
            )

    def _run(self, x, y, w, senders, receivers, num_receivers, groups: bool = False):
        """mlip kernel output ``[E or num_receivers, kernel irreps_out.dim, C]``, or its ``forward_groups``."""
        if (receivers is None) != (num_receivers is None):
            raise ValueError("receivers and num_receivers go together")
        x = from_e3nn_layout(x, self._ours_in1, self._channels)
        run = self.kernel.forward_groups if groups else self.kernel
        return run(x, y, w, senders, receivers, num_receivers)


class ChannelwiseTensorProduct(_E3nnLayout):
    """A drop-in for e3nn's ``TensorProduct`` with ``uvu`` instructions (see the module docstring).

    Args:
        irreps_in1: e3nn irreps of ``x``, one multiplicity ``C`` (``"32x0e+32x1o"``).
        irreps_in2: e3nn irreps of ``y``, multiplicity 1 (``"0e+1o+2e"``).
        irreps_out: e3nn irreps of the output; block ``i_out`` has multiplicity ``C``.
        instructions: ``(i1, i2, i_out, "uvu", has_weight[, path_weight])``, as e3nn takes them.
        irrep_normalization, path_normalization: as e3nn's.
        backend: mlip backend of the CG kernel (``"auto"``: cuEquivariance on CUDA, native kernels on CPU).

    Shapes: ``forward(x [E, irreps_in1.dim], y [E, irreps_in2.dim], weight [E, weight_numel])`` ->
    ``[E, irreps_out.dim]``; with ``senders, receivers [E]``: ``x [N, irreps_in1.dim]`` -> ``[num_receivers,
    irreps_out.dim]``. ``weight`` is e3nn's layout: ``C`` weights per weighted instruction, in instruction order.
    """

    def __init__(
        self,
        irreps_in1: o3.Irreps | str,
        irreps_in2: o3.Irreps | str,
        irreps_out: o3.Irreps | str,
        instructions: Sequence[tuple],
        *,
        irrep_normalization: str = "component",
        path_normalization: str = "element",
        backend: Backend | str = Backend.AUTO,
    ) -> None:
        super().__init__()
        if irrep_normalization not in _IRREP_NORMS or path_normalization not in _PATH_NORMS:
            raise ValueError(
                f"irrep_normalization must be one of {_IRREP_NORMS} and path_normalization one of {_PATH_NORMS}, "
                f"got {irrep_normalization!r}, {path_normalization!r}"
            )
        self.irreps_in1, self.irreps_in2, self._ours_in1, ours2, self._channels = _inputs(
            irreps_in1, irreps_in2
        )
        self.irreps_out = o3.Irreps(irreps_out)
        ins = [self._instruction(k, i) for k, i in enumerate(instructions)]
        self.instructions = ins
        filt = Irreps(
            list(dict.fromkeys(Irrep(self.irreps_out[i[2]].ir.l, self.irreps_out[i[2]].ir.p) for i in ins))
        )
        desc = EdgeProductDescriptor(irreps_in1=self._ours_in1, irreps_in2=ours2, irreps_out_filter=filt)
        self.kernel = edge_product(desc, Backend(backend), channels=self._channels)
        self._set_maps(desc, ins, irrep_normalization, path_normalization)

    def _instruction(self, k: int, ins: tuple) -> tuple[int, int, int, bool, float]:
        if len(ins) not in (5, 6) or ins[3] != "uvu":
            raise ValueError(
                f"instruction {k} {ins}: only (i1, i2, i_out, 'uvu', has_weight[, path_weight]) is taken"
            )
        i1, i2, i_out, _, has_weight, *rest = ins
        for i, irreps, name in (
            (i1, self.irreps_in1, "i1"),
            (i2, self.irreps_in2, "i2"),
            (i_out, self.irreps_out, "i_out"),
        ):
            if not 0 <= i < len(irreps):
                raise ValueError(f"instruction {k} {ins}: {name}={i} is not a block of {irreps}")
        ir1, ir2, (mul, ir3) = self.irreps_in1[i1].ir, self.irreps_in2[i2].ir, self.irreps_out[i_out]
        if ir3 not in ir1 * ir2:
            raise ValueError(f"instruction {k} {ins}: {ir1} x {ir2} does not produce {ir3}")
        if mul != self._channels:
            raise ValueError(
                f"instruction {k} {ins}: output block {mul}x{ir3} needs multiplicity {self._channels}"
            )
        return i1, i2, i_out, bool(has_weight), float(rest[0]) if rest else 1.0

    def _set_maps(self, desc, ins, irrep_normalization, path_normalization) -> None:
        """Where each instruction's weights go among the kernel's paths (with its factor), and where each kernel
        output component goes in ``irreps_out``."""
        paths = {(p.i1, p.i2, p.ir_out): n for n, p in enumerate(desc.channelwise.paths)}
        path_of, factor = [], []
        for k, (i1, i2, i_out, _, path_weight) in enumerate(ins):
            ir1, ir2, ir3 = self.irreps_in1[i1].ir, self.irreps_in2[i2].ir, self.irreps_out[i_out].ir
            n = paths[(i1, i2, Irrep(ir3.l, ir3.p))]
            if n in path_of:
                raise ValueError(f"instruction {k}: the coupling ({i1}, {i2}) -> {ir3} appears twice")
            path_of.append(n)
            n_irrep = {"component": ir3.dim, "norm": ir1.dim * ir2.dim, "none": 1}[irrep_normalization]
            shared = sum(1 for j in ins if j[2] == i_out)
            n_path = {"element": shared, "path": shared, "none": 1}[path_normalization]
            factor.append(math.sqrt(n_irrep * path_weight / n_path / ir3.dim))
        self.weight_numel = self._channels * sum(1 for i in ins if i[3])
        self._num_paths = desc.num_weights
        self.register_buffer("_path_of", torch.tensor(path_of), persistent=False)
        self.register_buffer("_factor", torch.tensor(factor, dtype=torch.float64), persistent=False)
        self.register_buffer("_weighted", torch.tensor([i[3] for i in ins]), persistent=False)
        self._dense = sorted(path_of) == list(range(self._num_paths)) and all(i[3] for i in ins)
        instruction_of = [path_of.index(n) for n in range(self._num_paths)] if self._dense else []
        self.register_buffer(
            "_instruction_of", torch.tensor(instruction_of, dtype=torch.long), persistent=False
        )
        # the kernel's output groups (one tensor [R, P_g, 2l+1, C] per run of equal irreps, forward_groups) and
        # the paths of each summed into each block of irreps_out; paths no instruction uses get weight 0 and go
        # nowhere
        group_of = {
            n: (g, n - p0) for g, (p0, p1, _) in enumerate(desc.channelwise.groups) for n in range(p0, p1)
        }
        self._sources = tuple(
            tuple(group_of[n] for n, i in zip(path_of, ins) if i[2] == i_out)
            for i_out in range(len(self.irreps_out))
        )

    def kernel_weights(self, weight: torch.Tensor) -> torch.Tensor:
        """e3nn's ``[E, weight_numel]`` -> the kernel's ``[E, P, C]``, normalisation factors included."""
        edges, c = weight.shape[0], self._channels
        factor = self._factor.to(weight.dtype)[:, None]
        if self._dense:  # every path has one weighted instruction: a reordering, no scatter
            return (
                weight.view(edges, -1, c).index_select(1, self._instruction_of) * factor[self._instruction_of]
            )
        per_instruction = weight.new_ones(edges, len(self.instructions), c)
        if self.weight_numel:
            per_instruction[:, self._weighted] = weight.view(edges, -1, c)
        w = weight.new_zeros(edges, self._num_paths, c)
        return w.index_copy(1, self._path_of, per_instruction * factor)

    def forward(self, x, y, weight, senders=None, receivers=None, num_receivers=None) -> torch.Tensor:
        self._check(x, y, weight, senders)
        w = self.kernel_weights(weight)
        groups = self._run(x, y, w, senders, receivers, num_receivers, groups=True)
        # unbind, add, transpose and one concatenation: their double backward allocates no full-size zero buffers
        # (slices and in-place copies into an output would, once per block)
        paths = [g.unbind(1) for g in groups]
        rows, blocks = groups[0].shape[0], []
        for (mul, ir), sources in zip(self.irreps_out, self._sources):
            if not sources:
                blocks.append(w.new_zeros(rows, mul * ir.dim))
                continue
            block = paths[sources[0][0]][sources[0][1]]
            for g, j in sources[1:]:
                block = block + paths[g][j]
            blocks.append(block.transpose(1, 2).reshape(rows, -1))  # [R, 2l+1, C] -> e3nn's [R, C * (2l+1)]
        return torch.cat(blocks, dim=1)

    @classmethod
    def from_e3nn(
        cls, tp: o3.TensorProduct, *, backend: Backend | str = Backend.AUTO
    ) -> ChannelwiseTensorProduct:
        """The drop-in for an existing e3nn ``TensorProduct`` (its irreps and instructions; the normalisation
        is read off e3nn's per-instruction factors, so any of e3nn's options carries over). Only a product with
        per-edge weights (``shared_weights=False``, ``internal_weights=False``) has a drop-in: a shared-weights one
        is refused rather than its weights dropped."""
        if tp.shared_weights or tp.internal_weights:
            raise MLIPInputError(
                "from_e3nn: this TensorProduct has shared (internal) weights, which ChannelwiseTensorProduct does not "
                "hold; build the e3nn product with shared_weights=False, internal_weights=False and pass its weights "
                "per edge (tp.weight expanded to [E, weight_numel])"
            )
        ins = [(i.i_in1, i.i_in2, i.i_out, i.connection_mode, i.has_weight, 1.0) for i in tp.instructions]
        new = cls(
            tp.irreps_in1,
            tp.irreps_in2,
            tp.irreps_out,
            ins,
            irrep_normalization="none",
            path_normalization="none",
            backend=backend,
        )
        # e3nn's instruction.path_weight is its final factor alpha_k; ours (with "none") is 1 / sqrt(2l3+1)
        factor = [i.path_weight / math.sqrt(tp.irreps_out[i.i_out].ir.dim) for i in tp.instructions]
        new._factor = torch.tensor(factor, dtype=torch.float64)
        return new


class EdgeProduct(_E3nnLayout):
    """An mlip edge product of any kind with e3nn's layouts (see the module docstring).

    Args:
        irreps_in1: e3nn irreps of ``x``, one multiplicity ``C``. Kinds other than CG need ``0e+1o+2e+..``.
        irreps_in2: e3nn irreps of ``y``, multiplicity 1.
        irreps_out_filter: irreps the output may hold (multiplicities ignored).
        kind: :class:`~mlip.kernels.product.ProductKind` (``"cg"``, ``"gaunt_grid"``, ...).
        backend: mlip backend (``"auto"``; kinds other than CG have the PyTorch one).

    Attributes: ``irreps_out`` (e3nn, ``C x`` each block of the product's output), ``weight_numel`` (``C`` times
    the product's weights per channel: one per path for CG, one per input degree for the Gaunt kinds), and
    ``descriptor``. ``weight [E, weight_numel]`` is read as ``[E, num_weights, C]``.
    """

    def __init__(
        self,
        irreps_in1: o3.Irreps | str,
        irreps_in2: o3.Irreps | str,
        irreps_out_filter: o3.Irreps | str,
        *,
        kind: ProductKind | str = ProductKind.CG,
        backend: Backend | str = Backend.AUTO,
    ) -> None:
        super().__init__()
        self.irreps_in1, self.irreps_in2, self._ours_in1, ours2, self._channels = _inputs(
            irreps_in1, irreps_in2
        )
        filt = Irreps([Irrep(ir.l, ir.p) for _, ir in o3.Irreps(irreps_out_filter)])
        self.descriptor = EdgeProductDescriptor(
            irreps_in1=self._ours_in1, irreps_in2=ours2, irreps_out_filter=filt, kind=ProductKind(kind)
        )
        self.kernel = edge_product(self.descriptor, Backend(backend), channels=self._channels)
        self.irreps_out = to_e3nn_irreps(self.descriptor.irreps_out, self._channels)
        self.weight_numel = self.descriptor.num_weights * self._channels

    def forward(self, x, y, weight, senders=None, receivers=None, num_receivers=None) -> torch.Tensor:
        self._check(x, y, weight, senders)
        w = weight.view(weight.shape[0], self.descriptor.num_weights, self._channels)
        out = self._run(x, y, w, senders, receivers, num_receivers)
        return to_e3nn_layout(out, self.descriptor.irreps_out)
