import pytest

from mlip.kernels import Irrep, Irreps, parse_hidden_irreps


def test_parse_and_dims():
    irreps = Irreps("0e+1o+2e")
    assert irreps.dim == 9
    assert irreps.lmax == 2
    assert str(irreps) == "0e+1o+2e"
    assert irreps.slices()[1] == slice(1, 4)
    assert Irreps.spherical_harmonics(3) == Irreps("0e+1o+2e+3o")


def test_product_rules():
    assert Irrep(1, -1) * Irrep(1, -1) == [Irrep(0, 1), Irrep(1, 1), Irrep(2, 1)]


def test_hidden_irreps():
    assert parse_hidden_irreps("128x0e+128x1o") == (128, Irreps("0e+1o"))
    with pytest.raises(ValueError, match="one multiplicity"):
        parse_hidden_irreps("128x0e+64x1o")
    with pytest.raises(ValueError, match="cannot parse"):
        Irreps("1x")
