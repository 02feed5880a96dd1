"""Periodic Coulomb sums side by side with torch-pme (Ewald and PME), at equal accuracy, in one run.

Random positions at a fixed density (``--density`` atoms/Å³) in cubic cells, charges ±1 (neutral), float64, one
CPU thread. The reference is mlip's Ewald sum at accuracy 1e-10. Each method is timed for energy and forces
(forward + backward, best of ``--repeat``) and its relative energy error and relative RMS force error against the
reference are printed:

* mlip: :func:`mlip.longrange.ewald.ewald_potential` at ``--accuracy`` (its balanced σ and cutoffs);
* torch-pme ``EwaldCalculator`` and ``PMECalculator`` at the same accuracy. The relative RMS force error of
  mlip's sum is the target. torch-pme's own tuners (``tune_ewald``, ``tune_pme``) at 1e-5 ... 1e-8, for each
  real-space cutoff of ``--cutoffs`` (Å), give the starting settings. Each setting is refined in k-space (Ewald
  wavelength or PME mesh spacing, x0.7 a step) until it reaches the target or stops improving (at least 2x a
  step), and the fastest setting that reaches it is timed. The tuners alone miss the target: on 300 atoms, the
  Ewald tuner's setting at 1e-7 left a 1e-3 force error. Neighbours come from a half list built by vesin. Neither
  the tuning nor the search is timed.

torch-pme is not a dependency of mlip: install it beside it (``pip install torch-pme``).

    python benchmarks/longrange_vs_torchpme.py [--sizes 1000 2000] [--accuracy 1e-6]
        [--cutoffs 8 12] [--density 0.05] [--repeat 2]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from mlip.longrange.constants import K_E
from mlip.longrange.ewald import ewald_potential

F64 = torch.float64


def _system(n: int, density: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    edge = (n / density) ** (1.0 / 3.0)
    pos = torch.tensor(rng.random((n, 3)) * edge, dtype=F64)
    q = torch.tensor(np.where(rng.permutation(n) % 2 == 0, 1.0, -1.0), dtype=F64)
    return pos, q, torch.eye(3, dtype=F64) * edge


def _timed(energy_of, pos, repeat: int):
    """``(seconds, energy, forces)``: the best of ``repeat`` runs of energy + forces."""
    best, energy, forces = math.inf, None, None
    for _ in range(repeat):
        x = pos.clone().requires_grad_(True)
        start = time.perf_counter()
        e = energy_of(x)
        (grad,) = torch.autograd.grad(e, x)
        best = min(best, time.perf_counter() - start)
        energy, forces = float(e.detach()), -grad
    return best, energy, forces


def _mlip(q, cell, accuracy):
    return lambda x: 0.5 * K_E * (q * ewald_potential(x, q, cell, accuracy=accuracy)).sum()


def _neighbors(pos, cell, cutoff):
    from vesin import NeighborList

    i, j, s = NeighborList(cutoff=cutoff, full_list=False).compute(
        points=pos.numpy(), box=cell.numpy(), periodic=True, quantities="ijS"
    )
    return torch.tensor(np.stack([i, j], 1), dtype=torch.int64), torch.tensor(s, dtype=F64)


def _calculator(kind, smearing, params):
    import torchpme

    potential = torchpme.CoulombPotential(smearing=smearing, prefactor=torchpme.prefactors.eV_A)
    cls = torchpme.EwaldCalculator if kind == "ewald" else torchpme.PMECalculator
    return cls(potential=potential, **params).to(F64)


def _refined(kind, params):
    """The next finer k-space resolution: a shorter Ewald wavelength, a finer PME mesh."""
    key = "lr_wavelength" if kind == "ewald" else "mesh_spacing"
    return {**params, key: params[key] * 0.7}


def _torchpme_matched(kind, pos, q, cell, cutoffs, target, reference):
    """torch-pme's ``kind`` at the accuracy of mlip's sum: its tuner (``tune_ewald``/``tune_pme``) at 1e-5 ... 1e-8
    for each cutoff, each setting refined in k-space until the relative RMS force error is at most ``target``; the
    fastest setting that reaches it (or, if none does, the most accurate). Returns ``(energy_of, description)``."""
    import torchpme
    from torchpme.tuning import tune_ewald, tune_pme

    charges = q[:, None]
    tune = tune_ewald if kind == "ewald" else tune_pme
    e_ref, f_ref, f_scale = reference
    best = None  # (meets, seconds or error, energy_of, description)
    for cutoff, accuracy in ((c, a) for c in cutoffs for a in (1e-5, 1e-6, 1e-7, 1e-8)):
        pairs, shifts = _neighbors(pos, cell, cutoff)

        def distances(x, pairs=pairs, shifts=shifts):
            return (x[pairs[:, 1]] - x[pairs[:, 0]] + shifts @ cell).norm(dim=1)

        smearing, params, _ = tune(charges, cell, pos, cutoff, pairs, distances(pos), accuracy=accuracy,
                                   prefactor=torchpme.prefactors.eV_A)  # fmt: skip
        previous = math.inf
        for _ in range(8):
            calc = _calculator(kind, smearing, params)

            def energy_of(x, calc=calc, pairs=pairs, distances=distances):
                return (charges * calc(charges, cell, x, pairs, distances(x))).sum()  # V_i holds the 1/2

            seconds, _, forces = _timed(energy_of, pos, 1)
            f_err = float((forces - f_ref).square().mean().sqrt()) / f_scale
            shown = ", ".join(
                f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in params.items()
            )
            shown = f"cutoff {cutoff:g}, smearing {smearing:.3g}, {shown} (tuned at {accuracy:g})"
            key = (f_err <= target, -seconds if f_err <= target else -f_err)
            if best is None or key > best[0]:
                best = (key, energy_of, shown)
            if f_err <= target or f_err > 0.5 * previous:  # reached, or at this smearing's real-space floor
                break
            previous = f_err
            params = _refined(kind, params)
    return best[1], best[2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000])  # 4000: the reference needs > 23 GB
    p.add_argument("--accuracy", type=float, default=1e-6)
    p.add_argument("--cutoffs", type=float, nargs="+", default=[8.0, 12.0])
    p.add_argument("--density", type=float, default=0.05)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(1)
    print("| N | method | parameters | s (energy+forces) | energy error | force error (RMS, relative) |")
    print("|---|---|---|---|---|---|")
    for n in args.sizes:
        pos, q, cell = _system(n, args.density)
        _, e_ref, f_ref = _timed(_mlip(q, cell, 1e-10), pos, 1)
        f_scale = float(f_ref.square().mean().sqrt())
        mlip = _mlip(q, cell, args.accuracy)
        _, _, f_mlip = _timed(mlip, pos, 1)
        target = float((f_mlip - f_ref).square().mean().sqrt()) / f_scale
        cases = [("mlip Ewald", mlip, f"accuracy {args.accuracy:g}")]
        for kind in ("ewald", "pme"):
            energy_of, shown = _torchpme_matched(
                kind, pos, q, cell, args.cutoffs, target, (e_ref, f_ref, f_scale)
            )
            cases.append((f"torch-pme {kind}", energy_of, shown))
        for name, energy_of, shown in cases:
            seconds, energy, forces = _timed(energy_of, pos, args.repeat)
            e_err = abs(energy - e_ref) / abs(e_ref)
            f_err = float((forces - f_ref).square().mean().sqrt()) / f_scale
            print(f"| {n} | {name} | {shown} | {seconds:.2f} | {e_err:.1e} | {f_err:.1e} |", flush=True)


if __name__ == "__main__":
    main()
