"""The parity plot: a panel per labelled quantity, each set's RMSE and MAE in its legend (issue 33, noticed)."""

import numpy as np

from mlip.training.plots import parity_plot


def _set(n, stress: bool, shift: float):
    rng = np.random.default_rng(0)
    n_atoms = np.full(n, 4.0)
    e = rng.normal(size=n)
    f = rng.normal(size=(4 * n, 3))
    s = rng.normal(size=(n if stress else 0, 3, 3)) * 0.01
    return {"energy_ref": e, "energy_pred": e + shift * n_atoms, "n_atoms": n_atoms, "forces_ref": f,
            "forces_pred": f - shift, "stress_ref": s, "stress_pred": s + shift}  # fmt: skip


def test_legends_give_rmse_and_mae_and_a_stress_panel_appears_with_stress_labels(tmp_path):
    legends = parity_plot(
        {"valid": _set(5, True, 0.002), "test.xyz": _set(3, False, 0.001)}, tmp_path / "p.png"
    )
    assert list(legends) == ["Energy", "Force components", "Stress components"]
    assert legends["Energy"] == ["valid: RMSE 2, MAE 2 meV/atom", "test.xyz: RMSE 1, MAE 1 meV/atom"]
    assert legends["Force components"][0] == "valid: RMSE 2, MAE 2 meV/Å"
    assert legends["Stress components"] == ["valid: RMSE 2, MAE 2 meV/Å³"]
    assert (tmp_path / "p.png").read_bytes().startswith(b"\x89PNG")
    no_stress = parity_plot({"valid": _set(5, False, 0.002)}, tmp_path / "q.png")
    assert list(no_stress) == ["Energy", "Force components"]
