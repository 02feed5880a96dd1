"""One interface to every edge tensor product: a descriptor (what), a kind and a backend (how).

An *edge product* combines per-channel node features ``x`` (irreps ``irreps_in1``, gathered at the senders)
with single-channel edge attributes ``y`` (irreps ``irreps_in2``, the spherical harmonics of ``r_ij``) under
per-edge weights ``w`` (the radial network's output), and sums the results over each receiver:

.. math::  m_{i} = \\sum_{j \\in N(i)} \\mathrm{TP}_{kind}\\big(x_j,\\ y_{ij};\\ w_{ij}\\big)

The kinds differ in which couplings ``(l1, l2) -> l3`` they can produce and in how weights attach to them
(see ``docs/tensor_products.md`` for the table):

``CG``
    Clebsch–Gordan channel-wise product (:mod:`mlip.kernels.channelwise`): one weight per path and channel.
``GAUNT_FFT`` / ``GAUNT_GRID``
    Gaunt product (:mod:`mlip.kernels.gaunt_fft`, :mod:`mlip.kernels.gaunt_grid`): paths with even
    ``l1 + l2 + l3`` only; weights per input degree and channel, ``w_{l1} w_{l2}`` per path.
``VECTOR_GRID``
    Gaunt product plus the vector (cross-product) grid product (:mod:`mlip.kernels.vector_grid`): the even
    paths *and* the odd ones, whose outputs are pseudotensors (``1o x 1o -> 1e``).
``CP``
    CP-factored coupling tensor with path-weight sharing (:mod:`mlip.kernels.cp`): the CG paths the filter
    keeps, all coupled with one shared set of per-degree weights.

Every kind's module has the signature ``forward(x, y, w, senders, receivers, num_receivers)`` of
:class:`~mlip.kernels.channelwise.ChannelwiseTPTorch`: ``x [N, irreps_in1.dim, C]``, ``y [E, irreps_in2.dim]``,
``w [E, num_weights, C]``, ``senders, receivers [E]`` -> ``[num_receivers, irreps_out.dim, C]``.
"""

from __future__ import annotations

from torch import nn

from mlip.kernels.backend import Backend
from mlip.kernels.channelwise import channelwise_tp
from mlip.kernels.edge_products import CPEdgeProduct, GauntEdgeProduct
from mlip.kernels.product_descriptor import EdgeProductDescriptor, ProductKind, pseudo_partners

__all__ = ["ProductKind", "pseudo_partners", "EdgeProductDescriptor", "edge_product"]


def edge_product(
    descriptor: EdgeProductDescriptor, backend: Backend = Backend.TORCH, *, channels: int | None = None
) -> nn.Module:
    """The module computing ``descriptor`` with ``backend``; never another backend than the one asked for.

    ``CG`` has every backend (:func:`~mlip.kernels.channelwise.channelwise_tp`). The other kinds have one
    implementation, plain PyTorch on any device: ``torch`` and ``auto`` give it, ``reference``, ``native`` and
    ``cuequivariance`` raise (their float64 references are functions of their own modules, used by the tests).
    ``channels``: the channel count the module will see (cuEquivariance's modules are built for it).
    """
    backend = Backend(backend)
    kind = descriptor.kind
    if kind is ProductKind.CG:
        return channelwise_tp(descriptor.channelwise, backend, channels=channels)
    if backend not in (Backend.TORCH, Backend.AUTO):
        raise ValueError(
            f"backend {backend.value!r} implements kind 'cg' only, not {kind.value!r}; use 'auto' or 'torch'"
        )
    if kind is ProductKind.CP:
        return CPEdgeProduct(descriptor)
    return GauntEdgeProduct(descriptor)
