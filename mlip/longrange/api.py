"""Public entry points: the Coulomb energy and the electrostatic potential of one structure.

``E = (1/2) Σ_i q_i φ_i`` with ``φ_i`` the potential at atom ``i`` from every other charge (and, in a periodic
cell, from every image, including its own), in volts (eV/e); ``k_e`` is :data:`mlip.longrange.constants.K_E`.
Methods:

``direct``
    ``φ_i = k_e Σ_{j≠i} q_j/r_ij``, O(N²), exact; free structures only.
``ewald``
    :mod:`mlip.longrange.ewald`; periodic cells (all three directions), and slabs (two periodic directions) by
    :mod:`mlip.longrange.slab` (3D Ewald in a padded cell with the Yeh–Berkowitz correction).
``chebyshev_tucker``
    Free structures: the erfc short-range sum within ``r_c = σ√(ln 1/ε)`` plus the smooth part ``φ_L`` from
    :mod:`mlip.longrange.chebyshev_tucker`, minus the self term ``2 q_i/(σ√π)``.
``auto``
    ``ewald`` for a periodic cell or a slab; ``direct`` for a free structure of at most :data:`AUTO_DIRECT_MAX_ATOMS` atoms,
    ``chebyshev_tucker`` above.

A charged periodic cell is neutralised by a uniform background (see :mod:`mlip.longrange.ewald`); a charged free
structure needs none.
"""

from __future__ import annotations

import math
from enum import Enum

import numpy as np
import torch

from mlip.data.neighbors import neighbor_list
from mlip.longrange.chebyshev_tucker import chebyshev_tucker_potential
from mlip.longrange.constants import K_E
from mlip.longrange.direct import coulomb_potential_direct
from mlip.longrange.ewald import ewald_potential
from mlip.longrange.slab import slab_potential
from mlip.longrange.validation import check_system

__all__ = [
    "AUTO_DIRECT_MAX_ATOMS",
    "Method",
    "coulomb_energy",
    "default_free_sigma",
    "electrostatic_potential",
    "split_free_potential",
]

AUTO_DIRECT_MAX_ATOMS = 5000
"""Largest free structure that ``method="auto"`` sums directly (see ``benchmarks/longrange.py`` for the timings)."""


class Method(str, Enum):
    """How the Coulomb sum is evaluated (module docstring)."""

    DIRECT = "direct"
    EWALD = "ewald"
    CHEBYSHEV_TUCKER = "chebyshev_tucker"
    AUTO = "auto"


def default_free_sigma(positions: torch.Tensor) -> float:
    """``σ`` (Å) for a free structure: a twelfth of the bounding box's largest edge, at least 1 Å."""
    extent = (positions.detach().amax(0) - positions.detach().amin(0)).max().item() if len(positions) else 0.0
    return max(1.0, extent / 12.0)


def _resolve(method, cell: torch.Tensor | None, n_atoms: int) -> Method:
    try:
        method = Method(method)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in Method)
        raise ValueError(f"unknown method {method!r}; use one of {choices}") from None
    if method is Method.AUTO:
        if cell is not None:
            return Method.EWALD
        return Method.DIRECT if n_atoms <= AUTO_DIRECT_MAX_ATOMS else Method.CHEBYSHEV_TUCKER
    if method is Method.EWALD and cell is None:
        raise ValueError("method 'ewald' needs a periodic cell; pass cell= (and pbc=) or use 'direct'")
    if method in (Method.DIRECT, Method.CHEBYSHEV_TUCKER) and cell is not None:
        raise ValueError(
            f"method {method.value!r} is for free structures; a periodic cell needs 'ewald' or 'auto'"
        )
    return method


def _short_range_free(
    positions: torch.Tensor, charges: torch.Tensor, sigma: float, r_cut: float
) -> torch.Tensor:
    """``Σ_{j≠i, r<r_c} q_j erfc(r/σ)/r`` in e/Å for a free structure."""
    (j, i), _ = neighbor_list(
        positions.detach().cpu().double().numpy(), np.zeros((3, 3)), np.zeros(3, bool), r_cut
    )
    j = torch.as_tensor(j, device=positions.device)
    i = torch.as_tensor(i, device=positions.device)
    r = (positions[j] - positions[i]).norm(dim=1)
    return torch.zeros_like(charges).index_add(0, i, charges[j] * torch.erfc(r / sigma) / r)


def electrostatic_potential(
    positions: torch.Tensor,
    charges: torch.Tensor,
    cell: torch.Tensor | None = None,
    pbc: torch.Tensor | None = None,
    *,
    method: str | Method = "auto",
    sigma: float | None = None,
    accuracy: float = 1e-6,
) -> torch.Tensor:
    """Potential ``φ_i`` at every atom, ``[N]`` in V (eV/e), such that the energy is ``(1/2) Σ_i q_i φ_i``.

    Args:
        positions: ``[N, 3]`` Å.
        charges: ``[N]`` e.
        cell: ``[3, 3]`` Å, lattice vectors as rows; ``None`` (or ``pbc`` all false) for a free structure.
        pbc: ``[3]`` bool; all true by default when a cell is given. Two periodic directions make a slab; one
            (a wire) is rejected.
        method: ``"direct"``, ``"ewald"``, ``"chebyshev_tucker"`` or ``"auto"`` (module docstring).
        sigma: range-separation width in Å (Ewald and Chebyshev–Tucker); chosen automatically if ``None``.
        accuracy: requested relative accuracy, in (0, 1).

    Differentiable in ``positions``, ``cell`` and ``charges``.
    """
    cell, pbc = check_system(positions, charges, cell, pbc)
    if not 0.0 < accuracy < 1.0:
        raise ValueError(f"accuracy must lie in (0, 1), got {accuracy}")
    if sigma is not None and not sigma > 0:
        raise ValueError(f"sigma must be positive (Å), got {sigma}")
    resolved = _resolve(method, cell, positions.shape[0])
    if resolved is Method.EWALD and not bool(pbc.all()):
        return K_E * slab_potential(positions, charges, cell, pbc, sigma=sigma, accuracy=accuracy)
    if resolved is Method.EWALD:
        return K_E * ewald_potential(positions, charges, cell, sigma=sigma, accuracy=accuracy)
    if resolved is Method.DIRECT:
        return K_E * coulomb_potential_direct(positions, charges)
    return K_E * split_free_potential(positions, charges, sigma=sigma, accuracy=accuracy)


def split_free_potential(
    positions: torch.Tensor, charges: torch.Tensor, *, sigma: float | None, accuracy: float
) -> torch.Tensor:
    """``Σ_{j≠i} q_j/r_ij`` (e/Å) of a free structure as erfc short range + Chebyshev–Tucker ``φ_L`` − self."""
    sigma = default_free_sigma(positions) if sigma is None else float(sigma)
    r_cut = sigma * math.sqrt(math.log(1.0 / accuracy))
    phi_long, _ = chebyshev_tucker_potential(positions, charges, sigma, accuracy=accuracy)
    phi_short = _short_range_free(positions, charges, sigma, r_cut)
    return phi_short + phi_long - 2.0 * charges / (sigma * math.sqrt(math.pi))


def coulomb_energy(
    positions: torch.Tensor,
    charges: torch.Tensor,
    cell: torch.Tensor | None = None,
    pbc: torch.Tensor | None = None,
    *,
    method: str | Method = "auto",
    sigma: float | None = None,
    accuracy: float = 1e-6,
) -> torch.Tensor:
    """Total Coulomb energy, a 0-d tensor in eV: ``(1/2) Σ_i q_i φ_i`` (arguments as :func:`electrostatic_potential`)."""
    phi = electrostatic_potential(
        positions, charges, cell, pbc, method=method, sigma=sigma, accuracy=accuracy
    )
    return 0.5 * (charges * phi).sum()
