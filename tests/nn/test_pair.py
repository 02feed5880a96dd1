"""ZBL repulsion and the Agnesi transform on one pair, against the formulas written out by hand."""

import math

import torch

from mlip.nn.pair import AgnesiTransform, ZBLRepulsion, covalent_radii


def test_zbl_of_one_pair_is_the_universal_screened_coulomb_with_its_envelope():
    r, zu, zv = 0.9, 6, 8  # C-O at 0.9 Å: inside R_C + R_O = 1.42 Å
    a = 0.4543 * 0.529 / (zu**0.3 + zv**0.3)
    phi = sum(
        c * math.exp(-d * r / a)
        for c, d in zip((0.1818, 0.5099, 0.2802, 0.02817), (3.2, 0.9423, 0.4028, 0.2016))
    )
    x, p = r / (covalent_radii()[zu] + covalent_radii()[zv]).item(), 5
    envelope = 1 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2)
    expected = 14.3996 * zu * zv / r * phi * envelope
    zbl = ZBLRepulsion(p=5)
    edges = dict(
        z_sender=torch.tensor([zu, zv]), z_receiver=torch.tensor([zv, zu]), receivers=torch.tensor([1, 0])
    )
    energies = zbl(torch.tensor([r, r], dtype=torch.float64), num_nodes=2, **edges)
    assert (
        abs(energies.sum().item() - expected) < 1e-12 * expected
    )  # each directed edge gives half to its receiver
    assert abs(energies[0].item() - energies[1].item()) < 1e-15 * expected
    beyond = zbl(torch.tensor([1.5, 1.5], dtype=torch.float64), num_nodes=2, **edges)
    assert beyond.abs().max().item() == 0.0  # past R_C + R_O the envelope is zero


def test_agnesi_transform_is_one_at_contact_and_decays():
    t = AgnesiTransform()
    z = torch.tensor([14])
    r0 = covalent_radii()[14].item()  # x = 1 at r = (R_u + R_v) / 2
    at_r0 = t(torch.tensor([r0], dtype=torch.float64), z, z).item()
    assert abs(at_r0 - 1 / (1 + 1.0805 / 2)) < 1e-12
    values = t(torch.linspace(0.5, 6.0, 50, dtype=torch.float64), z.expand(50), z.expand(50))
    assert bool((values.diff() < 0).all())
    assert abs(t(torch.tensor([1e-8], dtype=torch.float64), z, z).item() - 1.0) < 1e-6
