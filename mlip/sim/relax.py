"""Structure relaxation with an mlip calculator (positions, optionally the cell through FrechetCellFilter)."""

from __future__ import annotations

import ase
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS, FIRE

from mlip.errors import MLIPInputError

OPTIMIZERS = {"fire": FIRE, "bfgs": BFGS}


__all__ = ["relax", "OPTIMIZERS"]


def relax(
    atoms: ase.Atoms,
    calculator,
    *,
    fmax: float = 0.01,
    steps: int = 500,
    relax_cell: bool = False,
    optimizer: str = "fire",
    logfile: str | None = None,
    return_steps: bool = False,
):
    """Relax a copy of ``atoms`` until every force (and cell-filter force) is below ``fmax`` eV/Å.

    Returns ``(relaxed atoms with the calculator's results, converged)``, and the number of optimizer steps taken
    as a third item with ``return_steps``.
    """
    if optimizer.lower() not in OPTIMIZERS:
        raise MLIPInputError(f"unknown optimizer {optimizer!r}; use one of {sorted(OPTIMIZERS)}")
    if relax_cell and not atoms.pbc.all():
        raise MLIPInputError("cell relaxation needs a fully periodic structure")
    work = atoms.copy()
    work.calc = calculator
    target = FrechetCellFilter(work) if relax_cell else work
    opt = OPTIMIZERS[optimizer.lower()](target, logfile=logfile)
    converged = bool(opt.run(fmax=fmax, steps=steps))
    return (work, converged, int(opt.nsteps)) if return_steps else (work, converged)
