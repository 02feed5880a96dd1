"""Loss options: per-atom or total energy, ρ per property, conditional Huber, and their validation."""

import pytest
import torch

from mlip import keys as K
from mlip.training.config import RunConfig
from mlip.training.losses import LossKinds, conditional_delta, loss_terms

F64 = torch.float64


def _batch():
    """Two frames (2 and 1 atoms), every label present."""
    return {
        K.ENERGY: torch.tensor([1.0, 2.0], dtype=F64),
        K.ENERGY_WEIGHT: torch.ones(2, dtype=F64),
        K.WEIGHT: torch.ones(2, dtype=F64),
        K.N_ATOMS: torch.tensor([2, 1]),
        K.FORCES: torch.zeros(3, 3, dtype=F64),
        K.FORCES_WEIGHT: torch.ones(2, dtype=F64),
        K.BATCH: torch.tensor([0, 0, 1]),
    }


def _pred(energy_err=(0.4, 0.1), force=0.05):
    b = _batch()
    return {
        K.ENERGY: b[K.ENERGY] + torch.tensor(energy_err, dtype=F64),
        K.FORCES: torch.full((3, 3), force, dtype=F64),
    }


def test_energy_per_atom_and_total():
    per_atom = loss_terms(_pred(), _batch())["energy"].item()
    assert per_atom == pytest.approx(((0.4 / 2) ** 2 + 0.1**2) / 2)
    total = loss_terms(_pred(), _batch(), kinds=LossKinds(energy_per_atom=False))["energy"].item()
    assert total == pytest.approx((0.4**2 + 0.1**2) / 2)


def test_each_property_has_its_own_rho():
    kinds = LossKinds(energy="mse", forces="huber", delta=0.01)
    terms = loss_terms(_pred(force=0.05), _batch(), kinds=kinds)
    assert terms["energy"].item() == pytest.approx(((0.4 / 2) ** 2 + 0.1**2) / 2)
    assert terms["forces"].item() == pytest.approx(0.01 * (0.05 - 0.005))  # linear branch of the Huber loss
    small = loss_terms(_pred(force=0.004), _batch(), kinds=kinds)["forces"].item()
    assert small == pytest.approx(0.5 * 0.004**2)  # quadratic branch


def test_conditional_huber_threshold_shrinks_with_the_reference_force():
    ref = torch.tensor([[50.0, 0, 0], [0, 150.0, 0], [0, 0, 250.0], [400.0, 0, 0]], dtype=F64)
    delta = conditional_delta(ref, 0.01, (100.0, 200.0, 300.0))
    assert delta.squeeze(-1).tolist() == pytest.approx([0.01, 0.007, 0.004, 0.001])
    assert (
        conditional_delta(torch.tensor([[100.0, 0, 0]], dtype=F64), 1.0, (100.0, 200.0, 300.0)).item() == 0.7
    )


def test_conditional_huber_equals_huber_for_ordinary_forces_and_differs_for_large_ones():
    b = _batch()
    pred = _pred(force=0.05)
    huber = loss_terms(pred, b, kinds=LossKinds(forces="huber"))["forces"]
    cond = loss_terms(pred, b, kinds=LossKinds(forces="conditional_huber"))["forces"]
    assert cond.item() == pytest.approx(huber.item())
    b[K.FORCES][0, 0] = 150.0  # one atom in the second interval: δ -> 0.7 δ on its three components
    pred[K.FORCES][0, 0] = 150.05
    cond = loss_terms(pred, b, kinds=LossKinds(forces="conditional_huber"))["forces"].item()
    expected = (3 * 0.01 * (0.05 - 0.005) + 3 * 0.007 * (0.05 - 0.0035) + 3 * 0.01 * (0.05 - 0.005)) / 9
    assert cond == pytest.approx(expected)


def test_config_type_weights_scale_the_frame_weight():
    b = _batch()
    b[K.WEIGHT] = torch.tensor([1.0, 0.0], dtype=F64)  # the second frame carries no weight
    assert loss_terms(_pred(), b)["energy"].item() == pytest.approx((0.4 / 2) ** 2 / 2)


@pytest.mark.parametrize(
    ("train", "match"),
    [
        ({"forces_loss": "l1"}, "train.forces_loss"),
        ({"energy_loss": "conditional_huber"}, "train.energy_loss"),
        ({"conditional_huber_thresholds": [300, 200, 100]}, "conditional_huber_thresholds"),
        ({"stage_two_start": 1.0}, "train.stage_two_start"),
        ({"stage_two_lr": 0.0}, "train.stage_two_lr"),
        ({"refit_e0s": "always"}, "train.refit_e0s"),
        ({"stage_two_energy_weight": -1.0}, "train.stage_two_energy_weight"),
    ],
)
def test_bad_loss_options_are_refused_in_one_line(train, match):
    with pytest.raises(ValueError, match=match):
        RunConfig.from_dict({"train": train})


def test_bad_config_type_weights_are_refused():
    with pytest.raises(ValueError, match="config_type_weights"):
        RunConfig.from_dict({"data": {"config_type_weights": {"bulk": -1.0}}})
    with pytest.raises(ValueError, match="config_type_weights"):
        RunConfig.from_dict({"data": {"config_type_weights": {"bulk": "high"}}})
