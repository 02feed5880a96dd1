"""Choose and build the MD engine of a run: ASE's integrators for one structure, TorchSim for several
(:mod:`mlip.sim.md`, :mod:`mlip.sim.md_torchsim`). A module of its own so that the two engines do
not import each other."""

from __future__ import annotations

import ase

from mlip.errors import MLIPInputError
from mlip.sim.md import ASERun, MDRun, MDSettings, check_structures

__all__ = ["make_run"]


def make_run(structures: list[ase.Atoms], calculator, settings: MDSettings, *, engine: str) -> MDRun:
    """An :class:`~mlip.sim.md.MDRun` of ``structures`` (``engine`` ``"ase"``: exactly one; ``"torchsim"``:
    any number) with ``calculator``'s model."""
    check_structures(structures, settings)
    if engine == "ase":
        if len(structures) != 1:
            raise MLIPInputError(
                f"the ASE engine runs one structure; the input has {len(structures)} (use --engine torchsim)"
            )
        return ASERun(structures[0], calculator, settings)
    from mlip.sim.md_torchsim import TorchSimRun  # TorchSim is an optional dependency (.[sim])

    return TorchSimRun(structures, calculator.model, settings, device=str(calculator.device))
