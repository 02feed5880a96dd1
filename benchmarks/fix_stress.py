"""Write a copy of a data file with its stress labels fixed, for codes that cannot apply ``data.stress_transform``
themselves (an older mlip commit, another package), and print what :mod:`mlip.data.stress_check` says about the
stresses before and after.

Usage::

    python benchmarks/fix_stress.py ../shared/data/zuo2020_elemental/Mo_training.extxyz /tmp/Mo_fixed.extxyz \\
        --transform swap_xz_yz

Every frame is copied with its calculator results (energy, forces, stress in ASE's convention) and ``info``; only
the stress changes. The output is written to a temporary file next to it and renamed, so it appears whole or not
at all.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from mlip.data import LabelKeys, read_frames
from mlip.data.stress_check import StressTransform, apply_stress_transform, check_stress_labels


def _summary(path: Path, transform: StressTransform) -> str:
    result = check_stress_labels(read_frames(path, LabelKeys(stress_transform=transform)))
    rms = ", ".join(f"{k} {v:.2f}" for k, v in result.rms.items())
    return f"{result.pairs} strained pairs; rms meV/atom with each further transform: {rms}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source")
    p.add_argument("out")
    p.add_argument("--transform", required=True, choices=[t.value for t in StressTransform])
    a = p.parse_args(argv)
    transform = StressTransform(a.transform)
    out = Path(a.out)
    print(f"{a.source} as written: {_summary(Path(a.source), StressTransform.NONE)}")
    frames = read(a.source, ":")
    for atoms in frames:
        results = dict(atoms.calc.results)
        results["stress"] = apply_stress_transform(atoms.get_stress(voigt=False), transform)
        atoms.calc = SinglePointCalculator(atoms, **results)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}.extxyz")
    write(tmp, frames, format="extxyz")
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, out)
    print(f"{out} ({len(frames)} frames): {_summary(out, StressTransform.NONE)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
