"""``mlip-preprocess SRC... OUT [--workers N] [--shard-size F] [label options]``: any supported source -> the
sharded format of :mod:`mlip.data.store`, by :func:`mlip.data.preprocess.preprocess` (whose docstring describes
the sources, the shards, reruns and the data specification recorded)."""

from __future__ import annotations

import argparse
import time

from mlip.cli.console import add_debug_flag, add_pbc_flag, console_main, pbc_flags
from mlip.data.preprocess import preprocess
from mlip.data.spec import DataSpec
from mlip.data.stress_check import StressTransform

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    """The command line of ``mlip-preprocess``."""
    p = argparse.ArgumentParser(
        prog="mlip-preprocess", description="Any supported source -> the sharded format of mlip.data.store."
    )
    p.add_argument(
        "sources", nargs="+",
        help="data files or directories (MPtrj JSON, aselmdb, OC20 LMDB, extxyz, ASE db, any ASE format)",
    )  # fmt: skip
    p.add_argument("out", help="output directory")
    p.add_argument("--workers", type=int, default=1, help="processes writing shards (default 1)")
    p.add_argument("--shard-size", type=int, default=10_000, help="frames per shard (default 10000)")
    p.add_argument("--mptrj-energy", choices=["uncorrected", "corrected"], default="uncorrected")
    p.add_argument(
        "--fixed-tags", type=int, nargs="*", default=[], metavar="TAG",
        help="atoms with these tags are fixed, out of the force loss (OC20: 0, the subsurface atoms)",
    )  # fmt: skip
    p.add_argument(
        "--energy-references", metavar="FILE", default=None,
        help="subtract per-system reference energies (OC20 S2EF .txt files or oc20_ref.pkl): adsorption energies",
    )  # fmt: skip
    for label in ("energy", "forces", "stress", "virials", "charges"):
        p.add_argument(f"--{label}-key", default=None, help=f"info/arrays key of the {label} labels")
    p.add_argument("--no-unit-check", action="store_true", help="accept labels of implausible magnitude")
    add_pbc_flag(
        p, "give every frame this periodicity (T T F: OC20's frames as slabs, for long-range models)"
    )
    p.add_argument(
        "--stress-transform", choices=[t.value for t in StressTransform], default="none",
        help="fix every stress label as it is read (mlip.data.stress_check; e.g. swap_xz_yz)",
    )  # fmt: skip
    p.add_argument(
        "--restart", action="store_true",
        help="discard what an earlier run with other settings left in OUT and start again",
    )  # fmt: skip
    add_debug_flag(p)
    return p


@console_main("mlip-preprocess")
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    labels = ("energy", "forces", "stress", "virials", "charges")
    spec = DataSpec.from_options(  # the data specification a training config's data section would give
        **{f"{label}_key": getattr(args, f"{label}_key") for label in labels},
        fixed_tags=args.fixed_tags, check_units=not args.no_unit_check, stress_transform=args.stress_transform,
        mptrj_energy=args.mptrj_energy, energy_references=args.energy_references,
        pbc=pbc_flags(args.pbc),
    )  # fmt: skip
    start = time.perf_counter()
    manifest = preprocess(
        args.sources,
        args.out,
        shard_size=args.shard_size,
        workers=args.workers,
        spec=spec,
        restart=args.restart,
    )
    dt = time.perf_counter() - start
    print(
        f"{manifest['n_frames']} frames ({manifest['n_atoms']} atoms) in {len(manifest['shards'])} shards -> "
        f"{args.out} in {dt:.1f} s ({manifest['n_frames'] / max(dt, 1e-9):.0f} frames/s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
