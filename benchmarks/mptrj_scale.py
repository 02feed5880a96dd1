"""MPtrj at scale on one machine: a synthetic MPtrj-layout JSON streamed into the preprocessed format, then read
back with neighbour lists in data-loader workers. Prints peak memory and throughput of each stage.

    python benchmarks/mptrj_scale.py [--gigabytes 2] [--workers 2] [--shard-size 10000] [--iterate 500000]
        [--workdir /tmp/mptrj_scale] [--reuse]

1. ``write_synthetic_mptrj`` replicates ``../shared/data/mptrj_sample/orb_mptrj_reconstructed.json`` with perturbed
   positions until the file reaches ``--gigabytes``.
2. ``mlip-preprocess`` runs in a child process; its peak RSS (``ru_maxrss`` of the child) and frames/s are printed.
3. A ``DataLoader`` with ``--workers`` workers and batches of 32 builds graphs (r_max 6 Å) for up to ``--iterate``
   frames; frames/s and the RSS of the main process and its workers (sampled every 5 s) are printed.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "mptrj_sample" / "orb_mptrj_reconstructed.json"


def _rss_mb(pid: int) -> tuple[float, float]:
    """``(anonymous, file-backed)`` resident MB of one process (file-backed: mapped shard pages, reclaimable)."""
    anon = file = 0.0
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    anon = int(line.split()[1]) / 1024
                elif line.startswith("RssFile:"):
                    file = int(line.split()[1]) / 1024
    except OSError:
        pass
    return anon, file


def _tree_rss_mb(pid: int) -> tuple[float, float]:
    anon, file = _rss_mb(pid)
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for c in children:
        a, f = _tree_rss_mb(int(c))
        anon, file = anon + a, file + f
    return anon, file


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gigabytes", type=float, default=2.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--shard-size", type=int, default=10_000)
    p.add_argument("--iterate", type=int, default=500_000)
    p.add_argument("--workdir", default="/tmp/mptrj_scale")
    p.add_argument(
        "--reuse", action="store_true", help="skip preprocessing when WORKDIR/preprocessed is complete"
    )
    args = p.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    src = work / "synthetic_mptrj.json"
    target = int(args.gigabytes * 1e9)
    if not src.is_file() or src.stat().st_size < 0.99 * target:
        from mlip.testing.synthetic import write_synthetic_mptrj

        t = time.perf_counter()
        info = write_synthetic_mptrj(SAMPLE, src, copies=10**9, target_bytes=target)
        print(f"synthetic: {info['frames']} frames, {info['materials']} materials, {info['bytes'] / 1e9:.2f} GB "
              f"in {time.perf_counter() - t:.0f} s", flush=True)  # fmt: skip
    out = work / "preprocessed"
    if args.reuse and (out / "manifest.json").is_file():
        print(f"reusing {out}")
    else:
        _preprocess(src, out, args)
    _iterate(out, args)


def _preprocess(src: Path, out: Path, args) -> None:
    shutil.rmtree(out, ignore_errors=True)  # a fresh conversion, timed from scratch
    t = time.perf_counter()
    cmd = [sys.executable, "-m", "mlip.cli.preprocess", str(src), str(out), "--workers", str(args.workers),
           "--shard-size", str(args.shard_size)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(proc.stdout.strip())
    print(
        f"preprocess: {time.perf_counter() - t:.0f} s wall, peak RSS of the largest process {peak:.0f} MB",
        flush=True,
    )


def _iterate(out: Path, args) -> None:
    import torch

    from mlip.data.batch import collate
    from mlip.data.store import PreprocessedDataset

    torch.set_num_threads(1)
    ds = PreprocessedDataset(out, r_max=6.0)
    n = min(len(ds), args.iterate)
    subset = torch.utils.data.Subset(ds, range(n))
    loader = torch.utils.data.DataLoader(subset, batch_size=32, num_workers=args.workers, collate_fn=collate)
    t0 = last = time.perf_counter()
    seen, samples = 0, []
    for batch in loader:
        seen += int(batch["n_atoms"].shape[0])
        now = time.perf_counter()
        if now - last >= 5.0:
            samples.append((seen, now - t0, *_tree_rss_mb(os.getpid())))
            last = now
    dt = time.perf_counter() - t0
    print(f"iterate: {seen} frames with neighbour lists (r_max 6 Å, {args.workers} workers) in {dt:.0f} s, "
          f"{seen / dt:.0f} frames/s")  # fmt: skip
    for s, t, anon, file in samples[:: max(1, len(samples) // 10)]:
        print(
            f"  {s:>8d} frames  {t:6.0f} s  RSS of main + workers: anonymous {anon:6.0f} MB, file-backed {file:6.0f} MB"
        )


if __name__ == "__main__":
    main()
