"""examples/phonons_si.py: phonopy's finite-displacement frequencies equal the autograd Hessian's to 1e-3 THz."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from mlip.models import build_model, save_model

pytest.importorskip("phonopy", reason="the phonons extra (pip install 'mlip[phonons]')")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "phonons_si.py"


def test_phonon_frequencies_agree(tmp_path, capsys):
    torch.manual_seed(0)
    model = build_model(dict(
        name="mace", atomic_numbers=[14], atomic_energies=[-1.0], r_max=4.0, channels=8, max_ell=2, max_L=1,
        correlation=2, radial_mlp=[16], avg_num_neighbors=10.0, dtype="float64",
    ))  # fmt: skip
    save_model(model, tmp_path / "si.pt")
    spec = importlib.util.spec_from_file_location("phonons_si", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    worst = example.main([str(tmp_path / "si.pt")])
    assert worst < 1e-3
    result = example.phonons(str(tmp_path / "si.pt"), distance=0.003)
    gamma = result["autograd"]["Γ"]
    assert np.abs(gamma[:3]).max() < 1e-3  # acoustic branches vanish at Γ
    assert gamma[3:].min() > 0.1  # optical ones do not
    assert "largest difference" in capsys.readouterr().out
