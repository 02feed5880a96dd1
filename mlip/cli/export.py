"""``mlip-export MODEL OUT [--dtype float32|float64] [--target program|lammps-mliap]``.

``--target program`` (the default) writes a torch-only artefact; ``--target lammps-mliap`` writes the pickle that
LAMMPS's ``pair_style mliap unified OUT 1`` loads (:mod:`mlip.deploy.lammps_mliap`; needs mlip where LAMMPS
runs).

``OUT`` (conventionally ``.pt2``) is a ``torch.export`` program that loads and runs with only torch installed; its
inputs, outputs and metadata are described in :mod:`mlip.deploy.export`. The model file is read and checked
(format version, checksum) and ``OUT``'s directory checked before tracing; ``OUT`` is written atomically, after
the program has been checked against the eager model. Exit status 2 for a user error (unreadable or incompatible
model file, unwritable output, a model the exporter does not handle).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlip.cli import add_debug_flag, console_main
from mlip.deploy.export import export_model
from mlip.deploy.lammps_mliap import MLIPMLIAPUnified
from mlip.fileio import atomic_write, check_output_file
from mlip.models import load_model

__all__ = ["main"]


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="mlip-export", description="Export an mlip model file as a torch-only program."
    )
    p.add_argument("model", help="mlip model file (model.pt)")
    p.add_argument("output", help="artefact to write (model.pt2)")
    p.add_argument("--dtype", default=None, choices=["float32", "float64"],
                   help="the network's dtype in the artefact (default: the model's)")  # fmt: skip
    p.add_argument("--target", default="program", choices=["program", "lammps-mliap"],
                   help="program: torch.export artefact (default); lammps-mliap: ML-IAP unified pickle")  # fmt: skip
    add_debug_flag(p)
    return p.parse_args(argv)


@console_main("mlip-export")
def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    out = check_output_file(Path(args.output), what="output file", inputs=[args.model])
    model = load_model(args.model)
    if args.target == "lammps-mliap":
        return _write_mliap(model, out, args.dtype)
    meta = export_model(model, out, dtype=args.dtype)
    elements = ", ".join(str(z) for z in meta["atomic_numbers"])
    print(
        f"wrote {out}: {meta['model_name']} in {meta['dtype']}, Z = [{elements}], r_max {meta['r_max']} Å, "
        f"export contract {meta['contract_version']}"
    )
    return 0


def _write_mliap(model, out: Path, dtype: str | None) -> int:
    import pickle

    unified = MLIPMLIAPUnified(model, dtype=dtype or "float64")
    with atomic_write(out, "wb") as fh:
        pickle.dump(unified, fh)
    print(
        f"wrote {out}: pair_style mliap unified {out} 1; pair_coeff * * {' '.join(unified.element_types)} "
        f"(types in your order); comm_modify cutoff >= {model.config.num_interactions} x r_max {model.r_max:g} Å + skin"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
