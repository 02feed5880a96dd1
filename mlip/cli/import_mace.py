"""``mlip-import-mace IN.model OUT.pt [--mace-python PATH] [--head NAME] [--keep-export PREFIX]``.

Turns a mace-torch model file into an mlip model file that needs no mace-torch at run time:

1. ``--mace-python`` (default: this Python) runs ``mlip/interop/mace_exporter.py`` on ``IN.model``, writing plain
   arrays and a JSON description to a temporary directory (mace-torch's pins clash with mlip's, so it usually lives
   in an environment of its own; see ``docs/foundation.md``);
2. :func:`mlip.interop.mace_import.model_from_export` maps the weights onto mlip's MACE (exactly, float64);
3. the model is written to ``OUT.pt`` whole or not at all (:func:`mlip.models.save_model`).

``OUT``'s directory is checked before anything runs. Exit status 2, with one line naming the problem, for a user
error: no such file, a Python without mace-torch, a file that is not a mace-torch model, a block mlip does not
import, an unknown head.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from mlip.cli import add_debug_flag, console_main
from mlip.errors import MLIPInputError
from mlip.fileio import check_output_file
from mlip.interop.mace_import import model_from_export
from mlip.models import save_model

__all__ = ["EXPORTER", "main"]

#: The exporter script, run by the ``--mace-python`` interpreter.
EXPORTER = Path(__file__).resolve().parent / "mace_exporter.py"


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="mlip-import-mace", description="Import a mace-torch model as an mlip model."
    )
    p.add_argument("model", help="mace-torch model file (IN.model)")
    p.add_argument("output", help="mlip model file to write (OUT.pt)")
    p.add_argument("--mace-python", default=sys.executable,
                   help="a Python whose environment has mace-torch (default: this one)")  # fmt: skip
    p.add_argument(
        "--head", default=None, help="the head to import from a multi-head model (default: the first)"
    )
    p.add_argument("--keep-export", default=None, metavar="PREFIX",
                   help="also keep the exporter's PREFIX.npz and PREFIX.json")  # fmt: skip
    add_debug_flag(p)
    return p.parse_args(argv)


def _export_with(python: str, model: Path, prefix: Path) -> None:
    """Run the exporter in ``python``; its one-line errors become :class:`~mlip.errors.MLIPInputError`."""
    try:
        run = subprocess.run(
            [python, str(EXPORTER), str(model), str(prefix)], capture_output=True, text=True, timeout=3600
        )
    except FileNotFoundError as err:
        raise MLIPInputError(f"--mace-python {python}: no such interpreter") from err
    except PermissionError as err:
        what = "is a directory" if Path(python).is_dir() else "is not executable"
        raise MLIPInputError(f"--mace-python {python} {what}; give the path of a Python interpreter") from err
    except OSError as err:
        raise MLIPInputError(f"--mace-python {python} cannot be run ({err.strerror or err})") from err
    if run.returncode != 0:
        lines = [ln for ln in run.stderr.splitlines() if ln.startswith("error:")]
        detail = (
            lines[-1][len("error: ") :] if lines else (run.stderr.strip().splitlines() or ["no output"])[-1]
        )
        raise MLIPInputError(f"exporting {model} with {python} failed: {detail}")


@console_main("mlip-import-mace")
def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    source = Path(args.model)
    if not source.is_file():
        raise MLIPInputError(f"{source}: no such file")
    out = check_output_file(Path(args.output), what="output file", inputs=[source])
    with tempfile.TemporaryDirectory(prefix="mlip-import-mace-") as tmp:
        prefix = Path(args.keep_export) if args.keep_export else Path(tmp) / "export"
        _export_with(args.mace_python, source, prefix)
        report: dict = {}
        model = model_from_export(prefix, head=args.head, report=report)
    save_model(model, out)
    cfg = model.config
    print(
        f"wrote {out}: MACE {cfg.channels}x(0e..{cfg.max_L}), max_ell {cfg.max_ell}, correlation {cfg.correlation}, "
        f"{cfg.num_interactions} layers, {len(cfg.atomic_numbers)} elements, r_max {cfg.r_max:g} Å"
        + (", ZBL" if cfg.pair_repulsion else "")
        + (", Agnesi transform" if cfg.distance_transform else "")
        + f"; change of basis residual {report['basis_residual']:.1e} (U of {report['basis_precision']} precision"
        + (
            "; expect about 1e-7 relative parity with mace-torch"
            if report["basis_precision"] == "float32"
            else ""
        )
        + ")"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
