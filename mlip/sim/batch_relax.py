"""Relax many structures at once through TorchSim: FIRE on positions (and the cell), systems swapped in and out.

``relax_many(structures, model)`` keeps a batch of systems under an atom budget (``max_atoms``) on the device. Each
iteration checks every system's convergence (every force, and with ``relax_cell`` every cell-filter force, below
``fmax``; the test of ASE's optimisers), hands back the finished ones (converged, or out of ``steps``) with their
step counts, fills the batch up with new structures, and takes one FIRE step of all of them. A structure's path does
not depend on which others share its batch (see ``_step``), so ``max_atoms`` and a resumed run give the same minima
and step counts. The optimiser is
TorchSim's: ``torch_sim.optimizers.fire`` or, with ``relax_cell``, ``frechet_cell_fire`` (the cell as a matrix
logarithm scaled by the number of atoms, ASE's ``FrechetCellFilter``), both in their ``ase_fire`` flavour (ASE's
FIRE update: a 0.2 Å step cap, masses unused), so minima and step counts are comparable with
:func:`mlip.sim.relax` one structure at a time.

TorchSim 0.3 holds one ``pbc`` flag per batch, so periodic structures (all three directions) and free ones
(none) are relaxed in separate batches; a slab (mixed periodicity) or a structure with ASE constraints needs the
ASE path (``mlip-relax --engine ase``) and is refused here by its index.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import ase
import numpy as np
import torch
from ase.calculators.singlepoint import SinglePointCalculator

from mlip.errors import MLIPError, MLIPInputError

__all__ = ["RelaxResult", "relax_many", "torchsim_can_relax"]


@dataclass
class RelaxResult:
    """One finished structure: ``atoms`` (relaxed, with a SinglePointCalculator holding energy, forces, stress),
    ``converged`` and ``steps`` (FIRE steps taken); or ``error`` (a one-line reason) when it could not run."""

    index: int
    atoms: ase.Atoms | None
    converged: bool
    steps: int
    error: str | None = None


def torchsim_can_relax(atoms: ase.Atoms, relax_cell: bool) -> str | None:
    """``None`` when :func:`relax_many` can take ``atoms``, else why not (one line)."""
    if atoms.constraints:
        return "it has ASE constraints, which the TorchSim optimisers do not apply (use --engine ase)"
    if atoms.pbc.any() and not atoms.pbc.all():
        return f"it is periodic along some directions only (pbc={atoms.pbc.tolist()}; use --engine ase)"
    if relax_cell and not atoms.pbc.all():
        return "cell relaxation needs a fully periodic structure"
    return None


def relax_many(
    structures: Iterable[tuple[int, ase.Atoms]],
    model,
    *,
    fmax: float = 0.01,
    steps: int = 500,
    relax_cell: bool = False,
    max_atoms: int = 2048,
) -> Iterator[RelaxResult]:
    """Relax ``(index, atoms)`` pairs in batches; yield a :class:`RelaxResult` per structure as it finishes
    (module docstring). ``model`` is a :class:`~mlip.sim.torchsim.MLIPModel`."""
    if not fmax > 0 or steps < 1 or max_atoms < 1:
        raise MLIPInputError(
            f"need fmax > 0, steps >= 1 and max_atoms >= 1; got {fmax}, {steps}, {max_atoms}"
        )
    deferred: list[tuple[int, ase.Atoms]] = []
    for kind, pool in (("periodic", structures), ("free", deferred)):
        queue = iter(pool)
        if kind == "periodic":
            queue = _split_free(queue, deferred)
        yield from _run_pool(queue, model, fmax=fmax, steps=steps, relax_cell=relax_cell, max_atoms=max_atoms)


def _split_free(queue, deferred: list) -> Iterator[tuple[int, ase.Atoms]]:
    """Pass periodic structures on, keep free (and unsupported) ones for the second pool."""
    for index, atoms in queue:
        if atoms.pbc.all():
            yield index, atoms
        else:
            deferred.append((index, atoms))


def _run_pool(queue, model, *, fmax, steps, relax_cell, max_atoms) -> Iterator[RelaxResult]:
    import torch_sim as ts

    from mlip.sim.torchsim import StateSystemError

    make = ts.optimizers.frechet_cell_fire if relax_cell else ts.optimizers.fire
    init_fn, update_fn = make(model=model, md_flavor="ase_fire")
    state, active, taken, exhausted = None, [], [], False
    while True:
        while not exhausted and (state is None or state.n_atoms < max_atoms):  # fill the batch up
            item = next(queue, None)
            if item is None:
                exhausted = True
                break
            index, atoms = item
            reason = torchsim_can_relax(atoms, relax_cell)
            try:
                if reason is not None:
                    raise MLIPInputError(reason)
                new = init_fn(ts.io.atoms_to_state([atoms], model.device, model.dtype))
            except MLIPError as err:
                yield RelaxResult(index, None, False, 0, error=" ".join(str(err).split()))
                continue
            state = new if state is None else ts.concatenate_states([state, new])
            active.append((index, atoms))
            taken.append(0)
        if state is None:
            return
        converged = _converged(state, fmax, relax_cell)
        done = converged | (torch.tensor(taken) >= steps)
        if done.any():
            finished = done.nonzero().flatten().tolist()
            parts = state.split()
            final = _final_results(model, [parts[k] for k in finished], relax_cell)
            for k, results in zip(finished, final):
                index, atoms = active[k]
                yield RelaxResult(index, _to_atoms(parts[k], atoms, results), bool(converged[k]), taken[k])
            keep = [k for k in range(len(active)) if not done[k]]
            if not keep:
                state, active, taken = None, [], []
                continue
            state = ts.concatenate_states([parts[k] for k in keep])
            active, taken = [active[k] for k in keep], [taken[k] for k in keep]
        try:
            state = _step(update_fn, state, taken)  # on a copy: ``state`` stays as it was if one system fails
        except (
            StateSystemError
        ) as err:  # one system went bad mid-run (atoms collapsed): drop it, keep the rest
            index, _ = active[err.system]
            steps_done = taken[err.system]
            yield RelaxResult(index, None, False, steps_done, error=f"after {steps_done} steps: {err.reason}")
            parts = state.split()
            keep = [k for k in range(len(active)) if k != err.system]
            state = ts.concatenate_states([parts[k] for k in keep]) if keep else None
            active, taken = [active[k] for k in keep], [taken[k] for k in keep]
            continue
        taken = [t + 1 for t in taken]


def _step(update_fn, state, taken: list[int]):
    """One FIRE step of every system, each exactly as if it were alone.

    TorchSim's ASE-flavoured FIRE marks a system that has not stepped yet by NaN velocities and, when any system
    of the batch has them, skips the power test (the ``dt``/``alpha`` update and the velocity mixing) for *every*
    system in that step, so a system's path depended on when others joined its batch. New systems are appended at
    the end of the state (``taken == 0``), so the batch is stepped as two states, the running ones and the new
    ones, when both are present."""
    import torch_sim as ts

    from mlip.sim.torchsim import StateSystemError

    n_old = sum(1 for t in taken if t > 0)
    if n_old == 0 or n_old == len(taken):
        return update_fn(state.clone())
    parts = state.clone().split()
    old = update_fn(ts.concatenate_states(parts[:n_old]))
    try:
        new = update_fn(ts.concatenate_states(parts[n_old:]))
    except StateSystemError as err:  # its index in the whole batch
        raise StateSystemError(n_old + err.system, err.reason) from None
    return ts.concatenate_states([old, new])


def _converged(state, fmax: float, relax_cell: bool) -> torch.Tensor:
    """``[n_systems]`` bool: every atom's force (and cell force) below ``fmax``."""
    norms = state.forces.norm(dim=1)
    worst = torch.zeros(state.n_systems, dtype=norms.dtype, device=norms.device)
    worst = worst.scatter_reduce(0, state.system_idx, norms, reduce="amax")
    if relax_cell:
        worst = torch.maximum(worst, state.cell_forces.norm(dim=2).amax(dim=1))
    return (worst < fmax).cpu()


def _final_results(model, parts, relax_cell: bool) -> list[dict]:
    """Energy, forces and (periodic) stress of each finished system. The cell optimiser's state holds them already;
    the positions-only one keeps no stress, so those systems get one more (batched) evaluation."""
    import torch_sim as ts

    if relax_cell:
        out = [dict(energy=p.energy, forces=p.forces, stress=p.stress) for p in parts]
    else:
        batch = model(ts.concatenate_states(parts))
        counts = [p.n_atoms for p in parts]
        forces = batch["forces"].split(counts)
        out = [
            dict(energy=batch["energy"][k : k + 1], forces=forces[k],
                 stress=batch["stress"][k : k + 1] if "stress" in batch else None)
            for k in range(len(parts))
        ]  # fmt: skip
    return out


def _to_atoms(part, original: ase.Atoms, final: dict) -> ase.Atoms:
    """``original`` (its info, arrays, tags) with the relaxed positions and cell and the final results."""
    out = original.copy()
    out.positions = part.positions.detach().to("cpu", torch.float64).numpy()
    if out.pbc.any():
        out.set_cell(part.row_vector_cell[0].detach().to("cpu", torch.float64).numpy(), scale_atoms=False)
    energy = float(final["energy"][0])
    results = dict(
        energy=energy, free_energy=energy, forces=final["forces"].detach().to("cpu", torch.float64).numpy()
    )
    if final["stress"] is not None and out.pbc.all():
        s = final["stress"][0].detach().to("cpu", torch.float64).numpy()
        results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
    out.calc = SinglePointCalculator(out, **results)
    return out
