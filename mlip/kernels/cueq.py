"""cuEquivariance backends: our descriptors' coefficients as cuEquivariance segmented polynomials.

Both products are expressed with ``cue.SegmentedTensorProduct`` built from *our* Clebsch–Gordan and
symmetric-basis coefficients, so the weights mean exactly what they mean in the PyTorch backends and no
conversion is needed. Memory layout is ``ir_mul`` (``[dim, channels]`` per block), mlip's own layout.

On CUDA with ``cuequivariance-ops-torch-cu12`` installed, cuEquivariance runs its fused kernels; elsewhere it
runs its ``naive`` PyTorch method (slow, but exact: it is how the CPU tests check this backend).
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from mlip.kernels.channelwise_descriptor import ChannelwiseTPDescriptor, split_groups
from mlip.kernels.symmetric_descriptor import SymmetricContractionDescriptor
from mlip.kernels.tracing import is_tracing

__all__ = [
    "ChannelwiseTPCueq",
    "SymmetricContractionCueq",
    "channelwise_polynomial",
    "symmetric_contraction_polynomial",
]


def _import_cue():
    try:
        import cuequivariance as cue
        import cuequivariance_torch as cuet
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Backend.CUEQUIVARIANCE needs cuequivariance and cuequivariance-torch "
            "(pip install cuequivariance-torch; on GPU also cuequivariance-ops-torch-cu12)"
        ) from err
    return cue, cuet


def _method(device: torch.device) -> str:
    return "uniform_1d" if device.type == "cuda" else "naive"


def _methods() -> tuple[str, ...]:
    """The execution methods to build at construction: ``naive`` (any device), and ``uniform_1d`` (CUDA kernels)
    when CUDA is up."""
    return ("naive", "uniform_1d") if torch.cuda.is_available() else ("naive",)


def _build(poly, methods: tuple[str, ...]) -> nn.ModuleDict:
    """cuEquivariance's modules for ``poly``, one per method. Their buffers (coefficients derived from our own
    tables) are made non-persistent: they move with ``.to()`` but stay out of ``state_dict``, so a model file does
    not depend on the cuEquivariance version or on which methods this machine could build."""
    _, cuet = _import_cue()
    ops = nn.ModuleDict({m: cuet.SegmentedPolynomial(poly, method=m) for m in methods})
    for module in ops.modules():
        module._non_persistent_buffers_set.update(module._buffers.keys())
    return ops


def _pick(ops: nn.ModuleDict, device: torch.device, what: str) -> nn.Module:
    method = _method(device)
    if method not in ops:
        raise RuntimeError(
            f"{what} was built without cuEquivariance's {method!r} method (CUDA was not up when it was built); "
            f"build the model in a process where torch.cuda.is_available()"
        )
    return ops[method]


@lru_cache(maxsize=32)
def channelwise_polynomial(descriptor: ChannelwiseTPDescriptor, channels: int):
    """``out[k u] = sum_ij c_ijk w[u] x[i u] y[j]`` for every path, as a ``cue.SegmentedPolynomial``.

    Inputs: weights ``[P * C]`` (path-major), x ``[D1 * C]``, y ``[D2]``; output ``[D_out * C]``.
    """
    cue, _ = _import_cue()
    d = cue.SegmentedTensorProduct.from_subscripts("u,iu,j,ku+ijk")
    for ir in descriptor.irreps_in1:
        d.add_segment(1, (ir.dim, channels))
    for ir in descriptor.irreps_in2:
        d.add_segment(2, (ir.dim,))
    for p, c in zip(descriptor.paths, descriptor.path_coefficients()):
        d.add_path(None, p.i1, p.i2, None, c=c.numpy())
    return cue.SegmentedPolynomial.eval_last_operand(d)


class ChannelwiseTPCueq(nn.Module):
    """Channel-wise product through cuEquivariance, with fused gather (senders) and scatter (receivers).

    Same call signature and shapes as :class:`mlip.kernels.channelwise.ChannelwiseTPTorch`. cuEquivariance's
    modules depend on the channel count: with ``channels`` given they are built here, as registered submodules
    (what ``torch.compile`` and ``.to()`` need; the models always pass it); without, on the first eager call for
    each channel count (kernel-level use), and a compiled call for a count not built is an error.
    """

    def __init__(self, descriptor: ChannelwiseTPDescriptor, *, channels: int | None = None) -> None:
        super().__init__()
        self.descriptor = descriptor
        self._groups = descriptor.groups
        self.ops = nn.ModuleDict()
        if channels is not None:
            self._add(channels)

    def _add(self, channels: int) -> None:
        self.ops[str(channels)] = _build(channelwise_polynomial(self.descriptor, channels), _methods())

    def _op(self, channels: int, device: torch.device) -> nn.Module:
        if str(channels) not in self.ops:
            if is_tracing():
                raise RuntimeError(
                    f"ChannelwiseTPCueq was built for channels {list(self.ops)}, called with {channels}: "
                    "pass channels= at construction to compile it"
                )
            self._add(channels)
            self.ops.to(device)
        return _pick(self.ops[str(channels)], device, "ChannelwiseTPCueq")

    def forward(self, x, y, w, senders=None, receivers=None, num_receivers=None) -> torch.Tensor:
        d = self.descriptor
        channels = x.shape[2]
        op = self._op(channels, x.device)
        n_edges = y.shape[0]
        inputs = [w.reshape(n_edges, -1), x.reshape(x.shape[0], -1), y]
        kwargs = {}
        if senders is not None:
            kwargs["input_indices"] = {1: senders}
        if receivers is not None:
            if num_receivers is None:
                raise ValueError("num_receivers is required with receivers")
            kwargs["output_indices"] = {0: receivers}
            kwargs["output_shapes"] = {0: x.new_empty(num_receivers, 1)}
        [out] = op(inputs, **kwargs)
        return out.reshape(out.shape[0], d.irreps_out.dim, channels)

    def forward_groups(self, x, y, w, senders=None, receivers=None, num_receivers=None) -> list[torch.Tensor]:
        """The output as ``[E or num_receivers, P_g, 2l+1, C]`` views, one per run of equal output irreps."""
        return split_groups(self.forward(x, y, w, senders, receivers, num_receivers), self._groups)


@lru_cache(maxsize=32)
def symmetric_contraction_polynomial(descriptor: SymmetricContractionDescriptor, channels: int):
    """All degrees of the symmetric contraction as one ``cue.SegmentedPolynomial``.

    Inputs: weights ``[num_weights * C]`` (ordered ``ν, L, η, c``), A ``[D * C]``; output ``[D_out * C]``.
    Each monomial coefficient ``U[M, t, η]`` is placed at the sorted index ``t`` of the dense coefficient tensor;
    contracting with ``A ⊗ ... ⊗ A`` gives the same polynomial.
    """
    cue, _ = _import_cue()
    dim = descriptor.irreps_in.dim
    polys = []
    for nu in range(1, descriptor.correlation + 1):
        letters = "abcd"[:nu]
        d = cue.SegmentedTensorProduct.from_subscripts(f"w_{'_'.join(letters)}_i+{letters}iw")
        for i in range(1, nu + 1):
            d.add_segment(i, (dim,))
        for basis, ir in zip(
            descriptor.bases[(nu - 1) * len(descriptor.irreps_out) :], descriptor.irreps_out
        ):
            if basis.num_basis == 0:
                d.add_segment(nu + 1, {"i": ir.dim})
                continue
            full = torch.zeros((dim,) * nu + (ir.dim, basis.num_basis), dtype=torch.float64)
            full[tuple(basis.monomials.T)] = basis.U.permute(1, 0, 2)
            d.add_path(None, *(0,) * nu, None, c=full.numpy())
        d = d.flatten_coefficient_modes()
        d = d.append_modes_to_all_operands("u", {"u": channels})
        operand_in = cue.SegmentedOperand(ndim=1, segments=[(channels,)] * dim)
        polys.append(
            cue.SegmentedPolynomial(
                [d.operands[0], operand_in], [d.operands[-1]], [(cue.Operation([0] + [1] * nu + [2]), d)]
            )
        )
    return cue.SegmentedPolynomial.stack(polys, [True, False, False])


class SymmetricContractionCueq(nn.Module):
    """Symmetric contraction through cuEquivariance; weights are passed in (owned by the caller). Its
    cuEquivariance modules are built here, registered (see :class:`ChannelwiseTPCueq`)."""

    def __init__(self, descriptor: SymmetricContractionDescriptor, *, channels: int) -> None:
        super().__init__()
        self.descriptor = descriptor
        self.channels = channels
        self.ops = _build(symmetric_contraction_polynomial(descriptor, channels), _methods())

    def forward(self, a: torch.Tensor, species: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        op = _pick(self.ops, a.device, "SymmetricContractionCueq")
        [out] = op(
            [weight.reshape(weight.shape[0], -1), a.reshape(a.shape[0], -1)], input_indices={0: species}
        )
        return out.reshape(a.shape[0], self.descriptor.irreps_out.dim, self.channels)
