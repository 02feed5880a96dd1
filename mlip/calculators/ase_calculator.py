"""ASE calculator for any mlip model (energy, free_energy, forces, stress)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from torch import nn

from mlip import keys as K
from mlip.calculators.dispersion import add_dispersion, d3_calculator
from mlip.data import VerletNeighborList, atoms_to_graph
from mlip.data.batch import batch_on
from mlip.errors import MLIPInputError
from mlip.inference import chunked_evaluate, hessian, resolve_model
from mlip.models import parse_device
from mlip.models.committee import load_models

__all__ = ["MLIPCalculator"]


class MLIPCalculator(Calculator):
    """``MLIPCalculator(model, device="cpu", dtype=None)``.

    Args:
        model: a model file path (see :func:`mlip.load_model`) or an mlip ``nn.Module``; or a list of them, or a
            committee file (:mod:`mlip.models.committee`), a **committee**: the results are the members' means, with their variances (population, over members) as
            ``energy_var`` (eV²), ``forces_var`` (``[N, 3]``, (eV/Å)²) and ``stress_var`` (Voigt, (eV/Å³)²), and the
            members' energies as ``energies``. Each member keeps its own neighbour list (cutoffs may differ).
        device: torch device.
        dtype: ``"float32"`` / ``"float64"`` to run the network in; ``None`` keeps the model's dtype.
        compile: compile the network with ``torch.compile`` (:meth:`~mlip.models.base.EdgePotential.compile_network`:
            one graph, dynamic shapes); the first call compiles (seconds to a minute), later calls of any size reuse it.
        skin: Å of Verlet skin (:class:`~mlip.data.verlet.VerletNeighborList`): the neighbour list is built with the
            cutoff ``r_max + skin`` and reused, filtered by the current distances, until an atom may have moved
            (or the cell deformed) enough to bring a new pair within ``r_max``; the edges are exactly those of a
            fresh list, so results agree to rounding. ``0`` builds a new list every call. ``nl_builds`` counts
            the builds.
        chunk_atoms: for structures with more atoms than this, evaluate in spatial blocks of about this many atoms
            with their halos (:func:`mlip.inference.chunked.chunked_evaluate`): the same results to rounding,
            peak memory set by the block instead of the structure (local models only). ``None``: never.
        dispersion: ``None``, ``"d3bj"`` or ``"d3zero"``: add DFT-D3 with that damping for the functional ``xc``
            (:mod:`mlip.calculators.dispersion`; torch-dftd, extra ``.[d3]``) to the energy, forces and stress.
        xc: the functional whose D3 parameters to use (``"pbe"``, ``"pbesol"``, ``"r2scan"``, ...).
        dispersion_cutoff: Å at which the D3 two-body sum is cut (smoothly); default 95 Bohr (50.3 Å). Small cells
            are much faster with a shorter cutoff (20 Å changes the energy of bulk Cu by about 0.3%).

    A module passed in is never changed: when ``dtype`` or ``device`` differ from its own, or with ``compile``, the
    calculator works on a converted copy (:func:`mlip.models.convert_model`; constants recomputed in that dtype),
    otherwise on the module itself (so later changes to its weights show in the results).

    Results are float64: ``energy`` and ``free_energy`` (eV), ``forces`` (eV/Å), ``stress`` (eV/Å³, Voigt,
    ASE sign; only for cells with a volume) and, for a model with a long-range term, ``charges`` (e; they sum to
    ``atoms.info["charge"]``, 0 when absent). Never changes torch's default dtype.
    """

    implemented_properties = [
        "energy", "free_energy", "forces", "stress", "charges", "energy_var", "forces_var", "stress_var", "energies"
    ]  # fmt: skip

    def __init__(
        self,
        model: str | Path | nn.Module,
        device: str = "cpu",
        dtype: str | None = None,
        *,
        compile: bool = False,
        skin: float = 0.5,
        chunk_atoms: int | None = None,
        dispersion: str | None = None,
        xc: str = "pbe",
        dispersion_cutoff: float | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        device = parse_device(device)
        self.members = None
        self.dispersion = None
        if dispersion is not None:
            self.dispersion = d3_calculator(dispersion, xc, device=str(device), cutoff=dispersion_cutoff)
        if isinstance(model, (str, Path)):  # a model file, or a committee file (mlip.models.committee)
            models = load_models(model, device=device, dtype=dtype)
            model = models if len(models) > 1 else models[0]
        if isinstance(model, (list, tuple)):  # a committee file in the list brings all of its members
            model = [m for item in model for m in (load_models(item, device=device, dtype=dtype)
                                                   if isinstance(item, (str, Path)) else [item])]  # fmt: skip
            if len(model) < 2:
                raise MLIPInputError(f"a committee needs at least 2 models, got {len(model)}")
            options = dict(compile=compile, skin=skin, chunk_atoms=chunk_atoms)
            self.members = [MLIPCalculator(m, device, dtype, **options) for m in model]
            self.model, self.device = self.members[0].model, self.members[0].device
            return
        try:
            self.neighbors = VerletNeighborList(skin)
        except ValueError as err:
            raise MLIPInputError(f"MLIPCalculator: {err}") from None
        self.device = device
        if isinstance(model, nn.Module):
            model = resolve_model(model, device=self.device, dtype=dtype, copy=compile)
        else:
            raise MLIPInputError(
                f"model must be a model file or an mlip nn.Module, got {type(model).__name__}"
            )
        if compile:
            model.compile_network()
        self.model = model
        if chunk_atoms is not None and (chunk_atoms < 1 or model.charge_head is not None):
            raise MLIPInputError("chunk_atoms must be >= 1 and needs a model without a long-range term")
        self.chunk_atoms = chunk_atoms

    def get_hessian(self, atoms=None) -> np.ndarray:
        """``[3N, 3N]`` Hessian (eV/Å²) of the energy at ``atoms`` (default: the calculator's), by autograd
        (:func:`mlip.inference.hessian.hessian`)."""

        if self.members is not None:
            raise MLIPInputError("get_hessian is for a single model, not a committee")
        atoms = atoms if atoms is not None else self.atoms
        if atoms is None:
            raise MLIPInputError("get_hessian needs atoms (none given and none calculated yet)")
        return hessian(atoms, self.model, device=str(self.device))

    def _calculate_chunked(self, properties) -> None:

        out = chunked_evaluate(self.model, self.atoms, chunk_atoms=self.chunk_atoms, device=str(self.device))
        self.results = {"energy": out["energy"], "free_energy": out["energy"], "forces": out["forces"]}
        if "stress" in out and self.atoms.pbc.any():
            self.results["stress"] = _voigt(out["stress"])
        elif "stress" in properties:
            from ase.calculators.calculator import PropertyNotImplementedError

            raise PropertyNotImplementedError("stress needs a periodic cell with non-zero volume")

    @property
    def nl_builds(self) -> int:
        """How many times the neighbour list was built (the rest of the calls reused it); summed over a
        committee's members."""
        if self.members is not None:
            return sum(m.nl_builds for m in self.members)
        return self.neighbors.builds

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if self.members is not None:
            self._calculate_committee(properties)
        else:
            self._calculate_model(properties)
        if self.dispersion is not None:
            add_dispersion(self.results, self.atoms, self.dispersion, with_stress="stress" in self.results)

    def _calculate_committee(self, properties) -> None:
        """Means and population variances over the members (each evaluated without dispersion)."""
        runs = []
        for member in self.members:
            member.calculate(self.atoms, properties, all_changes)
            runs.append(member.results)
        self.results = {}
        for key in ("energy", "forces", "stress", "charges"):
            if key in runs[0]:
                values = np.stack([np.asarray(r[key], dtype=np.float64) for r in runs])
                self.results[key] = values.mean(axis=0) if values.ndim > 1 else float(values.mean())
                if key != "charges":
                    var = values.var(axis=0)
                    self.results[f"{key}_var"] = var if values.ndim > 1 else float(var)
        self.results["free_energy"] = self.results["energy"]
        self.results["energies"] = np.array([r["energy"] for r in runs])

    def _calculate_model(self, properties) -> None:
        if self.chunk_atoms is not None and len(self.atoms) > self.chunk_atoms:
            self._calculate_chunked(properties)
            return
        graph = atoms_to_graph(
            self.atoms, self.model.r_max, where="calculator input", neighbors=self.neighbors
        )
        batch = batch_on([graph], self.device)
        want_stress = "stress" in properties and bool(self.atoms.pbc.any()) and self.atoms.cell.volume > 1e-12
        out = self.model(batch, compute_forces=True, compute_stress=want_stress)
        energy = float(out[K.ENERGY][0].item())
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": out[K.FORCES].detach().cpu().numpy().astype(np.float64),
        }
        if K.CHARGES in out:
            self.results["charges"] = out[K.CHARGES].detach().cpu().numpy().astype(np.float64)
        elif "charges" in properties:
            from ase.calculators.calculator import PropertyNotImplementedError

            raise PropertyNotImplementedError("charges need a model with a long-range term (long_range: ...)")
        if want_stress:
            s = out[K.STRESS][0].detach().cpu().numpy().astype(np.float64)
            self.results["stress"] = _voigt(s)
        elif "stress" in properties:
            from ase.calculators.calculator import PropertyNotImplementedError

            raise PropertyNotImplementedError("stress needs a periodic cell with non-zero volume")


def _voigt(s: np.ndarray) -> np.ndarray:
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
