"""``mlip-md IN OUT.extxyz --model PATH [--ensemble nve|nvt|npt] [--temperature K] [--timestep FS] [--steps N] ...``.

Runs molecular dynamics of the structures of ``IN`` (one: ASE's integrators; several: all at once through
TorchSim; see :mod:`mlip.sim.md`) and writes, every ``--interval`` steps,

* ``OUT.extxyz``: one frame per structure with positions, momenta, cell, ``info["md_step"]``, ``md_time_ps``,
  ``md_system`` (its index in ``IN``) and the energies;
* ``OUT.extxyz.log``: a CSV line per structure, ``step,time_ps,system,epot_eV,ekin_eV,etot_eV,temperature_K,
  pressure_GPa``.

Both are appended as the run goes (one ``write`` and an ``fsync`` per interval). A rerun with the same input, model
and settings after an interruption continues from the last interval every structure completed (the files are cut
back to it; NVE continues the same trajectory exactly, thermostats draw new noise); a rerun with a larger
``--steps`` extends a finished run the same way; a rerun with other settings is refused.
``OUT.extxyz.md.json`` records the settings. Exit status 0 when the run finished, 2 for a user error (a negative
temperature, a zero time step, NPT for a molecule, an element the model does not know, an unreadable input).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import ase.io

from mlip import keys as K
from mlip.calculators.ase_calculator import MLIPCalculator
from mlip.cli import add_debug_flag, console_main
from mlip.cli.appended import read_complete_frames
from mlip.data import atoms_to_graph
from mlip.data.sources import iter_atoms
from mlip.errors import MLIPInputError
from mlip.fileio import (
    FileLock,
    append_bytes,
    atomic_write,
    check_output_file,
    claim_run_record,
    file_identity,
)
from mlip.sim.md import Ensemble, MDSettings, Thermostat
from mlip.sim.md_run import make_run

LOG_HEADER = "step,time_ps,system,epot_eV,ekin_eV,etot_eV,temperature_K,pressure_GPa\n"


__all__ = ["main", "LOG_HEADER"]


def _parse(argv) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="mlip-md", description="Molecular dynamics of the structures of IN.")
    p.add_argument("input")
    p.add_argument("output", help="trajectory, .extxyz (or .xyz)")
    p.add_argument("--model", required=True)
    p.add_argument("--ensemble", default="nve", choices=[e.value for e in Ensemble])
    p.add_argument(
        "--temperature", type=float, default=300.0, help="K: thermostat target and starting momenta"
    )
    p.add_argument("--timestep", type=float, default=1.0, help="fs")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--interval", type=int, default=10, help="steps between frames and log lines")
    p.add_argument("--thermostat", default="langevin", choices=[t.value for t in Thermostat])
    p.add_argument("--friction", type=float, default=10.0, help="Langevin friction, 1/ps")
    p.add_argument("--tdamp", type=float, default=100.0, help="Nosé-Hoover damping time, fs")
    p.add_argument("--pressure", type=float, default=0.0, help="NPT external pressure, GPa")
    p.add_argument("--pdamp", type=float, default=1000.0, help="barostat time, fs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--engine", default="auto", choices=["auto", "ase", "torchsim"],
                   help="auto: ASE for one structure, TorchSim for several")  # fmt: skip
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default=None, choices=["float32", "float64"])
    p.add_argument(
        "--skin", type=float, default=0.5, help="Verlet skin of the ASE engine's neighbour list, Å"
    )
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    add_debug_flag(p)
    return p.parse_args(argv)


def _settings(args) -> MDSettings:
    return MDSettings(
        ensemble=args.ensemble, temperature_K=args.temperature, timestep_fs=args.timestep, steps=args.steps,
        interval=args.interval, thermostat=args.thermostat, friction_per_ps=args.friction, tdamp_fs=args.tdamp,
        pressure_GPa=args.pressure, pdamp_fs=args.pdamp, seed=args.seed,
    )  # fmt: skip


@console_main("mlip-md")
def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    settings = _settings(args)  # validated before any file is read
    src, out = Path(args.input), Path(args.output)
    if out.suffix not in (".extxyz", ".xyz"):
        raise MLIPInputError(f"{out}: the trajectory is written as extended XYZ; name it .extxyz or .xyz")
    if not src.exists():
        raise MLIPInputError(f"no such input file: {src}")
    check_output_file(out, what="trajectory file", inputs=[src, args.model])
    for side in (out.with_name(out.name + ".log"), out.with_name(out.name + ".md.json")):
        check_output_file(side, what="output file", inputs=[src, args.model])
    structures = list(iter_atoms(src))
    if not structures:
        raise MLIPInputError(f"{src} holds no structures")
    engine = args.engine if args.engine != "auto" else ("ase" if len(structures) == 1 else "torchsim")
    calc = MLIPCalculator(args.model, device=args.device, dtype=args.dtype, skin=args.skin)
    _check_frames(structures, calc, src)
    record = {"input": file_identity(src), "model": file_identity(args.model), "engine": engine,
              "dtype": args.dtype, **{k: str(v) for k, v in vars(settings).items() if k != "steps"}}  # fmt: skip
    with FileLock(out.with_name(f".{out.name}.lock"), out, "mlip-md run"):
        start = _resume(out, record, structures)
        if start >= settings.steps:
            print(f"{out} already holds all {settings.steps} steps", file=sys.stderr)
            return 0
        run = make_run(structures, calc, settings, engine=engine)
        if start == 0:
            _write(out, run.snapshots(), 0, settings)
        _loop(run, out, start, settings, args.progress)
    print(
        f"wrote {out} and {out.name}.log ({settings.steps} steps, {len(structures)} structures)",
        file=sys.stderr,
    )
    return 0


def _check_frames(structures, calc, src: Path) -> None:
    """Every structure is one the model can evaluate (elements, overlaps, NaN, cell), named by its index."""
    for k, atoms in enumerate(structures):
        graph = atoms_to_graph(atoms, calc.model.r_max, where=f"{src.name}[{k}]")
        try:
            calc.model.species.check(graph[K.ATOMIC_NUMBERS])
        except MLIPInputError as err:
            raise MLIPInputError(f"{src.name}[{k}]: {err}") from None


def _loop(run, out: Path, start: int, settings: MDSettings, progress: bool) -> None:
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=settings.steps, initial=start, unit="step", desc="mlip-md")
    step = start
    while step < settings.steps:
        n = min(settings.interval, settings.steps - step)
        run.advance(n)
        step += n
        _write(out, run.snapshots(), step, settings)
        if bar is not None:
            bar.update(n)
    if bar is not None:
        bar.close()


def _write(out: Path, snapshots, step: int, settings: MDSettings) -> None:
    """Append one interval: the frames first, then the log lines (a resume trusts the frames and rebuilds any log
    line a kill between the two writes lost, :func:`_cut_log`)."""
    time_ps = step * settings.timestep_fs / 1000
    buf, lines = io.StringIO(), []
    for k, snap in enumerate(snapshots):
        atoms = snap.atoms
        atoms.info.update(md_step=step, md_time_ps=time_ps, md_system=k, md_epot=snap.epot, md_ekin=snap.ekin,
                          md_temperature=snap.temperature_K, md_pressure=snap.pressure_GPa)  # fmt: skip
        ase.io.write(buf, atoms, format="extxyz")
        lines.append(_log_line(atoms.info))
    append_bytes(out, buf.getvalue().encode())
    log = out.with_name(out.name + ".log")
    if not log.exists():
        append_bytes(log, LOG_HEADER.encode())
    append_bytes(log, "".join(lines).encode())


def _log_line(info: dict) -> str:
    """The log line of one frame, from the ``md_*`` values it carries."""
    epot, ekin = float(info["md_epot"]), float(info["md_ekin"])
    return (f"{int(info['md_step'])},{float(info['md_time_ps']):.6f},{int(info['md_system'])},{epot:.10f},"
            f"{ekin:.10f},{epot + ekin:.10f},{float(info['md_temperature']):.4f},{float(info['md_pressure']):.6f}\n")  # fmt: skip


def _resume(out: Path, record: dict, structures: list) -> int:
    """The step to continue from (0 for a new run); the structures are set to that step's frames."""
    sidecar, log = out.with_name(out.name + ".md.json"), out.with_name(out.name + ".log")
    # --steps may grow (a finished run is extended), so it is not compared (sidecars of older mlip hold it)
    resumed = claim_run_record(
        sidecar, record, outputs=[out, log], holder=str(out), ignore=("steps",),
        advice=f"rerun with the same input, model and options to continue it, or delete {out}, {log.name} and "
        f"{sidecar.name}",
    )  # fmt: skip
    if not resumed:
        return 0
    frames = read_complete_frames(out)
    n = len(structures)
    groups = len(frames) // n
    if groups == 0:  # nothing usable: start again
        out.unlink(missing_ok=True)
        log.unlink(missing_ok=True)
        return 0
    kept = frames[: groups * n]
    last = kept[-n:]
    step = int(last[0].info["md_step"])
    with atomic_write(out, "wb") as fh:
        buf = io.StringIO()
        ase.io.write(buf, kept, format="extxyz")
        fh.write(buf.getvalue().encode())
    _cut_log(log, kept)
    for k, frame in enumerate(last):
        structures[k] = frame
    print(f"continuing {out} from step {step}", file=sys.stderr)
    return step


def _cut_log(log: Path, frames: list) -> None:
    """Make the log agree with the kept trajectory ``frames``: one line per frame, in their order; a line the log
    holds is kept as written, a line it lost (a kill between a frame and its log line) is rebuilt from the frame."""
    lines = log.read_text().splitlines(keepends=True) if log.is_file() else []
    held = {}
    for ln in lines[1:]:
        fields = ln.split(",", 3)
        if ln.endswith("\n") and len(fields) == 4:
            held[(int(fields[0]), int(fields[2]))] = ln
    kept = [LOG_HEADER]
    for frame in frames:
        key = (int(frame.info["md_step"]), int(frame.info["md_system"]))
        kept.append(held.get(key) or _log_line(frame.info))
    with atomic_write(log, "w") as fh:
        fh.write("".join(kept))
