"""The slab sum's error at its default vacuum gap (mlip.longrange.slab), float64.

For each structure: the energy with the default gap, against the 2D sum obtained without the Yeh–Berkowitz
correction (plain 3D Ewald in cells 400 and 800 Å tall, extrapolated in 1/height, where the replicas' dipole term
is the only slow one), and the largest force difference against a gap four times the default, relative to the
largest force.

    python benchmarks/slab_gap.py
"""

from __future__ import annotations

import torch
from ase.build import fcc111

from mlip.longrange.constants import K_E
from mlip.longrange.ewald import ewald_potential
from mlip.longrange.slab import slab_cell, slab_potential

F64 = torch.float64
PBC = torch.tensor([True, True, False])


def _structures():
    g = torch.Generator().manual_seed(0)
    for n, a, t in [(12, 6.0, 5.0), (48, 10.0, 12.0), (96, 14.0, 8.0)]:
        pos = torch.rand(n, 3, generator=g, dtype=F64) * torch.tensor([a, a, t], dtype=F64)
        q = torch.randn(n, generator=g, dtype=F64)
        yield (
            f"random {n} atoms, {a:g} Å, {t:g} Å thick",
            pos,
            q - q.mean(),
            torch.diag(torch.tensor([a, a, 40.0], dtype=F64)),
        )
    slab = fcc111("Cu", size=(3, 3, 4), vacuum=8.0, periodic=True)
    q = torch.tensor([0.3 if k % 2 else -0.3 for k in range(len(slab))], dtype=F64)
    yield "Cu(111) 3x3x4, alternating ±0.3 e", torch.tensor(slab.positions), q, torch.tensor(slab.cell.array)


def _plain(pos, q, padded, normal, height) -> float:
    """Plain 3D Ewald energy (eV) of the cell padded to ``height`` Å, no correction."""
    cell = padded.clone()
    cell[2] = normal * height
    return float(0.5 * K_E * (q * ewald_potential(pos, q, cell, accuracy=1e-12)).sum())


def main() -> None:
    print("| structure | default height (Å) | energy error, relative | force error / max force |")
    print("|---|---|---|---|")
    for name, pos, q, cell in _structures():
        padded, normal = slab_cell(pos, cell, PBC)

        e400, e800 = (_plain(pos, q, padded, normal, h) for h in (400.0, 800.0))
        reference = (400.0 * e400 - 800.0 * e800) / (400.0 - 800.0)
        forces = []
        thickness = float((pos @ normal).max() - (pos @ normal).min())
        for gap in (None, 4.0 * (float(padded[2].norm()) - thickness)):
            x = pos.clone().requires_grad_(True)
            energy = 0.5 * K_E * (q * slab_potential(x, q, cell, PBC, accuracy=1e-12, gap=gap)).sum()
            (grad,) = torch.autograd.grad(energy, x)
            forces.append((float(energy.detach()), -grad))
        e_err = abs(forces[0][0] - reference) / abs(reference)
        f_err = float((forces[0][1] - forces[1][1]).abs().max() / forces[1][1].abs().max())
        print(f"| {name} | {float(padded[2].norm()):.1f} | {e_err:.1e} | {f_err:.1e} |")


if __name__ == "__main__":
    main()
