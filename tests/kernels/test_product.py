"""The edge-product interface: descriptor validation, every kind against its float64 reference, equivariance,
gradients."""

import pytest
import torch

from mlip.kernels import Irreps, wigner_d
from mlip.kernels.channelwise import ChannelwiseTPReference
from mlip.kernels.cp import fit_cp
from mlip.kernels.edge_products import CPEdgeProduct, cp_coupling
from mlip.kernels.gaunt import degree_index
from mlip.kernels.gaunt_grid import gaunt_product_reference
from mlip.kernels.product import EdgeProductDescriptor, ProductKind, edge_product, pseudo_partners
from mlip.kernels.vector_grid import VectorGridTP

SH3 = Irreps.spherical_harmonics(3)
KINDS = list(ProductKind)


def _descriptor(kind, l1=1, l2=3, filt=None):
    filt = filt if filt is not None else SH3 + pseudo_partners(SH3)
    return EdgeProductDescriptor(
        irreps_in1=Irreps.spherical_harmonics(l1), irreps_in2=Irreps.spherical_harmonics(l2),
        irreps_out_filter=filt, kind=kind,
    )  # fmt: skip


def _graph(desc, dtype=torch.float64, nodes=5, edges=11, channels=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(nodes, desc.irreps_in1.dim, channels, dtype=dtype, generator=gen)
    y = torch.randn(edges, desc.irreps_in2.dim, dtype=dtype, generator=gen)
    w = torch.randn(edges, desc.num_weights, channels, dtype=dtype, generator=gen)
    senders = torch.randint(0, nodes, (edges,), generator=gen)
    receivers = torch.randint(0, nodes, (edges,), generator=gen)
    return x, y, w, senders, receivers


def _reference(desc, x, y, w, senders, receivers, nodes):
    """Per-edge float64 formula, then the sum over receivers."""
    xe = x[senders]
    if desc.kind is ProductKind.CG:
        out = ChannelwiseTPReference(desc.channelwise)(xe, y, w)
    else:
        l1, l2, lo = desc.lmax1, desc.lmax2, desc.lmax_out
        u, v = w[:, : l1 + 1], w[:, l1 + 1 :]
        xw = xe * u[:, degree_index(l1)]
        yw = y[:, :, None] * v[:, degree_index(l2)]
        if desc.kind is ProductKind.CP:
            out = torch.einsum("ijk,eic,ejc->ekc", cp_coupling(desc), xw, yw)
        else:
            natural = [ir for ir in desc.irreps_out if ir.p == (-1) ** ir.l]
            lo = max(ir.l for ir in natural)
            pad = max(l1, l2)
            xp = torch.nn.functional.pad(xw, (0, 0, 0, (pad + 1) ** 2 - xw.shape[1]))
            yp = torch.nn.functional.pad(yw, (0, 0, 0, (pad + 1) ** 2 - yw.shape[1]))
            out = gaunt_product_reference(xp, yp, pad, pad, lo)
            if desc.kind is ProductKind.VECTOR_GRID:
                odd = VectorGridTP(pad, pad, desc.lmax_out)(xp, yp)
                rows = [
                    torch.arange(ir.l * ir.l, (ir.l + 1) ** 2) for ir in desc.irreps_out if ir not in natural
                ]
                out = torch.cat([out, odd[:, torch.cat(rows)]], dim=1)
    return out.new_zeros(nodes, *out.shape[1:]).index_add_(0, receivers, out)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("l1", "l2"), [(0, 3), (1, 3), (2, 2)])
def test_kind_matches_reference(kind, l1, l2):
    desc = _descriptor(kind, l1, l2)
    module = edge_product(desc)
    if kind is ProductKind.CP:
        module = CPEdgeProduct(desc, fit_cp(cp_coupling(desc), 10**6))  # exact factors
    x, y, w, s, r = _graph(desc)
    out = module(x, y, w, s, r, 5)
    assert out.shape == (5, desc.irreps_out.dim, 3)
    ref = _reference(desc, x, y, w, s, r, 5)
    assert (out - ref).abs().max() < 1e-10 * max(1.0, float(ref.abs().max()))


def test_gaunt_fft_and_grid_agree_and_vector_adds_odd_paths():
    outs = {}
    for kind in (ProductKind.GAUNT_FFT, ProductKind.GAUNT_GRID, ProductKind.VECTOR_GRID):
        desc = _descriptor(kind, 2, 3)
        outs[kind] = edge_product(desc)(*_graph(desc), 5)
    n = outs[ProductKind.GAUNT_GRID].shape[1]
    assert (outs[ProductKind.GAUNT_FFT] - outs[ProductKind.GAUNT_GRID]).abs().max() < 1e-10
    assert (outs[ProductKind.VECTOR_GRID][:, :n] - outs[ProductKind.GAUNT_GRID]).abs().max() < 1e-10
    assert outs[ProductKind.VECTOR_GRID][:, n:].abs().max() > 1e-3  # the odd paths are there


@pytest.mark.parametrize("kind", KINDS)
def test_kind_is_o3_equivariant(kind):
    desc = _descriptor(kind, 1, 3)
    module = edge_product(desc)
    if kind is ProductKind.CP:
        module = CPEdgeProduct(desc, fit_cp(cp_coupling(desc), 10**6))
    x, y, w, s, r = _graph(desc)
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3)))
    for rot in (q * torch.det(q), -q * torch.det(q)):  # a rotation, then a rotation times inversion
        d1, d2, do = (wigner_d(i, rot) for i in (desc.irreps_in1, desc.irreps_in2, desc.irreps_out))
        lhs = module(torch.einsum("ij,njc->nic", d1, x), y @ d2.T, w, s, r, 5)
        rhs = torch.einsum("ij,njc->nic", do, module(x, y, w, s, r, 5))
        assert (lhs - rhs).abs().max() < 1e-10


@pytest.mark.parametrize("kind", KINDS)
def test_kind_gradcheck(kind):
    desc = _descriptor(kind, 1, 2)
    module = edge_product(desc)
    x, y, w, s, r = _graph(desc, nodes=3, edges=4, channels=2)
    args = [t.requires_grad_(True) for t in (x, y, w)]
    assert torch.autograd.gradcheck(lambda a, b, c: module(a, b, c, s, r, 3), args)


def test_fitted_cp_error_is_recorded_and_bounds_output_error():
    desc = _descriptor(ProductKind.CP, 1, 3, filt=SH3)
    exact = CPEdgeProduct(desc, fit_cp(cp_coupling(desc), 10**6))
    fitted = CPEdgeProduct(desc, fit_cp(cp_coupling(desc), 20))
    assert exact.relative_error == 0.0
    assert 0.0 < fitted.relative_error < 1.0
    x, y, w, s, r = _graph(desc)
    err = (fitted(x[s], y, w) - exact(x[s], y, w)).norm(dim=1)  # per edge and channel, no scatter
    xw = x[s] * w[:, degree_index(1)]
    yw = y[:, :, None] * w[:, 2 + degree_index(3)]
    # ‖M̂ - M‖_op <= ‖M̂ - M‖_F = relative_error ‖M‖_F for the trilinear form
    bound = fitted.relative_error * cp_coupling(desc).norm() * xw.norm(dim=1) * yw.norm(dim=1)
    assert torch.all(err <= bound * (1 + 1e-9))
    assert err.max() > 1e-6  # the approximation is visible


def test_descriptor_rejects_bad_irreps_and_options():
    with pytest.raises(ValueError, match="natural parity"):
        EdgeProductDescriptor(
            irreps_in1=Irreps("0e+1e"), irreps_in2=SH3, irreps_out_filter=SH3, kind="gaunt_grid"
        )
    with pytest.raises(ValueError, match="cp_rank"):
        EdgeProductDescriptor(irreps_in1=SH3, irreps_in2=SH3, irreps_out_filter=SH3, kind="cg", cp_rank=4)
    with pytest.raises(ValueError, match="produces nothing"):
        EdgeProductDescriptor(
            irreps_in1=Irreps("0e"), irreps_in2=Irreps("0e"), irreps_out_filter=Irreps("1o"), kind="cg"
        )
    with pytest.raises(ValueError, match="'gaunt'"):
        EdgeProductDescriptor(irreps_in1=SH3, irreps_in2=SH3, irreps_out_filter=SH3, kind="gaunt")
    desc = _descriptor(ProductKind.GAUNT_GRID)
    x, y, w, s, r = _graph(desc)
    with pytest.raises(ValueError, match="w must be"):
        edge_product(desc)(x, y, w[:, :2], s, r, 5)


@pytest.mark.parametrize("backend", ["reference", "native", "cuequivariance"])
def test_kinds_without_a_backend_refuse_it_instead_of_running_another(backend):
    for kind in ("gaunt_fft", "gaunt_grid", "vector_grid", "cp"):
        desc = EdgeProductDescriptor(
            irreps_in1=Irreps("0e+1o"), irreps_in2=Irreps.spherical_harmonics(2),
            irreps_out_filter=Irreps("0e+1o"), kind=kind,
        )  # fmt: skip
        with pytest.raises(ValueError, match=f"backend '{backend}' implements kind 'cg' only"):
            edge_product(desc, backend)


def test_reference_backend_of_the_cg_kind_is_the_reference():
    from mlip.kernels.channelwise import ChannelwiseTPReference, ChannelwiseTPTorch

    desc = EdgeProductDescriptor(irreps_in1=Irreps("0e+1o"), irreps_in2=Irreps.spherical_harmonics(2),
                                 irreps_out_filter=Irreps("0e+1o"), kind="cg")  # fmt: skip
    ref, fast = edge_product(desc, "reference"), edge_product(desc, "torch")
    assert isinstance(ref, ChannelwiseTPReference)
    assert isinstance(fast, ChannelwiseTPTorch)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 4, 3, dtype=torch.float64, generator=g)
    y = torch.randn(9, 9, dtype=torch.float64, generator=g)
    w = torch.randn(9, desc.num_weights, 3, dtype=torch.float64, generator=g)
    s, r = torch.randint(0, 5, (9,), generator=g), torch.randint(0, 5, (9,), generator=g)
    torch.testing.assert_close(ref(x, y, w, s, r, 5), fast(x, y, w, s, r, 5), rtol=1e-12, atol=1e-12)
    for a, b in zip(ref.forward_groups(x, y, w, s, r, 5), fast.forward_groups(x, y, w, s, r, 5)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
