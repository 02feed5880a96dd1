"""Channel-wise TP: torch, native and cuEquivariance backends against the float64 reference, and the reference against
e3nn's TensorProduct (an independent implementation)."""

import pytest
import torch

from mlip.kernels import Backend, ChannelwiseTPDescriptor, Irreps, channelwise_tp, wigner_d
from mlip.kernels.channelwise import ChannelwiseTPReference

DESC = ChannelwiseTPDescriptor(Irreps("0e+1o+2e"), Irreps.spherical_harmonics(3), Irreps("0e+1o+2e+3o"))
# scalar node features (MACE's first layer): the torch backend takes a broadcast path instead of a batched product
DESC_SCALAR = ChannelwiseTPDescriptor(Irreps("0e"), Irreps.spherical_harmonics(3), Irreps("0e+1o+2e+3o"))


def _inputs(dtype, n_nodes=6, n_edges=15, channels=5, seed=0, desc=DESC):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_nodes, desc.irreps_in1.dim, channels, dtype=dtype, generator=g, requires_grad=True)
    y = torch.randn(n_edges, desc.irreps_in2.dim, dtype=dtype, generator=g, requires_grad=True)
    w = torch.randn(n_edges, desc.num_paths, channels, dtype=dtype, generator=g, requires_grad=True)
    snd = torch.randint(0, n_nodes, (n_edges,), generator=g)
    rcv = torch.randint(0, n_nodes, (n_edges,), generator=g)
    return x, y, w, snd, rcv


def _reference(x, y, w, snd, rcv, desc=DESC):
    out = ChannelwiseTPReference(desc)(x[snd], y, w)
    return torch.zeros(x.shape[0], *out.shape[1:], dtype=x.dtype).index_add(0, rcv, out)


@pytest.mark.parametrize("desc", [DESC, DESC_SCALAR], ids=["vector-nodes", "scalar-nodes"])
@pytest.mark.parametrize("backend", [Backend.TORCH, Backend.NATIVE, Backend.CUEQUIVARIANCE])
def test_backend_matches_reference_values_and_gradients(backend, desc):
    x, y, w, snd, rcv = _inputs(torch.float64, desc=desc)
    ref = _reference(x, y, w, snd, rcv, desc)
    out = channelwise_tp(desc, backend)(x, y, w, snd, rcv, x.shape[0])
    assert (out - ref).abs().max() < 1e-12
    probe = torch.randn_like(ref)
    g_ref = torch.autograd.grad((ref * probe).sum(), (x, y, w), create_graph=True)
    g_out = torch.autograd.grad((out * probe).sum(), (x, y, w), create_graph=True)
    for a, b in zip(g_ref, g_out):
        assert (a - b).abs().max() < 1e-12
    # double backward (force training differentiates the gradient again)
    gg_ref = torch.autograd.grad(g_ref[1].pow(2).sum(), (x, w))
    gg_out = torch.autograd.grad(g_out[1].pow(2).sum(), (x, w))
    for a, b in zip(gg_ref, gg_out):
        assert (a - b).abs().max() < 1e-10


def test_reference_matches_e3nn_tensor_product():
    from e3nn import o3

    x, y, w, _, _ = _inputs(torch.float64, n_nodes=15, channels=3)
    c = x.shape[2]
    irreps1 = o3.Irreps("+".join(f"{c}x{ir}" for ir in DESC.irreps_in1))
    irreps2 = o3.Irreps(str(DESC.irreps_in2))
    irreps_out = o3.Irreps("+".join(f"{c}x{p.ir_out}" for p in DESC.paths))
    instructions = [(p.i1, p.i2, k, "uvu", True) for k, p in enumerate(DESC.paths)]
    tp = o3.TensorProduct(
        irreps1,
        irreps2,
        irreps_out,
        instructions,
        shared_weights=False,
        internal_weights=False,
        irrep_normalization="component",
        path_normalization="none",
    ).double()
    x_e3nn = torch.cat([x[:, s].transpose(1, 2).reshape(x.shape[0], -1) for s in DESC.irreps_in1.slices()], 1)
    out_e3nn = tp(x_e3nn, y, w.reshape(w.shape[0], -1))
    ours = ChannelwiseTPReference(DESC)(x, y, w)
    ours_flat = torch.cat(
        [ours[:, s].transpose(1, 2).reshape(x.shape[0], -1) for s in DESC.irreps_out.slices()], 1
    )
    # e3nn's tabulated 3j symbols carry ~1e-7 absolute error for l = 3 (ours are exact to 1e-13, see
    # test_cg.py), so this cross-check of conventions and normalisation cannot be tighter than that
    assert (ours_flat - out_e3nn).abs().max() < 1e-6


@pytest.mark.parametrize("backend", [Backend.TORCH, Backend.NATIVE])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equivariance(dtype, backend):
    x, y, w, _, _ = _inputs(dtype, n_nodes=15)
    rot = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5)))[
        0
    ]
    d1, d2, do = (wigner_d(ir, rot).to(dtype) for ir in (DESC.irreps_in1, DESC.irreps_in2, DESC.irreps_out))
    tp = channelwise_tp(DESC, backend)
    out = tp(torch.einsum("ij,njc->nic", d1, x), y @ d2.T, w)
    expected = torch.einsum("ij,njc->nic", do, tp(x, y, w))
    tol = 1e-12 if dtype == torch.float64 else 1e-4
    assert (out - expected).abs().max() < tol


@pytest.mark.parametrize("backend", [Backend.TORCH, Backend.NATIVE])
def test_bad_shapes_are_rejected(backend):
    x, y, w, _, _ = _inputs(torch.float64, n_nodes=15)
    with pytest.raises(ValueError, match="w"):
        channelwise_tp(DESC, backend)(x, y, w[:, :-1])
