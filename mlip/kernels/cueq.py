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

from mlip.kernels.channelwise import ChannelwiseTPDescriptor
from mlip.kernels.symmetric_contraction import SymmetricContractionDescriptor


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

    Same call signature and shapes as :class:`mlip.kernels.channelwise.ChannelwiseTPTorch`.
    """

    def __init__(self, descriptor: ChannelwiseTPDescriptor) -> None:
        super().__init__()
        self.descriptor = descriptor
        self._modules_by_key: dict[tuple, nn.Module] = {}

    def _op(self, channels: int, device: torch.device) -> nn.Module:
        key = (channels, str(device))
        if key not in self._modules_by_key:
            _, cuet = _import_cue()
            poly = channelwise_polynomial(self.descriptor, channels)
            self._modules_by_key[key] = cuet.SegmentedPolynomial(poly, method=_method(device)).to(device)
        return self._modules_by_key[key]

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
    """Symmetric contraction through cuEquivariance; weights are passed in (owned by the caller)."""

    def __init__(self, descriptor: SymmetricContractionDescriptor, *, channels: int) -> None:
        super().__init__()
        self.descriptor = descriptor
        self.channels = channels
        self._ops: dict[str, nn.Module] = {}

    def forward(self, a: torch.Tensor, species: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        key = str(a.device)
        if key not in self._ops:
            _, cuet = _import_cue()
            poly = symmetric_contraction_polynomial(self.descriptor, self.channels)
            self._ops[key] = cuet.SegmentedPolynomial(poly, method=_method(a.device)).to(a.device)
        [out] = self._ops[key](
            [weight.reshape(weight.shape[0], -1), a.reshape(a.shape[0], -1)], input_indices={0: species}
        )
        return out.reshape(a.shape[0], self.descriptor.irreps_out.dim, self.channels)
