"""``mlip-relax IN OUT --model PATH [--fmax F] [--steps N] [--relax-cell] [--engine auto|torchsim|ase] ...``.

Relaxes every structure of ``IN`` (a file with one or many frames, or a directory of such files, read in sorted
order) and writes ``OUT`` (any format ASE writes, chosen by its name) with the relaxed frames, their energies,
forces, stress, ``info["relax_converged"]`` and ``info["relax_steps"]``.

Engines: ``torchsim`` relaxes the structures in batches on the device (:func:`~mlip.sim.batch_relax.relax_many`:
TorchSim's FIRE, systems swapped in and out under ``--max-atoms``); ``ase`` one at a time
(:func:`mlip.sim.relax`, FIRE or BFGS, ``FrechetCellFilter``). ``auto`` (default) takes ``torchsim`` when
TorchSim is installed (``pip install 'mlip[sim]'``) and the optimizer is FIRE, and sends the structures it cannot take
(slabs with mixed periodicity, ASE constraints) through ``ase``. Nothing is lost on the way:

* ``OUT`` is checked (its directory writable, its format known) before any work starts;
* each relaxed structure is appended to ``OUT.partial.extxyz`` as soon as it is done (one ``write`` and an
  ``fsync``), with ``info["relax_index"]`` (its index in ``IN``), ``relax_converged`` and ``relax_steps``;
  ``OUT.partial.json`` records the run's settings;
* a rerun with the same input, model and options after an interruption continues after the last structure done; a
  rerun with others is refused until the partial files are deleted;
* two runs writing one ``OUT`` at once are refused (a lock on ``.OUT.lock``);
* a structure that cannot be relaxed (overlapping atoms, an element the model does not know, NaN positions) is
  reported by its index and skipped, and the others still run;
* ``OUT`` itself is written at the end, atomically, and the partial files removed.

Exit status: 0 when every structure converged, 1 when some did not converge or were skipped, 2 for a user error
(bad model file, unreadable input, unwritable output).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import ase.io
from ase.calculators.singlepoint import SinglePointCalculator

from mlip.calculators.ase_calculator import MLIPCalculator
from mlip.cli import add_debug_flag, console_main
from mlip.cli.appended import append_frame, read_complete_frames
from mlip.data.sources import iter_atoms, sources
from mlip.errors import MLIPError, MLIPInputError
from mlip.fileio import (
    FileLock,
    atomic_path,
    atomic_write,
    check_output_file,
    claim_run_record,
    file_identity,
)
from mlip.sim.relax import relax

__all__ = ["output_format", "main"]


def output_format(path: Path) -> str:
    """The ASE format that ``path``'s name asks for, or a clear error (checked before any work starts)."""
    from ase.io.formats import filetype, ioformats

    try:
        fmt = filetype(str(path), read=False, guess=False)
    except Exception as err:
        raise MLIPInputError(f"cannot tell the output format from the name {path} ({err})") from None
    if fmt not in ioformats or not ioformats[fmt].can_write:
        raise MLIPInputError(f"ASE cannot write the format {fmt!r} of {path}")
    return fmt


def _partial_paths(out: Path) -> tuple[Path, Path]:
    return out.with_name(out.name + ".partial.extxyz"), out.with_name(out.name + ".partial.json")


def _resume_state(out: Path, settings: dict) -> list[ase.Atoms]:
    """The structures an interrupted run with the same settings finished; refuse a partial file of another run."""
    partial, sidecar = _partial_paths(out)
    resumed = claim_run_record(
        sidecar, settings, outputs=[partial], holder=str(partial),
        advice=f"rerun with the same input, model and options to finish it, or delete {partial} and {sidecar}",
    )  # fmt: skip
    if not resumed:
        return []
    done = read_complete_frames(partial)
    with atomic_write(partial, "wb") as fh:  # rewritten without a torn tail, if any
        buf = io.StringIO()
        ase.io.write(buf, done, format="extxyz")
        fh.write(buf.getvalue().encode())
    return done


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="mlip-relax", description="Relax every structure of IN and write OUT.")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--model", required=True, help="mlip model file")
    p.add_argument("--fmax", type=float, default=0.01, help="force threshold, eV/Å (default 0.01)")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--relax-cell", action="store_true", help="relax the cell too (FrechetCellFilter)")
    p.add_argument("--optimizer", default="fire", choices=["fire", "bfgs"])
    p.add_argument(
        "--engine",
        default="auto",
        choices=["auto", "torchsim", "ase"],
        help="batched through TorchSim, one by one through ASE, or auto (module docstring)",
    )
    p.add_argument("--max-atoms", type=int, default=2048, help="atoms relaxed at once by the torchsim engine")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default=None, choices=["float32", "float64"])
    p.add_argument("--compile", action="store_true", help="run the network through torch.compile")
    add_debug_flag(p)
    args = p.parse_args(argv)
    if not args.fmax > 0 or args.steps < 1 or args.max_atoms < 1:
        p.error("--fmax must be > 0, --steps >= 1 and --max-atoms >= 1")
    args.requested_engine = args.engine
    args.engine = _engine(args.engine, args.optimizer)
    return args


def _engine(requested: str, optimizer: str) -> str:
    """The engine that will run: ``torchsim`` or ``ase`` (``auto`` resolved; a user error when impossible)."""
    try:
        import torch_sim  # noqa: F401

        have = True
    except ImportError:
        have = False
    if requested == "torchsim":
        if not have:
            raise MLIPInputError("--engine torchsim needs TorchSim: pip install 'mlip[sim]'")
        if optimizer != "fire":
            raise MLIPInputError("--engine torchsim relaxes with FIRE only; use --engine ase for BFGS")
        return "torchsim"
    if requested == "auto" and have and optimizer == "fire":
        return "torchsim"
    return "ase"


@console_main("mlip-relax")
def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    src, out = Path(args.input), Path(args.output)
    if not src.exists():
        raise MLIPInputError(f"no such input file: {src}")
    fmt = output_format(out)
    check_output_file(out, what="output file", inputs=[src, args.model])
    for side in _partial_paths(out):
        check_output_file(side, what="output file", inputs=[src, args.model])
    calc = MLIPCalculator(args.model, device=args.device, dtype=args.dtype, compile=args.compile)
    settings = {
        "input": file_identity(src),
        "model": file_identity(args.model),
        **{k: getattr(args, k) for k in ("fmax", "steps", "relax_cell", "optimizer", "dtype", "engine")},
    }
    with FileLock(out.with_name(f".{out.name}.lock"), out, "mlip-relax run"):
        return _run(args, src, out, fmt, calc, settings)


def _run(args, src: Path, out: Path, fmt: str, calc, settings: dict) -> int:
    partial, sidecar = _partial_paths(out)
    done = _resume_state(out, settings)
    finished = {int(a.info["relax_index"]) for a in done}
    if finished:
        print(f"continuing {partial}: {len(finished)} structures already relaxed", file=sys.stderr)
    counts = {"skipped": [], "unconverged": 0}
    pending = ((i, atoms) for i, atoms in enumerate(_read_inputs(src)) if i not in finished)
    if args.engine == "torchsim":
        from mlip.sim.batch_relax import relax_many
        from mlip.sim.torchsim import MLIPModel

        for_ase: list[tuple[int, object]] = []
        batched = _route(pending, for_ase, args.relax_cell) if args.requested_engine == "auto" else pending
        model = MLIPModel(calc.model, device=args.device)
        for result in relax_many(batched, model, fmax=args.fmax, steps=args.steps, relax_cell=args.relax_cell,
                                 max_atoms=args.max_atoms):  # fmt: skip
            _record(partial, src, result, counts)
        pending = iter(for_ase)
    for i, atoms in pending:
        _record(partial, src, _relax_one(args, calc, i, atoms), counts)
    skipped, unconverged = counts["skipped"], counts["unconverged"]
    frames = sorted(read_complete_frames(partial), key=lambda a: int(a.info["relax_index"]))
    with atomic_path(out) as tmp:
        ase.io.write(str(tmp), frames, format=fmt)
    partial.unlink(missing_ok=True)
    sidecar.unlink(missing_ok=True)
    total = len(frames) + len(skipped)
    print(
        f"{len(frames)} of {total} structures written to {out}; {unconverged} not converged"
        + (f"; skipped (see above): {skipped}" if skipped else ""),
        file=sys.stderr,
    )
    return 1 if skipped or unconverged else 0


def _read_inputs(src: Path):
    """The structures of ``src``: a file (any format :func:`mlip.data.iter_atoms` reads) or a directory of files
    (sorted by name; hidden files left out), each frame with ``info["relax_source"]`` naming its file."""
    if not src.is_dir() or any(
        source.detect(src) for source in sources()
    ):  # one source: a file or an LMDB set
        yield from iter_atoms(src)
        return
    files = sorted(p for p in src.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise MLIPInputError(f"the input directory {src} holds no files")
    for path in files:
        try:
            for atoms in iter_atoms(path):
                atoms.info["relax_source"] = path.name
                yield atoms
        except MLIPError:
            raise
        except Exception as err:
            raise MLIPInputError(f"{path}: cannot read it as a structure file ({err})") from None


def _route(items, aside: list, relax_cell: bool = False):
    """Yield the structures for TorchSim; put those only ASE can relax (ASE constraints, mixed periodicity, and with
    ``relax_cell`` anything not fully periodic) in ``aside``, to run after (read lazily, in order)."""
    for index, atoms in items:
        if (
            atoms.constraints
            or (atoms.pbc.any() and not atoms.pbc.all())
            or (relax_cell and not atoms.pbc.all())
        ):
            aside.append((index, atoms))
        else:
            yield index, atoms


def _relax_one(args, calc, index: int, atoms):
    """One structure through ASE, as a :class:`~mlip.sim.batch_relax.RelaxResult`."""
    from mlip.sim.batch_relax import RelaxResult

    cell = args.relax_cell and bool(atoms.pbc.all())
    if args.relax_cell and not cell:  # a molecule or a slab: its positions are relaxed, its cell kept
        print(f"mlip-relax: [{index}] is not periodic in all three directions: positions relaxed, cell kept",
              file=sys.stderr)  # fmt: skip
    try:
        relaxed, ok, steps = relax(
            atoms, calc, fmax=args.fmax, steps=args.steps, relax_cell=cell,
            optimizer=args.optimizer, return_steps=True,
        )  # fmt: skip
    except MLIPError as err:
        return RelaxResult(index, None, False, 0, error=" ".join(str(err).split()))
    relaxed.calc = SinglePointCalculator(relaxed, **dict(calc.results))
    return RelaxResult(index, relaxed, ok, steps)


def _record(partial: Path, src: Path, result, counts: dict) -> None:
    """Append a finished structure to the partial file (or report why it was skipped)."""
    i = result.index
    if result.error is not None:
        counts["skipped"].append(i)
        print(f"mlip-relax: {src.name}[{i}] skipped: {result.error}", file=sys.stderr)
        return
    relaxed = result.atoms
    relaxed.info.update(relax_index=i, relax_converged=result.converged, relax_steps=result.steps)
    counts["unconverged"] += not result.converged
    append_frame(partial, relaxed)
    results = relaxed.calc.results
    print(
        f"[{i}] {relaxed.get_chemical_formula()}: E = {results['energy']:.6f} eV, "
        f"max|F| = {abs(results['forces']).max():.4g} eV/Å, converged = {result.converged}, steps = {result.steps}"
    )


if __name__ == "__main__":
    sys.exit(main())
