"""Any supported source -> the sharded format of :mod:`mlip.data.store` (the library of ``mlip-preprocess SRC...
OUT [--workers N] [--shard-size F]``, whose command line is :mod:`mlip.cli.preprocess`).

Sources are read through their frame source (:mod:`mlip.data.sources`: MPtrj JSON, fairchem ``aselmdb``, legacy
OC20 LMDB, ASE databases and every ``ase.io`` format; files or directories of LMDB files) and cut into shards of
``shard_size`` frames in file order, each source (each LMDB file) starting a new shard. ``workers`` processes write
the shards, at most ``2 * workers`` in flight, so memory is bounded by a few shards whatever the source's size. A
source with random access (the LMDB kinds) is read by the workers themselves, each its own records, through the
same source; other sources are read by the main process. Every frame passes :mod:`mlip.data.checks` (real elements, finite labels, plausible
magnitudes unless ``--no-unit-check``) before its shard is written: a shard at a time in the worker, vectorised,
or frame by frame as read when reference energies are subtracted (the bound holds for total energies).

Reruns. ``settings.json`` (the sources, named by resolved path, size and modification time, and every option)
is written atomically before the first shard. Shard ``k`` always holds the same frames, so a rerun with the same
settings after an interruption checks the shards already written (their checksums), keeps them, and writes the
rest; ``manifest.json`` is written last, atomically. A rerun with other settings (another source, another
``--shard-size``, a source file that changed since) is refused with the differences named, unless ``--restart``
asks to discard the directory's shards and start again: shards of two runs are never mixed. A directory holding
files that ``mlip-preprocess`` did not write is refused, and a lock keeps two runs out of one directory.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from mlip.data.checks import check_frame, check_frames
from mlip.data.graph import Frame
from mlip.data.readers import LabelKeys, labelled_frame, split_isolated_atoms
from mlip.data.references import EnergyReferences
from mlip.data.sources import source_named, source_of
from mlip.data.spec import DataSpec
from mlip.data.store import (
    FORMAT,
    SETTINGS,
    VERSION,
    shard_arrays,
    shard_name,
    verify_shard,
    write_manifest,
    write_shard,
)
from mlip.errors import MLIPFileNotFoundError, MLIPInputError, MLIPOutputError
from mlip.fileio import (
    DirectoryLock,
    check_output_dir,
    file_identity,
    settings_differences,
    write_json_atomic,
)

__all__ = ["preprocess", "run_settings", "claim_directory"]


# per worker process: the label keys and reference energies, set once by the pool's initializer (the reference
# table of OC20 holds ~10^6 systems: too large to send with every task)
_WORKER: dict = {}


def _init_worker(spec: DataSpec, references: EnergyReferences | None) -> None:
    _WORKER.update(spec=spec, references=references)


def _plan(
    sources: list[str | Path], shard_size: int, spec: DataSpec, refs: EnergyReferences | None
) -> Iterator[tuple]:
    """The shards to write, in order. A source with random access (:attr:`FrameSource.random_access`: the LMDB
    kinds) becomes ``("records", source name, file, keys)`` tasks of ``shard_size`` records that a worker reads
    through the same source and converts itself, so reading scales with the workers; any other source is streamed
    here and cut into ``("frames", [Frame, ...])`` tasks. Each source starts a new shard."""
    for src in sources:
        source = source_of(src)
        if not source.random_access:
            frames = spec.iter_frames(src, references=refs, check=_checked_here(refs))
            yield from (("frames", chunk) for chunk in _chunks(frames, shard_size))
            continue
        for file in source.files(Path(src)):
            rec = source.records(file)
            yield from (
                ("records", source.name, file, rec[i : i + shard_size])
                for i in range(0, len(rec), shard_size)
            )


def _checked_here(refs: EnergyReferences | None) -> bool:
    """Whether frames are checked one by one as they are read: only when reference energies are subtracted (the
    magnitude bound applies to total energies); otherwise :func:`_write_task` checks each shard's frames in bulk
    (:func:`mlip.data.checks.check_frames`), in the worker, at a fraction of the cost."""
    return refs is not None


def _write_task(task: tuple, directory: Path, context: dict | None = None) -> dict:
    """Check and write one planned shard, without its isolated atoms (:func:`mlip.data.readers.is_isolated_atom`,
    kept in the shard's ``isolated.json`` and the manifest); one already on disk is kept when it passes its
    checksums, else written again. A task of isolated atoms only writes no shard (``n_frames`` 0)."""
    if directory.is_dir():
        try:
            return verify_shard(directory)
        except MLIPInputError:
            shutil.rmtree(directory)
    ctx = _WORKER if context is None else context
    spec, refs = ctx["spec"], ctx["references"]
    keys = spec.keys
    if task[0] == "frames":
        frames = task[1]
    else:
        _, name, file, rec = task
        frames = []
        for atoms in source_named(name).read(file, rec):
            where = f"{file.name}[{atoms.info.get('sid', '?')}/{atoms.info.get('fid', len(frames))}]"
            frames.append(labelled_frame(atoms, keys, refs, where=where, check=_checked_here(refs)))
    if not _checked_here(refs):
        for f in frames:  # isolated atoms leave before the bulk check below
            if len(f.atoms) == 1:
                check_frame(f, units=keys.check_units)
    frames, isolated = split_isolated_atoms(frames)
    if not frames:
        return {"name": directory.name, "n_frames": 0, "n_atoms": 0, "isolated": _jsonable(isolated)}
    arrays = shard_arrays(frames)
    check_frames(frames, units=keys.check_units, arrays=arrays)
    return write_shard(frames, directory, arrays=arrays, isolated=isolated)


def _jsonable(isolated: dict[int, float]) -> dict[str, float]:
    return {str(z): float(e) for z, e in sorted(isolated.items())}


def _chunks(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    chunk: list[Frame] = []
    for f in frames:
        chunk.append(f)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


_OURS = re.compile(r"^(manifest\.json|settings\.json|statistics|shard-\d{6}(\.tmp-\d+)?|\..+\.tmp-.+)$")


def run_settings(sources: list[str | Path], *, shard_size: int, spec: DataSpec) -> dict:
    """What determines the shards' contents: the sources' identities (:func:`mlip.fileio.file_identity`; the
    spelling of a path does not matter, an edited file does), the shard size and the part of the data
    specification applied as frames are read (:meth:`mlip.data.spec.DataSpec.applied_when_read`), with the
    reference file's identity."""
    for s in sources:
        if not Path(s).exists():
            raise MLIPFileNotFoundError(f"no such source: {s}")
    refs = spec.energy_references
    if refs is not None and not Path(refs).is_file():
        raise MLIPFileNotFoundError(f"no such reference-energy file: {refs}")
    return {
        "format": FORMAT,
        "version": VERSION,
        "sources": [file_identity(s) for s in sources],
        "shard_size": shard_size,
        **_flat(spec.applied_when_read()),
        "energy_references": None if refs is None else file_identity(refs),
    }


def _flat(recorded: dict) -> dict:
    """The data specification with its label keys at the top level (so that a difference names the key)."""
    return {**{k: v for k, v in recorded.items() if k != "label_keys"}, **recorded["label_keys"]}


def _differences(old: dict, new: dict) -> list[str]:
    """The settings that differ (:func:`mlip.fileio.settings_differences`), a changed source named by its path."""
    out = []
    for key in settings_differences(old, new):
        if key == "sources":
            before = [s.get("path") for s in old.get(key) or []]
            after = [s.get("path") for s in new.get(key) or []]
            out.append(
                "sources (a source file changed since)"
                if before == after
                else f"sources ({before} -> {after})"
            )
        else:
            out.append(f"{key} ({old.get(key)!r} -> {new.get(key)!r})")
    return out


def claim_directory(out: Path, settings: dict, *, restart: bool = False) -> None:
    """Make ``out`` hold this run's settings (see the module docstring); refuse a foreign directory or one
    started with other settings unless ``restart``. The caller holds ``out``'s lock."""
    entries = [p for p in out.iterdir() if p.name != ".lock"]
    foreign = sorted(p.name for p in entries if not _OURS.match(p.name))
    if foreign:
        raise MLIPInputError(
            f"{out} holds files mlip-preprocess did not write ({', '.join(foreign[:5])}); use an empty or new "
            "output directory"
        )
    saved = out / SETTINGS
    written = [p for p in entries if ".tmp-" not in p.name]  # temporaries of a killed run are never complete
    if written and not restart:
        if not saved.is_file():
            raise MLIPInputError(
                f"{out} holds shards without a {SETTINGS} (written by an older mlip-preprocess), so they cannot be "
                "checked against this run: pass --restart to write the dataset again, or use a new directory"
            )
        try:
            previous = json.loads(saved.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError):
            previous = {}
        changed = _differences(previous, settings)
        if changed:
            raise MLIPInputError(
                f"{out} holds a dataset made with other {', '.join(changed)}; rerun with the same arguments to "
                "finish it, pass --restart to discard it and start again, or use a new directory"
            )
    for p in entries:
        if restart or ".tmp-" in p.name:  # a temporary left by a killed run is never complete
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    if restart or not saved.is_file():
        write_json_atomic(saved, settings, indent=1)


def preprocess(
    sources: list[str | Path],
    out: str | Path,
    *,
    shard_size: int = 10_000,
    workers: int = 1,
    spec: DataSpec | None = None,
    keys: LabelKeys | None = None,
    mptrj_energy: str = "uncorrected",
    energy_references: str | Path | None = None,
    restart: bool = False,
) -> dict:
    """Convert ``sources`` into ``out`` (see the module docstring); returns the manifest.

    ``spec`` (:class:`mlip.data.spec.DataSpec`) labels every frame, and the manifest records it (``data_spec``);
    ``keys``, ``mptrj_energy`` and ``energy_references`` are the short form of a spec with those fields (not
    both). ``keys.fixed_tags`` marks atoms of those tags fixed (OC20: ``(0,)``); ``energy_references`` (a file
    read by :func:`mlip.data.references.load_energy_references`) stores referenced instead of total energies.
    Isolated atoms are not written to the shards: the manifest keeps their energies (``isolated_atoms``,
    ``{"Z": eV}``). ``restart`` discards what an earlier run with other settings left in ``out``.
    """
    if shard_size < 1:
        raise MLIPInputError(f"shard_size must be >= 1, got {shard_size}")
    if workers < 1:
        raise MLIPInputError(f"workers must be >= 1, got {workers}")
    if spec is None:
        refs_path = None if energy_references is None else str(energy_references)
        spec = DataSpec(keys=LabelKeys() if keys is None else keys, mptrj_energy=mptrj_energy,
                        energy_references=refs_path)  # fmt: skip
    elif keys is not None or energy_references is not None or mptrj_energy != "uncorrected":
        raise MLIPInputError("preprocess: give the data specification (spec) or its parts, not both")
    settings = run_settings(sources, shard_size=shard_size, spec=spec)
    out = check_output_dir(out)
    with DirectoryLock(out, "mlip-preprocess run"):
        claim_directory(out, settings, restart=restart)
        refs = spec.references()
        infos = _write_all(_plan(sources, shard_size, spec, refs), out, workers, spec, refs)
        isolated: dict[str, float] = {}
        for info in infos:
            isolated.update(info.pop("isolated", None) or {})
        infos = sorted((i for i in infos if i["n_frames"] > 0), key=lambda i: i["name"])
        if not infos:
            raise MLIPInputError(f"the sources hold no frames: {', '.join(map(str, sources))}")
        recorded = spec.applied_when_read()
        return write_manifest(
            out,
            {
                "sources": [str(s) for s in sources],
                "shard_size": shard_size,
                "data_spec": recorded,
                "isolated_atoms": isolated,
                "mptrj_energy": spec.mptrj_energy,
                "fixed_tags": recorded["fixed_tags"],
                "stress_transform": recorded["label_keys"]["stress_transform"],
                "energy_references": recorded["energy_references"],
                "n_frames": sum(s["n_frames"] for s in infos),
                "n_atoms": sum(s["n_atoms"] for s in infos),
                "shards": infos,
            },
        )


def _write_all(tasks, out: Path, workers: int, spec: DataSpec, refs) -> list[dict]:
    """Write the planned shards (at most ``2 * workers`` in flight); returns their summaries."""
    if workers <= 1:
        context = {"spec": spec, "references": refs}
        return [_write_task(task, out / shard_name(k), context) for k, task in enumerate(tasks)]
    infos: list[dict] = []
    pending: list[Future] = []
    try:
        with ProcessPoolExecutor(
            max_workers=workers, initializer=_init_worker, initargs=(spec, refs)
        ) as pool:
            for k, task in enumerate(tasks):
                if (out / shard_name(k)).is_dir():  # written already: checked here
                    infos.append(_write_task(task, out / shard_name(k)))
                    continue
                pending.append(pool.submit(_write_task, task, out / shard_name(k)))
                while len(pending) >= 2 * workers:
                    infos.append(pending.pop(0).result())
            infos.extend(p.result() for p in pending)
    except BrokenProcessPool as err:
        raise MLIPOutputError(
            f"a worker process writing {out} died (killed, or out of memory); rerun the same command to continue "
            "(the shards already written are kept)"
        ) from err
    return infos
