"""Element-pair terms of the edge features: ZBL repulsion and the Agnesi distance transform (MACE-MP-0b).

Both read the two elements of an edge through their covalent radii ``R_Z`` (ASE's ``covalent_radii``, Å) and take
their constants from mace-torch (``mace/modules/radial.py``), so that imported models compute the same function.

ZBL (Ziegler, Biersack and Littmark, *The Stopping and Range of Ions in Solids*, 1985), universal screening, with a
polynomial envelope that vanishes at ``R_{Z_u} + R_{Z_v}``:

.. math::  V_{uv}(r) = \\frac{k_e Z_u Z_v}{r} \\sum_{k=1}^{4} c_k e^{-d_k r / a}\\; u_p\\!\\left(\\frac{r}{R_{Z_u} +
           R_{Z_v}}\\right), \\qquad a = \\frac{0.4543 \\cdot 0.529}{Z_u^{0.3} + Z_v^{0.3}},

``c = (0.1818, 0.5099, 0.2802, 0.02817)``, ``d = (3.2, 0.9423, 0.4028, 0.2016)``, ``k_e = 14.3996`` eV·Å and ``u_p``
the polynomial envelope of :class:`~mlip.nn.radial.PolynomialCutoff`. Each directed edge gives half of ``V`` to its
receiver, so a pair (two directed edges) counts once.

Agnesi transform (ACEpotentials.jl, Witt et al., J. Chem. Phys. 159, 164101 (2023)): the radial basis is evaluated at

.. math::  \\tilde r = \\Big(1 + \\frac{a\\, x^q}{1 + x^{q - p}}\\Big)^{-1}, \\qquad x = \\frac{2 r}{R_{Z_u} + R_{Z_v}},

with ``q = 0.9183``, ``p = 4.5791``, ``a = 1.0805``; the cutoff envelope still reads ``r``.
"""

from __future__ import annotations

import torch
from torch import nn

from mlip.nn.radial import polynomial_envelope

__all__ = ["AgnesiTransform", "ZBLRepulsion", "covalent_radii"]

_ZBL_C = (0.1818, 0.5099, 0.2802, 0.02817)
_ZBL_D = (3.2, 0.9423, 0.4028, 0.2016)
_ZBL_KE = 14.3996  # eV·Å, mace-torch's value of e² / (4π ε0)
_ZBL_A = (0.4543, 0.529, 0.3)  # prefactor, Bohr radius (Å), exponent
_AGNESI = (0.9183, 4.5791, 1.0805)  # q, p, a


def covalent_radii(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """ASE's covalent radii ``[119]`` (Å), indexed by atomic number."""
    from ase.data import covalent_radii as radii

    return torch.tensor(radii, dtype=dtype)


class ZBLRepulsion(nn.Module):
    """ZBL pair repulsion (module docstring) summed on the receivers.

    Shapes: ``r [E]`` (Å, float64), ``z_sender, z_receiver [E]`` (atomic numbers), ``receivers [E]``,
    ``num_nodes`` -> per-atom energies ``[num_nodes]`` (eV, float64).
    """

    def __init__(self, *, p: int = 5) -> None:
        super().__init__()
        self.p = int(p)
        self.register_buffer("radii", covalent_radii(), persistent=False)

    def forward(self, r, z_sender, z_receiver, receivers, num_nodes: int) -> torch.Tensor:
        zu, zv = z_sender.to(r.dtype), z_receiver.to(r.dtype)
        prefactor, bohr, exponent = _ZBL_A
        a = prefactor * bohr / (zu**exponent + zv**exponent)
        x = r / a
        phi = sum(c * torch.exp(-d * x) for c, d in zip(_ZBL_C, _ZBL_D))
        reach = self.radii.to(r.dtype)[z_sender] + self.radii.to(r.dtype)[z_receiver]
        v = 0.5 * _ZBL_KE * zu * zv / r * phi * polynomial_envelope(r / reach, self.p)
        return r.new_zeros(num_nodes).index_add(0, receivers, v)


class AgnesiTransform(nn.Module):
    """The Agnesi distance transform (module docstring). Shapes: ``r [E]`` (Å), ``z_sender, z_receiver [E]`` ->
    ``[E]`` (dimensionless, in (0, 1])."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("radii", covalent_radii(), persistent=False)

    def forward(self, r, z_sender, z_receiver) -> torch.Tensor:
        q, p, a = _AGNESI
        radii = self.radii.to(r.dtype)
        x = r / (0.5 * (radii[z_sender] + radii[z_receiver]))
        return 1.0 / (1.0 + a * x**q / (1.0 + x ** (q - p)))
