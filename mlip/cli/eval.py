"""``mlip-eval --model PATH [--model PATH ...] FILE... [--out metrics.json] [--config RUN.yaml | label options]``.

Error metrics of a model on labelled files (:mod:`mlip.training.metrics`), one entry per file. Several ``--model``
make a committee: the metrics are those of the members' mean, and ``"committee"`` adds how well the members' spread
predicts the error (:func:`score_committee`).

* ``--out`` is checked before any work starts and rewritten (atomically) after each file, so a long evaluation
  keeps what it has scored;
* a frame that cannot be evaluated (overlapping atoms, an element the model does not know) is reported by its
  index and left out (``n_failed``, ``failed``); frames without any label are left out too (``n_unlabelled``);
* a label key given explicitly that no frame of a file holds is an error (a misspelt key);
* the files are labelled by one data specification (:mod:`mlip.data.spec`): ``--config RUN.yaml`` takes the
  training config's ``data`` section (label keys, energy references, MPtrj energy, fixed tags, stress transform,
  unit check), so a model is scored on exactly the labels it trained on; or the label options give it
  (``--energy-key`` ..., ``--energy-references``, ``--mptrj-energy``, ``--fixed-tags``); isolated atoms are not
  scored.

Exit status: 0 when every frame of every file was scored; 1 when some frames or files could not be scored but
others were; 2 when nothing could be scored (no labels, only isolated atoms) or for a user error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from mlip.cli.console import add_debug_flag, add_pbc_flag, console_main, pbc_flags
from mlip.data.spec import MPTRJ_ENERGIES, DataSpec
from mlip.data.stress_check import StressTransform
from mlip.errors import MLIPInputError
from mlip.fileio import check_output_file, write_json_atomic
from mlip.models.committee import load_models
from mlip.training.config import DataConfig
from mlip.training.scoring import score_committee, score_file

__all__ = ["score_committee", "score_file", "data_spec", "main"]


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="mlip-eval", description="Error metrics of a model on labelled files.")
    p.add_argument("files", nargs="+")
    p.add_argument("--model", required=True, action="append",
                   help="model file (or committee file); give it several times for a committee (metrics of the mean, spread vs error)")  # fmt: skip
    p.add_argument("--out", default=None, help="write the metrics JSON here")
    p.add_argument(
        "--config", metavar="RUN.yaml",
        help="label the files as this training config's data section does (keys, references, MPtrj energy, "
        "fixed tags, stress transform, unit check); the label options below are then not allowed",
    )  # fmt: skip
    for label in _LABELS:
        p.add_argument(f"--{label}-key")
    p.add_argument("--no-unit-check", action="store_true", help="accept labels of implausible magnitude")
    add_pbc_flag(p, "give every frame this periodicity, as data.pbc (T T F: OC20's frames as slabs)")
    p.add_argument(
        "--stress-transform", choices=[t.value for t in StressTransform], default=None,
        help="fix every stress label as it is read, as data.stress_transform does in training (e.g. swap_xz_yz)",
    )  # fmt: skip
    p.add_argument("--mptrj-energy", choices=list(MPTRJ_ENERGIES), default=None,
                   help="MPtrj JSON energies, as data.mptrj_energy (default uncorrected)")  # fmt: skip
    p.add_argument("--energy-references", metavar="FILE", default=None,
                   help="subtract per-system reference energies, as data.energy_references (OC20)")  # fmt: skip
    p.add_argument("--system-key", default=None, help="info key of each frame's system id (default sid)")
    p.add_argument("--fixed-tags", type=int, nargs="*", default=None, metavar="TAG",
                   help="atoms with these tags are fixed and left out of the force metrics (OC20: 0)")  # fmt: skip
    p.add_argument(
        "--max-atoms", type=int, default=4096, help="atoms evaluated at once (mlip.predict's budget)"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--compile", action="store_true", help="run the network through torch.compile (inference)")
    add_debug_flag(p)
    args = p.parse_args(argv)
    if args.max_atoms < 1:
        p.error("--max-atoms must be >= 1")
    return args


_LABELS = ("energy", "forces", "stress", "virials", "charges")
_SPEC_OPTIONS = (*(f"{label}_key" for label in _LABELS), "stress_transform", "mptrj_energy", "energy_references",
                 "system_key", "fixed_tags", "pbc")  # fmt: skip


def data_spec(args: argparse.Namespace) -> DataSpec:
    """The data specification of the command line: the ``data`` section of ``--config`` (validated, no data or
    model file read), or the label options."""
    given = [o for o in _SPEC_OPTIONS if getattr(args, o) is not None] + (
        ["no_unit_check"] if args.no_unit_check else []
    )
    if args.config is None:
        values = {o: getattr(args, o) for o in _SPEC_OPTIONS if getattr(args, o) is not None}
        if "pbc" in values:
            values["pbc"] = pbc_flags(values["pbc"])
        values["check_units"] = not args.no_unit_check
        return DataConfig(**values).spec()
    if given:
        flags = ", ".join("--" + o.replace("_", "-") for o in given)
        raise MLIPInputError(f"--config labels the files as its data section does; drop {flags}")
    import yaml

    path = Path(args.config)
    if not path.is_file():
        raise MLIPInputError(f"--config: no such file: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise MLIPInputError(f"--config {path}: not valid YAML ({err})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("data") or {}, dict):
        raise MLIPInputError(f"--config {path}: expected a training config with a data section")
    data = DataConfig.from_dict(raw.get("data") or {})
    return dataclasses.replace(data.spec(), check_stress=False)


@console_main("mlip-eval")
def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.out:
        check_output_file(args.out, what="--out", inputs=[*args.model, *args.files])
    for f in args.files:
        if not Path(f).exists():
            raise MLIPInputError(f"no such file: {f}")
    models = [m for path in args.model for m in load_models(path, device=args.device)]
    if args.compile:
        for model in models:
            model.compile_network()
    spec = data_spec(args)
    refs = spec.references()
    results: dict = {}
    incomplete = []
    for f in args.files:
        name = Path(f).name
        frames, _ = spec.read(f, require_keys=True, references=refs)
        score = score_file if len(models) == 1 else score_committee
        metrics, failures, unlabelled = score(
            frames,
            models[0] if len(models) == 1 else models,
            name,
            device=args.device,
            max_atoms=args.max_atoms,
        )
        for i, reason in failures:
            print(f"mlip-eval: {name}[{i}] left out: {reason}", file=sys.stderr)
        if metrics is None:
            why = (
                "no frame has an energy, force or stress label"
                if not failures
                else "no frame could be evaluated"
            )
            metrics = {"n_frames": 0, "error": f"nothing could be scored: {why}"}
            print(f"mlip-eval: {name}: nothing could be scored ({why})", file=sys.stderr)
        metrics.update(n_failed=len(failures), failed=[i for i, _ in failures], n_unlabelled=unlabelled)
        if failures or metrics["n_frames"] == 0:
            incomplete.append(name)
        results[name] = metrics
        if args.out:
            write_json_atomic(args.out, results)
    print(json.dumps(results, indent=2))
    if all(r["n_frames"] == 0 for r in results.values()):
        raise MLIPInputError(
            f"nothing could be scored in {', '.join(results)}: no frame has labels a model can be scored on "
            "(check --energy-key / --forces-key; isolated-atom frames are not scored)"
        )
    return 1 if incomplete else 0


if __name__ == "__main__":
    sys.exit(main())
