"""OC20 LMDB layouts at scale: read throughput of each layout, and ``mlip-preprocess`` from LMDB directories with
1 and N workers (LMDB records are read by the workers themselves).

    python benchmarks/oc20_lmdb.py [--frames 40000] [--files 4] [--workers 2] [--workdir /tmp/oc20_lmdb] [--reuse]

1. The two sample trajectories of ``../shared/data/oc20_s2ef_sample/traj`` (63 frames, 49 and 97 atoms) are
   replicated with Gaussian position noise (0.02 Å; labels copied: for throughput, not physics) into ``--files``
   legacy LMDB files (pickled PyG records, as fairchem's ``preprocess_ef.py`` writes them) and as many ``aselmdb``
   files, ``--frames`` frames in all, plus one extxyz file of the same frames for comparison.
2. Each layout is read once through :func:`mlip.data.sources.iter_atoms` and converted to labelled frames
   (frames/s, one process).
3. ``mlip-preprocess`` converts each LMDB directory with 1 and ``--workers`` workers in a child process
   (frames/s and the child's peak RSS).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import ase.io
import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator

ROOT = Path(__file__).resolve().parents[1]
TRAJ = ROOT.parent / "shared" / "data" / "oc20_s2ef_sample" / "traj"


def _images(n: int, seed: int):
    base = [a for p in sorted(TRAJ.glob("*.traj")) for a in ase.io.read(p, ":")]
    rng = np.random.default_rng(seed)
    for i in range(n):
        src = base[i % len(base)]
        atoms = src.copy()
        atoms.positions += rng.normal(scale=0.02, size=atoms.positions.shape)
        atoms.calc = SinglePointCalculator(atoms, **src.calc.results)
        yield atoms


def _write(workdir: Path, frames: int, files: int) -> None:
    from mlip.data.aselmdb import write_aselmdb
    from mlip.testing.oc20_lmdb import write_pyg_lmdb

    for d in ("pyg", "aselmdb"):
        shutil.rmtree(workdir / d, ignore_errors=True)
        (workdir / d).mkdir(parents=True)
    per_file = -(-frames // files)
    t = time.perf_counter()
    for k in range(files):
        n = min(per_file, frames - k * per_file)
        write_pyg_lmdb(workdir / "pyg" / f"data.{k:04d}.lmdb", _images(n, k), sid=1000 + k)
        write_aselmdb(workdir / "aselmdb" / f"data.{k:04d}.aselmdb", _images(n, k))
    ase.io.write(workdir / "frames.extxyz", list(_images(min(frames, 5000), 0)))
    print(
        f"wrote {frames} frames per LMDB layout in {files} files in {time.perf_counter() - t:.0f} s",
        flush=True,
    )


def _read(path: Path) -> None:
    from mlip.data.readers import atoms_to_frame
    from mlip.data.sources import iter_atoms

    t = time.perf_counter()
    n = sum(1 for atoms in iter_atoms(path) if atoms_to_frame(atoms) is not None)
    dt = time.perf_counter() - t
    size = sum(f.stat().st_size for f in ([path] if path.is_file() else path.iterdir()))
    print(
        f"read {path.name}: {n} frames in {dt:.1f} s, {n / dt:.0f} frames/s ({size / 1e6:.0f} MB)", flush=True
    )


def _preprocess(src: Path, out: Path, workers: int) -> None:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "mlip.cli.preprocess", str(src), str(out), "--workers", str(workers)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    dt = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"preprocess {src.name}, {workers} worker(s): {proc.stdout.strip()}; wall {dt:.1f} s, "
          f"peak RSS so far {peak:.0f} MB", flush=True)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=40_000)
    p.add_argument("--files", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/oc20_lmdb"))
    p.add_argument("--reuse", action="store_true", help="keep the LMDB files of an earlier run")
    args = p.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if not (args.reuse and (args.workdir / "pyg").is_dir()):
        _write(args.workdir, args.frames, args.files)
    for src in (args.workdir / "frames.extxyz", args.workdir / "pyg", args.workdir / "aselmdb"):
        _read(src)
    for src in (args.workdir / "pyg", args.workdir / "aselmdb"):
        for workers in sorted({1, args.workers}):
            _preprocess(src, args.workdir / f"out_{src.name}_{workers}", workers)


if __name__ == "__main__":
    main()
