import numpy as np
import pytest
from ase import Atoms

from mlip.data import Frame, fit_e0_least_squares, resolve_e0


def _frames():
    rng = np.random.default_rng(0)
    out = []
    for _ in range(10):
        n_h, n_o = rng.integers(1, 5), rng.integers(1, 3)
        atoms = Atoms("H" * n_h + "O" * n_o, positions=rng.normal(size=(n_h + n_o, 3)) * 3)
        out.append(Frame(atoms=atoms, energy=-13.6 * n_h - 430.0 * n_o))
    return out


def test_least_squares_recovers_exact_e0():
    e0 = fit_e0_least_squares(_frames(), [1, 8])
    assert abs(e0[1] + 13.6) < 1e-9
    assert abs(e0[8] + 430.0) < 1e-9


def test_resolve_dict_and_missing():
    assert resolve_e0({"H": -1.0, "O": -2.0}, frames=[], isolated={}, atomic_numbers=[1, 8]) == {
        1: -1.0,
        8: -2.0,
    }
    with pytest.raises(ValueError, match=r"no E0 for elements \['O'\]"):
        resolve_e0("isolated", frames=[], isolated={1: -1.0}, atomic_numbers=[1, 8])
