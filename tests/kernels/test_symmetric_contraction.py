"""Symmetric contraction: basis properties, backends against the dense float64 reference, equivariance."""

import pytest
import torch

from mlip.kernels import Backend, Irreps, SymmetricContraction, SymmetricContractionDescriptor, wigner_d
from mlip.kernels.symmetric_basis import symmetric_basis


def test_basis_counts_and_selection_rules():
    irreps = Irreps.spherical_harmonics(1)  # 0e + 1o
    # Sym^2(0e+1o) -> 0e: a0^2 and |a1|^2 ; -> 1e: none (the cross product is antisymmetric)
    assert symmetric_basis(irreps, 2, Irreps("0e")[0]).num_basis == 2
    assert symmetric_basis(irreps, 2, Irreps("1e")[0]).num_basis == 0
    assert symmetric_basis(irreps, 2, Irreps("1o")[0]).num_basis == 1  # a0 * a1


def _module(backend, dtype=torch.float64, lmax=2, out="0e+1o", correlation=3):
    torch.manual_seed(0)
    desc = SymmetricContractionDescriptor(Irreps.spherical_harmonics(lmax), Irreps(out), correlation)
    return SymmetricContraction(desc, channels=3, num_elements=2, backend=backend, dtype=dtype)


@pytest.mark.parametrize("backend", [Backend.TORCH, Backend.NATIVE, Backend.CUEQUIVARIANCE])
def test_backend_matches_dense_reference(backend):
    ref = _module(Backend.REFERENCE)
    mod = _module(backend)
    mod.load_state_dict(ref.state_dict())
    g = torch.Generator().manual_seed(1)
    a = torch.randn(6, ref.descriptor.irreps_in.dim, 3, dtype=torch.float64, generator=g, requires_grad=True)
    species = torch.tensor([0, 1, 1, 0, 0, 1])
    out_ref, out = ref(a, species), mod(a, species)
    assert (out - out_ref).abs().max() < 1e-12
    probe = torch.randn_like(out)
    ga_ref, gw_ref = torch.autograd.grad((out_ref * probe).sum(), (a, ref.weight), create_graph=True)
    ga, gw = torch.autograd.grad((out * probe).sum(), (a, mod.weight), create_graph=True)
    assert (ga - ga_ref).abs().max() < 1e-12
    assert (gw - gw_ref).abs().max() < 1e-12
    (gg_ref,) = torch.autograd.grad(ga_ref.pow(2).sum(), ref.weight)
    (gg,) = torch.autograd.grad(ga.pow(2).sum(), mod.weight)
    assert (gg - gg_ref).abs().max() < 1e-10


@pytest.mark.parametrize("backend", [Backend.TORCH, Backend.NATIVE])
@pytest.mark.parametrize("improper", [False, True])
def test_equivariance_float64(improper, backend):
    mod = _module(backend, lmax=3)
    d = mod.descriptor
    g = torch.Generator().manual_seed(2)
    rot = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=g))[0]
    rot = rot * torch.det(rot) * (-1 if improper else 1)
    a = torch.randn(5, d.irreps_in.dim, 3, dtype=torch.float64, generator=g)
    species = torch.tensor([0, 1, 0, 1, 1])
    d_in, d_out = wigner_d(d.irreps_in, rot), wigner_d(d.irreps_out, rot)
    out = mod(torch.einsum("ij,njc->nic", d_in, a), species)
    expected = torch.einsum("ij,njc->nic", d_out, mod(a, species))
    assert (out - expected).abs().max() < 1e-10 * expected.abs().max()


@pytest.mark.parametrize("backend", [Backend.TORCH, Backend.NATIVE])
def test_float32_close_to_float64(backend):
    m64 = _module(backend)
    m32 = _module(backend, dtype=torch.float32)
    m32.load_state_dict({k: v.float() for k, v in m64.state_dict().items()})
    a = torch.randn(4, m64.descriptor.irreps_in.dim, 3, dtype=torch.float64)
    s = torch.tensor([0, 1, 0, 1])
    assert (m32(a.float(), s).double() - m64(a, s)).abs().max() < 1e-4


@pytest.mark.parametrize("channels", [3, 32], ids=["runtime-width", "width-32"])
@pytest.mark.parametrize("correlation", [2, 3])
def test_native_second_order_matches_torch(correlation, channels):
    """Force training's double backward: the loss on the input gradient differentiated w.r.t. A and W."""
    torch.manual_seed(0)
    desc = SymmetricContractionDescriptor(Irreps.spherical_harmonics(3), Irreps("0e+1o+2e"), correlation)
    ref = SymmetricContraction(
        desc, channels=channels, num_elements=3, backend=Backend.TORCH, dtype=torch.float64
    )
    nat = SymmetricContraction(
        desc, channels=channels, num_elements=3, backend=Backend.NATIVE, dtype=torch.float64
    )
    nat.load_state_dict(ref.state_dict())
    g = torch.Generator().manual_seed(3)
    a = torch.randn(9, desc.irreps_in.dim, channels, dtype=torch.float64, generator=g, requires_grad=True)
    species = torch.tensor([0, 2, 2, 1, 0, 2, 1, 1, 0])
    results = []
    for mod in (ref, nat):
        out = mod(a, species)
        probe = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
        ga, gw = torch.autograd.grad((out * probe).sum(), (a, mod.weight), create_graph=True)
        loss = ga.pow(2).sum() + (gw * torch.cos(gw)).sum()
        results.append((out, ga, gw, *torch.autograd.grad(loss, (a, mod.weight))))
    for x, y in zip(*results):
        torch.testing.assert_close(y, x, rtol=1e-10, atol=1e-10)


def test_native_gradcheck_gradgradcheck_and_no_third_order():
    mod = _module(Backend.NATIVE)
    g = torch.Generator().manual_seed(4)
    a = torch.randn(4, mod.descriptor.irreps_in.dim, 3, dtype=torch.float64, generator=g, requires_grad=True)
    species = torch.tensor([1, 0, 1, 1])
    assert torch.autograd.gradcheck(lambda x: mod(x, species), (a,))
    assert torch.autograd.gradgradcheck(lambda x: mod(x, species), (a,))
    (ga,) = torch.autograd.grad(mod(a, species).pow(2).sum(), a, create_graph=True)
    (gga,) = torch.autograd.grad(ga.pow(2).sum(), a, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiable twice"):
        torch.autograd.grad(gga.sum(), a)


def test_native_rejects_element_index_out_of_range():
    mod = _module(Backend.NATIVE)
    a = torch.randn(2, mod.descriptor.irreps_in.dim, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"element indices must be in \[0, 2\)"):
        mod(a, torch.tensor([0, 2]))
