"""mlip's edge products behind e3nn's interface: the uvu drop-in equals e3nn's TensorProduct (values and
gradients, every normalisation option), the fused gather/scatter equals e3nn plus an explicit scatter, and the
Gaunt kinds run with e3nn layouts and stay equivariant."""

import pytest
import torch

o3 = pytest.importorskip("e3nn.o3")

from mlip.interop.e3nn_products import ChannelwiseTensorProduct, EdgeProduct  # noqa: E402

C = 6
IN1 = o3.Irreps(f"{C}x0e+{C}x1o+{C}x2e")
SH = o3.Irreps("0e+1o+2e+3o")
TARGET = o3.Irreps(f"{C}x0e+{C}x1o+{C}x2e+{C}x1e+{C}x3o")
# e3nn's D matrices and wigner_3j tables are float32-precise (about 1e-7 relative); a wrong coefficient, sign,
# block order or weight layout differs by O(1)
TOL = dict(atol=2e-6, rtol=1e-6)


def nequip_instructions(irreps_in1, irreps_in2, target):
    """The uvu instructions of NequIP's and MACE's convolutions (every coupling into ``target``), with the
    equal output irreps merged into one block each, so several instructions write to one output."""
    couplings = [
        (i, j, ir)
        for i, (_, ir_in) in enumerate(irreps_in1)
        for j, (_, ir_edge) in enumerate(irreps_in2)
        for ir in ir_in * ir_edge
        if ir in target
    ]
    distinct = sorted({ir for _, _, ir in couplings})
    irreps_out = o3.Irreps([(C, ir) for ir in distinct])
    return irreps_out, [(i, j, distinct.index(ir), "uvu", True) for i, j, ir in couplings]


def random_inputs(tp, edges, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(edges, tp.irreps_in1.dim, dtype=dtype, generator=g)
    y = torch.randn(edges, tp.irreps_in2.dim, dtype=dtype, generator=g)
    w = torch.randn(edges, tp.weight_numel, dtype=dtype, generator=g)
    return x, y, w


@pytest.mark.parametrize("irrep_norm", ["component", "norm", "none"])
@pytest.mark.parametrize("path_norm", ["element", "path", "none"])
def test_uvu_drop_in_equals_e3nn(irrep_norm, path_norm):
    irreps_out, ins = nequip_instructions(IN1, SH, TARGET)
    kw = dict(irrep_normalization=irrep_norm, path_normalization=path_norm)
    theirs = o3.TensorProduct(IN1, SH, irreps_out, ins, shared_weights=False, internal_weights=False, **kw)
    ours = ChannelwiseTensorProduct(IN1, SH, irreps_out, ins, backend="torch", **kw)
    assert ours.weight_numel == theirs.weight_numel
    assert max(sum(1 for i in ins if i[2] == k) for k in range(len(irreps_out))) > 1  # shared outputs covered
    x, y, w = random_inputs(theirs, 13)
    torch.testing.assert_close(ours(x, y, w), theirs.double()(x, y, w), **TOL)
    from_tp = ChannelwiseTensorProduct.from_e3nn(theirs, backend="torch")
    torch.testing.assert_close(from_tp(x, y, w), theirs(x, y, w), **TOL)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_match_e3nn_and_unweighted_paths_with_path_weights(dtype):
    irreps_out = o3.Irreps(f"{C}x0e+{C}x1o+{C}x1e")
    ins = [
        (0, 1, 1, "uvu", True, 0.5),
        (1, 0, 1, "uvu", False, 2.0),
        (1, 1, 0, "uvu", True),
        (1, 1, 2, "uvu", True),
    ]
    theirs = o3.TensorProduct(IN1, SH, irreps_out, ins, shared_weights=False, internal_weights=False).to(
        dtype
    )
    ours = ChannelwiseTensorProduct(IN1, SH, irreps_out, ins, backend="torch")
    x, y, w = (t.requires_grad_() for t in random_inputs(theirs, 9, dtype))
    a, b = theirs(x, y, w), ours(x, y, w)
    tol = TOL if dtype == torch.float64 else dict(atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(b, a, **tol)
    probe = torch.randn_like(a)
    ga = torch.autograd.grad((a * probe).sum(), (x, y, w))
    gb = torch.autograd.grad((b * probe).sum(), (x, y, w))
    for u, v in zip(gb, ga):
        torch.testing.assert_close(u, v, **tol)


def test_fused_gather_and_scatter_equal_e3nn_then_index_add():
    irreps_out, ins = nequip_instructions(IN1, SH, TARGET)
    theirs = o3.TensorProduct(IN1, SH, irreps_out, ins, shared_weights=False, internal_weights=False).double()
    ours = ChannelwiseTensorProduct(IN1, SH, irreps_out, ins, backend="torch")
    g = torch.Generator().manual_seed(3)
    nodes, edges = 5, 17
    x = torch.randn(nodes, IN1.dim, dtype=torch.float64, generator=g)
    _, y, w = random_inputs(theirs, edges, seed=4)
    src, dst = torch.randint(nodes, (edges,), generator=g), torch.randint(nodes, (edges,), generator=g)
    expected = torch.zeros(nodes, irreps_out.dim, dtype=torch.float64).index_add(0, dst, theirs(x[src], y, w))
    torch.testing.assert_close(
        ours(x, y, w, senders=src, receivers=dst, num_receivers=nodes), expected, **TOL
    )


@pytest.mark.parametrize("kind", ["cg", "gaunt_grid", "gaunt_fft", "vector_grid"])
def test_edge_product_kinds_run_on_e3nn_layouts_equivariantly(kind):
    from scipy.spatial.transform import Rotation

    irreps_in1 = o3.Irreps(f"{C}x0e+{C}x1o+{C}x2e")
    sh = o3.Irreps.spherical_harmonics(2)
    tp = EdgeProduct(irreps_in1, sh, "0e+1o+2e", kind=kind, backend="torch")
    assert tp.weight_numel % C == 0
    assert tp.irreps_out.dim > 0
    g = torch.Generator().manual_seed(5)
    x = torch.randn(8, irreps_in1.dim, dtype=torch.float64, generator=g)
    vec = torch.randn(8, 3, dtype=torch.float64, generator=g)
    y = o3.spherical_harmonics(sh, vec, normalize=True, normalization="component")
    w = torch.randn(8, tp.weight_numel, dtype=torch.float64, generator=g)
    rot = torch.tensor(Rotation.random(random_state=2).as_matrix())
    rotated = tp(
        x @ irreps_in1.D_from_matrix(rot).T,
        o3.spherical_harmonics(sh, vec @ rot.T, True, normalization="component"),
        w,
    )
    torch.testing.assert_close(rotated, tp(x, y, w) @ tp.irreps_out.D_from_matrix(rot).T, atol=2e-5, rtol=0)


def test_wrong_inputs_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="same multiplicity"):
        ChannelwiseTensorProduct("4x0e+2x1o", SH, "4x0e", [(0, 0, 0, "uvu", True)])
    with pytest.raises(ValueError, match="multiplicity 1"):
        ChannelwiseTensorProduct(IN1, "2x0e", f"{C}x0e", [(0, 0, 0, "uvu", True)])
    with pytest.raises(ValueError, match="only"):
        ChannelwiseTensorProduct(IN1, SH, f"{C}x0e", [(0, 0, 0, "uvw", True)])
    with pytest.raises(ValueError, match="does not produce"):
        ChannelwiseTensorProduct(IN1, SH, f"{C}x1e", [(0, 0, 0, "uvu", True)])
    with pytest.raises(ValueError, match="multiplicity 6"):
        ChannelwiseTensorProduct(IN1, SH, "3x0e", [(0, 0, 0, "uvu", True)])
    tp = ChannelwiseTensorProduct(IN1, SH, f"{C}x0e", [(0, 0, 0, "uvu", True)])
    with pytest.raises(ValueError, match="weight must be"):
        tp(torch.zeros(2, IN1.dim), torch.zeros(2, SH.dim), torch.zeros(2, 1))


def test_a_shared_weights_product_is_refused_not_stripped_of_its_weights():
    """Issue 33 (noticed): from_e3nn of a shared-weights TensorProduct dropped its weights without a word."""
    from mlip.errors import MLIPInputError

    irreps_out, ins = nequip_instructions(IN1, SH, TARGET)
    shared = o3.TensorProduct(IN1, SH, irreps_out, ins, shared_weights=True, internal_weights=True)
    with pytest.raises(MLIPInputError, match="shared .internal. weights"):
        ChannelwiseTensorProduct.from_e3nn(shared)
