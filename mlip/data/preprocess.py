"""``mlip-preprocess SRC... OUT [--workers N] [--shard-size F]``: any supported source -> the sharded format of
:mod:`mlip.data.store`.

Sources are streamed by :func:`mlip.data.sources.iter_atoms` (MPtrj JSON, fairchem ``aselmdb``, legacy OC20
LMDB, ASE databases and every ``ase.io`` format; files or directories of LMDB files) and cut into shards of
``shard_size`` frames in file order, each source (each LMDB file) starting a new shard. ``workers`` processes write
the shards, at most ``2 * workers`` in flight, so memory is bounded by a few shards whatever the source's size.
LMDB files allow random access, so their workers also read and convert their own records; other sources are read
by the main process. Shard ``k`` always holds the same frames, so a rerun after an interruption finds the shards
already written, leaves them, and writes the rest; ``manifest.json`` is written last, atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from mlip.data.aselmdb import iter_aselmdb
from mlip.data.graph import Frame
from mlip.data.lmdb_env import lmdb_files, record_keys
from mlip.data.pyg_lmdb import iter_pyg_lmdb
from mlip.data.readers import LabelKeys, iter_frames, labelled_frame
from mlip.data.references import EnergyReferences
from mlip.data.sources import lmdb_kind
from mlip.data.store import FORMAT, VERSION, shard_name, write_shard
from mlip.errors import MLIPInputError

__all__ = ["iter_frames", "main", "preprocess"]


# per worker process: the label keys and reference energies, set once by the pool's initializer (the reference
# table of OC20 holds ~10^6 systems: too large to send with every task)
_WORKER: dict = {}


def _init_worker(keys: LabelKeys, references: EnergyReferences | None) -> None:
    _WORKER.update(keys=keys, references=references)


def _plan(
    sources: list[str | Path],
    shard_size: int,
    keys: LabelKeys,
    refs: EnergyReferences | None,
    mptrj_energy: str,
) -> Iterator[tuple]:
    """The shards to write, in order. An LMDB source (random access) becomes ``("lmdb", kind, file, keys)``
    tasks of ``shard_size`` records that a worker reads and converts itself, so reading scales with the workers;
    any other source is streamed here and cut into ``("frames", [Frame, ...])`` tasks. Each source starts a new
    shard."""
    for src in sources:
        kind = lmdb_kind(src)
        if kind is None:
            frames = iter_frames(src, keys, mptrj_energy=mptrj_energy, references=refs)
            yield from (("frames", chunk) for chunk in _chunks(frames, shard_size))
            continue
        for file in lmdb_files(src, ".aselmdb" if kind == "aselmdb" else ".lmdb"):
            rec = record_keys(file)
            yield from (("lmdb", kind, file, rec[i : i + shard_size]) for i in range(0, len(rec), shard_size))


def _write_task(task: tuple, directory: Path, context: dict | None = None) -> dict:
    """Write one planned shard (a complete one already on disk is only measured)."""
    if directory.is_dir():
        return write_shard([], directory)
    if task[0] == "frames":
        return write_shard(task[1], directory)
    _, kind, file, rec = task
    ctx = _WORKER if context is None else context
    keys, refs = ctx["keys"], ctx["references"]
    read = iter_aselmdb if kind == "aselmdb" else iter_pyg_lmdb
    frames = []
    for atoms in read(file, rec):
        where = f"{file.name}[{atoms.info.get('sid', '?')}/{atoms.info.get('fid', len(frames))}]"
        frames.append(labelled_frame(atoms, keys, refs, where=where))
    return write_shard(frames, directory)


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
        raise MLIPInputError(f"shard_size must be >= 1, got {shard_size}")
    keys = LabelKeys() if keys is None else keys
    settings = {
        "sources": [str(s) for s in sources],
        "shard_size": shard_size,
        "mptrj_energy": mptrj_energy,
        "fixed_tags": [int(t) for t in keys.fixed_tags],
        "energy_references": None if energy_references is None else str(Path(energy_references).resolve()),
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    old = out / "manifest.json"
    if old.is_file():
        previous = json.loads(old.read_text())
        changed = [k for k, v in settings.items() if previous.get(k, v if k == "fixed_tags" else None) != v]
        if changed:
            raise MLIPInputError(
                f"{out} holds a dataset made with other {', '.join(changed)}; use a new directory"
            )
    refs = None if energy_references is None else EnergyReferences.from_file(energy_references)
    tasks = _plan(sources, shard_size, keys, refs, mptrj_energy)
    infos: list[dict] = []
    if workers <= 1:
        context = {"keys": keys, "references": refs}
        infos = [_write_task(task, out / shard_name(k), context) for k, task in enumerate(tasks)]
    else:
        pending: list[Future] = []
        with ProcessPoolExecutor(
            max_workers=workers, initializer=_init_worker, initargs=(keys, refs)
        ) as pool:
            for k, task in enumerate(tasks):
                if (out / shard_name(k)).is_dir():  # complete already: only its size is read
                    infos.append(_write_task(task, out / shard_name(k)))
                    continue
                pending.append(pool.submit(_write_task, task, out / shard_name(k)))
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
