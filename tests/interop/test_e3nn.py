"""e3nn layouts: conversions round-trip, and a rotation acts the same in both layouts (mlip's wigner_d on
channel-last features equals e3nn's D_from_matrix on the converted ones)."""

import pytest
import torch

o3 = pytest.importorskip("e3nn.o3")

from mlip.interop.e3nn import from_e3nn_irreps, from_e3nn_layout, to_e3nn_irreps, to_e3nn_layout  # noqa: E402
from mlip.kernels import Irreps, wigner_d  # noqa: E402


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_layouts_round_trip_and_rotate_alike(dtype):
    irreps, channels = Irreps("0e+1o+2e+1e+3o"), 5
    x = torch.randn(7, irreps.dim, channels, dtype=dtype, generator=torch.Generator().manual_seed(0))
    y = to_e3nn_layout(x, irreps)
    e3 = to_e3nn_irreps(irreps, channels)
    assert y.shape == (7, e3.dim)
    assert torch.equal(from_e3nn_layout(y, irreps, channels), x)
    assert from_e3nn_irreps(e3) == (irreps, channels)
    from scipy.spatial.transform import Rotation

    rotation = torch.tensor(Rotation.random(random_state=1).as_matrix())
    ours = torch.einsum("ij,njc->nic", wigner_d(irreps, rotation).to(dtype), x)
    theirs = y @ e3.D_from_matrix(rotation).to(dtype).T
    # e3nn's D matrices (l <= 3) carry errors of about 1e-6 (2.6e-6 measured on these unit-variance features in
    # float64); a wrong block order, sign or basis would differ by O(1).
    torch.testing.assert_close(to_e3nn_layout(ours, irreps), theirs, atol=2e-5, rtol=0)


def test_block_order_is_mul_major():
    x = torch.arange(2 * 4 * 3, dtype=torch.float64).reshape(2, 4, 3)  # irreps 0e+1o, 3 channels
    y = to_e3nn_layout(x, "0e+1o")
    assert y[0, :3].tolist() == x[0, 0, :].tolist()  # 3x0e: one scalar per channel
    assert y[0, 3:6].tolist() == x[0, 1:4, 0].tolist()  # first 1o vector: channel 0's three components


def test_mixed_multiplicities_and_wrong_shapes_are_refused():
    with pytest.raises(ValueError, match="same multiplicity"):
        from_e3nn_irreps("8x0e+4x1o")
    with pytest.raises(ValueError, match="expected"):
        to_e3nn_layout(torch.zeros(3, 5, 2), "0e+1o")
    with pytest.raises(ValueError, match="expected"):
        from_e3nn_layout(torch.zeros(3, 7), "0e+1o", 2)
