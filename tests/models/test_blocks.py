"""The model blocks used on their own, as in someone else's GNN: documented shapes and equivariance in float64."""

import torch

from mlip.kernels import Backend, Irreps, spherical_harmonics, wigner_d
from mlip.models import EquivariantRMSNorm, InteractionBlock, ProductBlock
from mlip.nn import GridMLP, SplineRadial
from mlip.testing.physics import random_rotation

HIDDEN = Irreps.spherical_harmonics(2)
SH = Irreps.spherical_harmonics(2)
C, N, E = 4, 6, 20


def _graph(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    vectors = torch.randn(E, 3, dtype=torch.float64, generator=g)
    vectors = vectors / vectors.norm(dim=-1, keepdim=True) * (1.0 + 2.5 * torch.rand(E, 1, generator=g))
    edge_index = torch.randint(0, N, (2, E), generator=g)
    h = torch.randn(N, HIDDEN.dim, C, dtype=torch.float64, generator=g)
    species = torch.randint(0, 2, (N,), generator=g)
    return vectors, edge_index, h, species


def _rotate(x: torch.Tensor, irreps: Irreps, q: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njc->nic", wigner_d(irreps, q), x)


def _interaction() -> InteractionBlock:
    torch.manual_seed(0)
    return InteractionBlock(irreps_node=HIDDEN, irreps_sh=SH, irreps_skip=HIDDEN, channels=C, num_basis=8,
                            radial_mlp=(8,), num_elements=2, avg_num_neighbors=3.0, backend=Backend.TORCH,
                            dtype=torch.float64, radial_net="spline", r_max=4.0, irreps_out=HIDDEN)  # fmt: skip


def test_interaction_block_with_spline_radial_is_equivariant_and_has_the_documented_shapes():
    block = _interaction()
    vectors, edge_index, h, species = _graph()
    q = torch.tensor(random_rotation(3), dtype=torch.float64)

    def run(v, x):
        return block(x, spherical_harmonics(2, v), v.norm(dim=-1), species, edge_index)

    a, sc = run(vectors, h)
    assert a.shape == (N, HIDDEN.dim, C)
    assert sc.shape == (N, HIDDEN.dim, C)
    a_rot, sc_rot = run(vectors @ q.T, _rotate(h, HIDDEN, q))
    assert (a_rot - _rotate(a, HIDDEN, q)).abs().max() < 1e-10 * a.abs().max()
    assert (sc_rot - _rotate(sc, HIDDEN, q)).abs().max() < 1e-10 * sc.abs().max()


def test_norm_and_grid_mlp_compose_equivariantly_on_a_fine_grid():
    _, _, h, _ = _graph(1)
    q = torch.tensor(random_rotation(4), dtype=torch.float64)
    torch.manual_seed(0)
    mixer = GridMLP(irreps_in=HIDDEN, irreps_out=HIDDEN, channels_in=C, channels_out=C, grid_channels=4,
                    hidden=8, resolution=16, dtype=torch.float64)  # fmt: skip
    norm = EquivariantRMSNorm()
    out = mixer(norm(h))
    assert out.shape == h.shape
    assert (
        mixer(norm(_rotate(h, HIDDEN, q))) - _rotate(out, HIDDEN, q)
    ).abs().max() < 1e-10 * out.abs().max()


def test_product_block_maps_messages_to_node_features():
    torch.manual_seed(0)
    block = ProductBlock(irreps_in=SH, irreps_out=Irreps.spherical_harmonics(1), channels=C, correlation=2,
                         num_elements=2, backend=Backend.TORCH, dtype=torch.float64)  # fmt: skip
    _, _, a, species = _graph(2)
    sc = torch.zeros(N, 4, C, dtype=torch.float64)
    q = torch.tensor(random_rotation(5), dtype=torch.float64)
    out = block(a, species, sc)
    assert out.shape == (N, 4, C)
    rotated = block(_rotate(a, SH, q), species, sc)
    assert (rotated - _rotate(out, Irreps.spherical_harmonics(1), q)).abs().max() < 1e-10 * out.abs().max()


def test_spline_radial_gives_per_edge_weights():
    spline = SplineRadial(r_max=4.0, num_out=7, num_knots=16, dtype=torch.float64)
    assert spline(torch.linspace(0.5, 4.5, 9, dtype=torch.float64)).shape == (9, 7)
