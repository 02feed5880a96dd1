"""DFT-D3 dispersion added to a model's energy, forces and stress (``MLIPCalculator(..., dispersion="d3bj")``).

Grimme's DFT-D3 (Grimme, Antony, Ehrlich and Krieg, J. Chem. Phys. 132, 154104 (2010)) with Becke–Johnson damping
(Grimme, Ehrlich and Goerigk, J. Comput. Chem. 32, 1456 (2011)), ``"d3bj"``, or zero damping, ``"d3zero"``, with the
functional's parameters (``xc``: ``"pbe"``, ``"pbesol"``, ``"revpbe"``, ``"b3-lyp"``, ...). The implementation is
`torch-dftd <https://github.com/pfnet-research/torch-dftd>`_ (extra ``.[d3]``): it is maintained, periodic (the
two-body sum over lattice images within its 95 Bohr cutoff, coordination numbers within 40 Bohr) and gives forces and
stress by autograd. tad-dftd3, the other maintained torch implementation, has no periodic boundary conditions, which
relaxations of crystals and surfaces need; ``tests/calculators/test_dispersion.py`` uses it as an independent check
of the molecular energies.

The dispersion is computed in float64 on the calculator's device, separately from the network, and added:
``E = E_model + E_D3``, ``F = F_model + F_D3``, ``σ = σ_model + σ_D3``.
"""

from __future__ import annotations

from ase.calculators.calculator import Calculator

from mlip.errors import MLIPInputError

__all__ = ["DISPERSION", "add_dispersion", "d3_calculator"]

#: The dispersion corrections ``MLIPCalculator`` takes, and their damping in torch-dftd's names.
DISPERSION = {"d3bj": "bj", "d3zero": "zero"}


def d3_calculator(kind: str, xc: str, device: str = "cpu", cutoff: float | None = None) -> Calculator:
    """torch-dftd's ASE calculator for ``kind`` (:data:`DISPERSION`) and functional ``xc``, with the two-body sum cut
    at ``cutoff`` Å (default 95 Bohr, the dftd3 program's) and smoothed to zero there (torch-dftd's ``"poly"``
    smoothing), so that forces and stress are exactly the derivatives of the energy (a hard cutoff makes the energy
    jump when a pair crosses it). ``xc`` is case-insensitive. Unknown names and a missing torch-dftd raise :class:`~mlip.errors.MLIPInputError`."""
    if kind not in DISPERSION:
        raise MLIPInputError(f"dispersion must be one of {sorted(DISPERSION)} or None, got {kind!r}")
    try:
        import torch
        from torch_dftd.dftd3_xc_params import get_dftd3_default_params
        from torch_dftd.torch_dftd3_calculator import TorchDFTD3Calculator
    except ImportError as err:
        raise MLIPInputError(f"dispersion={kind!r} needs torch-dftd: pip install 'mlip[d3]'") from err
    damping = DISPERSION[kind]
    xc = xc.lower() if isinstance(xc, str) else xc  # torch-dftd's table is lower case; "PBE" means "pbe"
    try:
        get_dftd3_default_params(damping, xc)
    except (KeyError, AssertionError, ValueError) as err:
        raise MLIPInputError(f"no DFT-D3({damping}) parameters for xc={xc!r} ({err})") from None
    from ase.units import Bohr

    if cutoff is not None and not cutoff > 0:
        raise MLIPInputError(f"dispersion_cutoff must be > 0 Å, got {cutoff}")
    return TorchDFTD3Calculator(
        damping=damping, xc=xc, device=device, dtype=torch.float64, cutoff=cutoff or 95.0 * Bohr,
        cutoff_smoothing="poly",
    )  # fmt: skip


def add_dispersion(results: dict, atoms, calc: Calculator, with_stress: bool) -> None:
    """Add ``calc``'s energy, forces (and stress) at ``atoms`` to ``results`` in place."""
    props = ["energy", "forces"] + (["stress"] if with_stress else [])
    calc.calculate(atoms.copy(), props)
    results["energy"] += float(calc.results["energy"])
    results["free_energy"] += float(calc.results["energy"])
    results["forces"] = results["forces"] + calc.results["forces"]
    if with_stress:
        results["stress"] = results["stress"] + calc.results["stress"]
