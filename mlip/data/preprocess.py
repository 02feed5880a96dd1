"""``mlip-preprocess SRC... OUT [--workers N] [--shard-size F]``: any supported source -> the sharded format of
:mod:`mlip.data.store`.

Sources are streamed by :func:`mlip.data.sources.iter_atoms` (MPtrj JSON, fairchem ``aselmdb``, legacy OC20
LMDB, ASE databases and every ``ase.io`` format; files or directories of LMDB files), cut into shards of ``shard_size`` frames in file order and written by ``workers``
processes, at most ``2 * workers`` shards in flight, so memory is bounded by a few shards whatever the source's
size. Shard ``k`` always holds frames ``k * shard_size ...`` of the concatenated sources, so a rerun after an
interruption finds the shards already written, leaves them, and writes the rest; ``manifest.json`` is written
last, atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from mlip.data.graph import Frame
from mlip.data.readers import LabelKeys, atoms_to_frame
from mlip.data.references import EnergyReferences
from mlip.data.sources import iter_atoms
from mlip.data.store import FORMAT, VERSION, shard_name, write_shard

__all__ = ["iter_frames", "main", "preprocess"]


def iter_frames(
    path: str | Path,
    keys: LabelKeys | None = None,
    *,
    mptrj_energy: str = "uncorrected",
    references: EnergyReferences | None = None,
) -> Iterator[Frame]:
    """Stream the labelled frames of one source (labels looked up with ``keys``, default search order;
    ``references`` subtracts per-system reference energies)."""
    keys = LabelKeys() if keys is None else keys
    name = Path(path).name
    for i, atoms in enumerate(iter_atoms(path, mptrj_energy=mptrj_energy)):
        where = f"{name}[{i}]"
        if "mp_id" in atoms.info:
            where = f"{name}:{atoms.info['mp_id']}/{atoms.info['frame_id']}"
        frame = atoms_to_frame(atoms, keys, where=where)
        yield frame if references is None else references.apply(frame, where=where)


def _chunks(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    chunk: list[Frame] = []
    for f in frames:
        chunk.append(f)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def preprocess(
    sources: list[str | Path],
    out: str | Path,
    *,
    shard_size: int = 10_000,
    workers: int = 1,
    keys: LabelKeys | None = None,
    mptrj_energy: str = "uncorrected",
    energy_references: str | Path | None = None,
) -> dict:
    """Convert ``sources`` into ``out`` (see the module docstring); returns the manifest.

    ``keys.fixed_tags`` marks atoms of those tags fixed (OC20: ``(0,)``); ``energy_references`` (a file read by
    :func:`mlip.data.references.load_energy_references`) stores referenced instead of total energies.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    keys = LabelKeys() if keys is None else keys
    settings = {
        "sources": [str(s) for s in sources],
        "shard_size": shard_size,
        "mptrj_energy": mptrj_energy,
        "fixed_tags": [int(t) for t in keys.fixed_tags],
        "energy_references": None if energy_references is None else str(energy_references),
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    old = out / "manifest.json"
    if old.is_file():
        previous = json.loads(old.read_text())
        changed = [k for k, v in settings.items() if previous.get(k, v if k == "fixed_tags" else None) != v]
        if changed:
            raise ValueError(
                f"{out} holds a dataset made with other {', '.join(changed)}; use a new directory"
            )
    refs = None if energy_references is None else EnergyReferences.from_file(energy_references)
    frames = (
        f for src in sources for f in iter_frames(src, keys, mptrj_energy=mptrj_energy, references=refs)
    )
    infos: list[dict] = []
    if workers <= 1:
        for k, chunk in enumerate(_chunks(frames, shard_size)):
            infos.append(write_shard(chunk, out / shard_name(k)))
    else:
        pending: list[Future] = []
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for k, chunk in enumerate(_chunks(frames, shard_size)):
                if (out / shard_name(k)).is_dir():
                    infos.append(
                        write_shard(chunk, out / shard_name(k))
                    )  # complete already: only reads its size
                    continue
                pending.append(pool.submit(write_shard, chunk, out / shard_name(k)))
                while len(pending) >= 2 * workers:
                    infos.append(pending.pop(0).result())
            infos.extend(p.result() for p in pending)
    infos.sort(key=lambda s: s["name"])
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        **settings,
        "n_frames": sum(s["n_frames"] for s in infos),
        "n_atoms": sum(s["n_atoms"] for s in infos),
        "shards": infos,
    }
    tmp = out / f"manifest.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / "manifest.json")
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mlip-preprocess", description=__doc__.split("\n\n")[0])
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
    args = p.parse_args(argv)
    start = time.perf_counter()
    manifest = preprocess(
        args.sources,
        args.out,
        shard_size=args.shard_size,
        workers=args.workers,
        mptrj_energy=args.mptrj_energy,
        keys=LabelKeys(fixed_tags=tuple(args.fixed_tags)),
        energy_references=args.energy_references,
    )
    dt = time.perf_counter() - start
    print(
        f"{manifest['n_frames']} frames ({manifest['n_atoms']} atoms) in {len(manifest['shards'])} shards -> "
        f"{args.out} in {dt:.1f} s ({manifest['n_frames'] / max(dt, 1e-9):.0f} frames/s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
