"""Backend.NATIVE (compiled CPU kernels): values and gradients of every order against the float64 reference, the
compile-time channel widths and the runtime one, threads, float32, the build's errors."""

import os

import pytest
import torch

from mlip.kernels import Backend, ChannelwiseTPDescriptor, Irreps, channelwise_tp
from mlip.kernels.backend import resolve
from mlip.kernels.channelwise import ChannelwiseTPReference
from mlip.kernels.native import NativeKernelError, native_available

if not native_available():  # pragma: no cover - every CI machine has a C++ compiler
    if os.environ.get("CI"):
        raise RuntimeError("the native kernels must build in CI (a C++ compiler is part of the CI machine)")
    pytest.skip("no C++ compiler: Backend.NATIVE unavailable", allow_module_level=True)

MACE_L2 = ChannelwiseTPDescriptor(
    Irreps("0e+1o"), Irreps.spherical_harmonics(3), Irreps.spherical_harmonics(3)
)
FACET = ChannelwiseTPDescriptor(Irreps("0e+1o+2e"), Irreps.spherical_harmonics(2), Irreps("0e+1o+2e"))
ODD = ChannelwiseTPDescriptor(Irreps("0e+1o+1e"), Irreps.spherical_harmonics(2), Irreps("0o+1e+1o+2o"))
DESCS = {"mace-layer2": MACE_L2, "facet": FACET, "odd-parities": ODD}


def _inputs(desc, dtype, *, n_nodes=7, n_edges=30, channels=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_nodes, desc.irreps_in1.dim, channels, dtype=dtype, generator=g, requires_grad=True)
    y = torch.randn(n_edges, desc.irreps_in2.dim, dtype=dtype, generator=g, requires_grad=True)
    w = torch.randn(n_edges, desc.num_paths, channels, dtype=dtype, generator=g, requires_grad=True)
    snd = torch.randint(0, n_nodes, (n_edges,), generator=g)
    rcv = torch.randint(0, n_nodes, (n_edges,), generator=g)
    return x, y, w, snd, rcv


def _reference(desc, x, y, w, snd, rcv):
    out = ChannelwiseTPReference(desc)(x[snd], y, w)
    return torch.zeros(x.shape[0], *out.shape[1:], dtype=x.dtype).index_add(0, rcv, out)


@pytest.mark.parametrize("channels", [5, 16, 32], ids=["runtime-width", "width-16", "width-32"])
@pytest.mark.parametrize("name", list(DESCS))
def test_values_and_two_orders_of_gradients_match_reference(name, channels):
    desc = DESCS[name]
    x, y, w, snd, rcv = _inputs(desc, torch.float64, channels=channels)
    ref = _reference(desc, x, y, w, snd, rcv)
    out = channelwise_tp(desc, Backend.NATIVE)(x, y, w, snd, rcv, x.shape[0])
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    probe = torch.randn_like(ref)
    g_ref = torch.autograd.grad((ref * probe).sum(), (x, y, w), create_graph=True)
    g_out = torch.autograd.grad((out * probe).sum(), (x, y, w), create_graph=True)
    for a, b in zip(g_ref, g_out):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)
    # second order as force training uses it: the loss on the gradients, differentiated again, probe included
    loss_ref = sum(
        (g * torch.linspace(-1, 1, g.numel(), dtype=g.dtype).view_as(g)).pow(2).sum() for g in g_ref
    )
    loss_out = sum(
        (g * torch.linspace(-1, 1, g.numel(), dtype=g.dtype).view_as(g)).pow(2).sum() for g in g_out
    )
    gg_ref = torch.autograd.grad(loss_ref, (x, y, w))
    gg_out = torch.autograd.grad(loss_out, (x, y, w))
    for a, b in zip(gg_ref, gg_out):
        torch.testing.assert_close(b, a, rtol=1e-11, atol=1e-11)


def test_gradcheck_and_gradgradcheck():
    x, y, w, snd, rcv = _inputs(FACET, torch.float64, n_nodes=4, n_edges=9, channels=3)
    tp = channelwise_tp(FACET, Backend.NATIVE)

    def f(x, y, w):
        return tp(x, y, w, snd, rcv, 4)

    assert torch.autograd.gradcheck(f, (x, y, w))
    assert torch.autograd.gradgradcheck(f, (x, y, w))


def test_edge_level_without_gather_or_scatter_and_forward_groups():
    x, y, w, _, _ = _inputs(MACE_L2, torch.float64, n_nodes=30, n_edges=30)
    tp = channelwise_tp(MACE_L2, Backend.NATIVE)
    ref = ChannelwiseTPReference(MACE_L2)(x, y, w)
    torch.testing.assert_close(tp(x, y, w), ref, rtol=1e-12, atol=1e-12)
    torch_groups = channelwise_tp(MACE_L2, Backend.TORCH).forward_groups(x, y, w)
    for a, b in zip(torch_groups, tp.forward_groups(x, y, w)):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)


def test_float32_close_to_float64_reference():
    x, y, w, snd, rcv = _inputs(MACE_L2, torch.float64, channels=32)
    ref = _reference(MACE_L2, x, y, w, snd, rcv)
    out = channelwise_tp(MACE_L2, Backend.NATIVE)(x.float(), y.float(), w.float(), snd, rcv, x.shape[0])
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)


def test_threads_give_the_single_thread_result():
    # enough edges (>= 256 per thread) that the kernel splits the work: scatter by node ranges, the rest by edges
    x, y, w, snd, rcv = _inputs(MACE_L2, torch.float64, n_nodes=50, n_edges=2000, channels=16)
    tp = channelwise_tp(MACE_L2, Backend.NATIVE)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 3):
            torch.set_num_threads(threads)
            out = tp(x, y, w, snd, rcv, 50)
            results.append((out, *torch.autograd.grad(out.pow(2).sum(), (x, y, w))))
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_bad_inputs_are_clear_errors():
    x, y, w, snd, rcv = _inputs(MACE_L2, torch.float64)
    tp = channelwise_tp(MACE_L2, Backend.NATIVE)
    with pytest.raises(ValueError, match="share a dtype"):
        tp(x, y.float(), w, snd, rcv, x.shape[0])
    with pytest.raises(ValueError, match="num_receivers"):
        tp(x, y, w, snd, rcv)
    with pytest.raises(TypeError, match="float32 and float64"):
        tp(x.half(), y.half(), w.half(), snd, rcv, x.shape[0])
    with pytest.raises(ValueError, match=r"x must be \[N, 4, C\]"):
        tp(x[:, :3], y, w, snd, rcv, x.shape[0])


def test_auto_picks_native_on_cpu():
    assert resolve(Backend.AUTO, torch.device("cpu")) is Backend.NATIVE


def test_missing_compiler_is_a_clear_error(monkeypatch):
    from mlip.kernels import native

    monkeypatch.setenv("CXX", "no-such-compiler-mlip")
    with pytest.raises(NativeKernelError, match="no-such-compiler-mlip"):
        native._compiler()
