"""CUDA: cuEquivariance's kernels against the float64 reference in float32 (1e-5), every product kind on CUDA
through plain PyTorch, and ``Backend.AUTO``'s choice. Skipped without a CUDA device (and, for cuEquivariance's
kernels, without ``cuequivariance-ops-torch``)."""

import pytest
import torch

from mlip.kernels import Backend, Irreps, SymmetricContraction, SymmetricContractionDescriptor
from mlip.kernels.backend import cueq_cuda_available, resolve
from mlip.kernels.channelwise import ChannelwiseTPDescriptor, ChannelwiseTPReference, channelwise_tp
from mlip.kernels.cp import fit_cp
from mlip.kernels.edge_products import CPEdgeProduct, cp_coupling
from mlip.kernels.product import EdgeProductDescriptor, ProductKind, edge_product, pseudo_partners

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
cueq_cuda = pytest.mark.skipif(not cueq_cuda_available(), reason="needs CUDA and cuequivariance-ops-torch")
SH3 = Irreps.spherical_harmonics(3)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).abs().max() / b.abs().max())


def _graph(d1, d2, num_weights, nodes=300, edges=4000, channels=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(nodes, d1, channels, dtype=torch.float64, generator=g)
    y = torch.randn(edges, d2, dtype=torch.float64, generator=g)
    w = torch.randn(edges, num_weights, channels, dtype=torch.float64, generator=g)
    snd = torch.randint(0, nodes, (edges,), generator=g)
    rcv = torch.randint(0, nodes, (edges,), generator=g)
    return x, y, w, snd, rcv


def _to_cuda32(*tensors):
    return [t.cuda().float() if t.is_floating_point() else t.cuda() for t in tensors]


@cueq_cuda
def test_cueq_channelwise_float32_matches_float64_reference():
    desc = ChannelwiseTPDescriptor(Irreps("0e+1o"), SH3, SH3)
    x, y, w, snd, rcv = _graph(desc.irreps_in1.dim, desc.irreps_in2.dim, desc.num_paths)
    ref = ChannelwiseTPReference(desc)(x[snd], y, w)
    ref = torch.zeros(x.shape[0], *ref.shape[1:], dtype=torch.float64).index_add(0, rcv, ref)
    xc, yc, wc, sc, rc = _to_cuda32(x, y, w, snd, rcv)
    xc.requires_grad_(True)
    out = channelwise_tp(desc, Backend.CUEQUIVARIANCE)(xc, yc, wc, sc, rc, x.shape[0])
    assert _relative(out, ref) < 1e-5
    # gradient against the torch backend on the same device, in float64
    x64 = x.cuda().requires_grad_(True)
    g_ref = torch.autograd.grad(
        channelwise_tp(desc, Backend.TORCH).cuda()(x64, *_cuda(y, w, snd, rcv), x.shape[0]).sum(), x64
    )
    g_out = torch.autograd.grad(out.sum(), xc)
    assert _relative(g_out[0], g_ref[0]) < 1e-5


def _cuda(*tensors):
    return [t.cuda() for t in tensors]


@cueq_cuda
def test_cueq_symmetric_contraction_float32_matches_float64_reference():
    desc = SymmetricContractionDescriptor(SH3, Irreps("0e+1o"), 3)
    torch.manual_seed(0)
    ref_module = SymmetricContraction(
        desc, channels=32, num_elements=3, backend=Backend.TORCH, dtype=torch.float64
    )
    cueq = SymmetricContraction(desc, channels=32, num_elements=3, backend=Backend.CUEQUIVARIANCE)
    cueq.load_state_dict({k: v.float() for k, v in ref_module.state_dict().items()})
    a = torch.randn(500, SH3.dim, 32, dtype=torch.float64)
    species = torch.randint(0, 3, (500,))
    ref = ref_module(a, species)
    out = cueq.cuda()(a.cuda().float(), species.cuda())
    assert _relative(out, ref) < 1e-5


@cuda
def test_auto_backend_resolves_by_device():
    assert resolve(Backend.AUTO, torch.device("cpu")) is Backend.TORCH
    expected = Backend.CUEQUIVARIANCE if cueq_cuda_available() else Backend.TORCH
    assert resolve(Backend.AUTO, torch.device("cuda")) is expected


@cuda
@pytest.mark.parametrize("kind", list(ProductKind))
def test_every_kind_runs_on_cuda(kind):
    desc = EdgeProductDescriptor(
        irreps_in1=Irreps("0e+1o"), irreps_in2=SH3, irreps_out_filter=SH3 + pseudo_partners(SH3), kind=kind
    )
    module = edge_product(desc, Backend.AUTO)
    if kind is ProductKind.CP:
        module = CPEdgeProduct(desc, fit_cp(cp_coupling(desc), 10**6))
    x, y, w, snd, rcv = _graph(desc.irreps_in1.dim, desc.irreps_in2.dim, desc.num_weights)
    ref = module(x, y, w, snd, rcv, x.shape[0])
    out = module.cuda()(*_to_cuda32(x, y, w, snd, rcv), x.shape[0])
    assert out.is_cuda
    assert _relative(out, ref) < 1e-5
