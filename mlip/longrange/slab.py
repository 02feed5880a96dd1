r"""Slabs: structures periodic in two directions (a surface with vacuum, OC20's geometry).

The Coulomb sum of a slab is the 2D-periodic Ewald sum (Parry 1975; de Leeuw and Perram 1979). We compute it as
LAMMPS's ``kspace_modify slab`` does: a 3D Ewald sum in a cell padded along the plane normal ``n̂``, plus the
Yeh–Berkowitz correction for the dipole of the periodic replicas of the slab (Yeh and Berkowitz, J. Chem. Phys.
111, 3155 (1999)):

.. math::  E = E_{3D}(\text{padded cell}) + \frac{2π k_e}{V} M_z^2, \qquad M_z = \sum_i q_i\, z_i,
           \qquad z_i = x_i · n̂,

so that per atom (``E = (k_e/2) Σ_i q_i φ_i``) the potential gains ``(4π/V) M_z z_i``. ``V`` is the padded cell's
volume. The correction removes the replicas' dipole–dipole interaction exactly; what is left decays as
``exp(-2π g / a)`` in the gap ``g`` between replicas over the in-plane period ``a``. The default height is the
slab's thickness plus a gap of :data:`GAP_PERIODS` in-plane periods and at least twice the thickness (LAMMPS's
factor 3 on the height), so the error is below ``exp(-4π) ≈ 3·10⁻⁶`` relative; ``tests/longrange/test_slab.py``
measures it against a padded cell four times as tall and against the 3D sums extrapolated to an infinite gap.

A charged slab is refused: its 2D sum needs a neutralising sheet whose position is a physical choice (Ballenegger,
Arnold and Cerdà, J. Chem. Phys. 131, 094107 (2009)), not one made silently here.
"""

from __future__ import annotations

import torch

from mlip.longrange.ewald import ewald_potential

__all__ = ["GAP_PERIODS", "slab_cell", "slab_potential"]

GAP_PERIODS = 2.0
"""The default gap between a slab and its replica along the normal, in in-plane periods (the longest in-plane
lattice vector); at least twice the slab's thickness, and at least 10 Å."""


def slab_cell(
    positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, *, gap: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(padded [3, 3], n̂ [3])``: ``cell`` with its non-periodic vector replaced by ``n̂ (t + gap)``, ``n̂`` the
    unit normal of the periodic plane and ``t`` the slab's thickness along it (Å).

    ``pbc`` must be periodic in exactly two directions. The height depends on the positions' values only (it is
    held fixed under differentiation); the in-plane vectors and ``n̂`` stay differentiable in ``cell``.
    """
    free = [d for d in range(3) if not bool(pbc[d])]
    if len(free) != 1:
        raise ValueError(f"a slab is periodic in exactly two directions, got pbc={pbc.tolist()}")
    d = free[0]
    a, b = (cell[k] for k in range(3) if k != d)
    normal = torch.linalg.cross(a, b)
    normal = normal / normal.norm()
    z = (positions.detach() @ normal.detach()).double()
    thickness = float(z.max() - z.min()) if len(z) else 0.0
    period = float(max(a.detach().norm(), b.detach().norm()))
    if gap is None:
        gap = max(GAP_PERIODS * period, 2.0 * thickness, 10.0)
    elif not gap > 0:
        raise ValueError(f"gap must be positive (Å), got {gap}")
    rows = [cell[k] for k in range(3)]
    rows[d] = normal * (thickness + float(gap))
    return torch.stack(rows), normal


def slab_potential(
    positions: torch.Tensor,
    charges: torch.Tensor,
    cell: torch.Tensor,
    pbc: torch.Tensor,
    *,
    sigma: float | None = None,
    accuracy: float = 1e-6,
    gap: float | None = None,
) -> torch.Tensor:
    """``φ_i`` (e/Å) of a slab (module docstring): ``[N]``, such that ``E = (k_e/2) Σ_i q_i φ_i``.

    Args:
        positions: ``[N, 3]`` Å. charges: ``[N]`` e, summing to zero. cell: ``[3, 3]`` Å, rows the lattice
            vectors (the non-periodic one only names the direction left free). pbc: ``[3]`` bool, two true.
        sigma, accuracy: as :func:`mlip.longrange.ewald.ewald_potential`, in the padded cell.
        gap: vacuum between replicas, Å (default: :func:`slab_cell`'s).
    """
    total = float(charges.detach().sum())
    scale = float(charges.detach().abs().sum())
    if abs(total) > 16.0 * torch.finfo(charges.dtype).eps * max(scale, 1.0):  # beyond the rounding of the sum
        raise ValueError(
            f"a charged slab (net charge {total:.6g} e) is not supported: its sum needs a neutralising sheet placed "
            "by choice (Ballenegger et al. 2009); give neutral charges"
        )
    padded, normal = slab_cell(positions, cell, pbc, gap=gap)
    phi = ewald_potential(positions, charges, padded, sigma=sigma, accuracy=accuracy)
    z = positions @ normal
    volume = torch.linalg.det(padded).abs()
    dipole = (charges * z).sum()
    return phi + 4.0 * torch.pi / volume * dipole * z
