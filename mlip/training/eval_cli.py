"""``mlip-eval --model PATH [--model PATH ...] FILE... [--out metrics.json] [--energy-key K] [--forces-key K]``.

Error metrics of a model on labelled files (:mod:`mlip.training.metrics`), one entry per file. Several ``--model``
make a committee: the metrics are those of the members' mean, and ``"committee"`` adds how well the members' spread
predicts the error (:func:`score_committee`).

* ``--out`` is checked before any work starts and rewritten (atomically) after each file, so a long evaluation
  keeps what it has scored;
* a frame that cannot be evaluated (overlapping atoms, an element the model does not know) is reported by its
  index and left out (``n_failed``, ``failed``); frames without any label are left out too (``n_unlabelled``);
* a label key given explicitly that no frame of a file holds is an error (a misspelt key).

Exit status: 0 when every frame of every file was scored; 1 when some frames or files could not be scored but
others were; 2 when nothing could be scored (no labels, only isolated atoms) or for a user error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mlip.cli import add_debug_flag, console_main
from mlip.data import LabelKeys, read_frames, split_isolated_atoms
from mlip.data.stress_check import StressTransform
from mlip.errors import MLIPInputError
from mlip.fileio import check_output_file, write_json_atomic
from mlip.models.committee import load_models

__all__ = ["score_committee", "score_file", "main"]


def _labelled(frames, name: str) -> tuple[list[tuple[int, object]], list[str]]:
    """``(index in the file, frame)`` of the frames with any label, and the name of each for messages."""
    labelled = [(i, f) for i, f in enumerate(frames) if f.energy is not None or f.forces is not None
                or f.stress is not None]  # fmt: skip
    return labelled, [f.source or f"{name}[{i}]" for i, f in labelled]


def score_file(
    frames, model, name: str, *, device: str, max_atoms: int
) -> tuple[dict, list[tuple[int, str]], int]:
    """``(metrics, failures, n_unlabelled)`` of the labelled ``frames`` of one file, predicted by
    :func:`mlip.predict` (batched under ``max_atoms``); ``failures`` are ``(index in the file, reason)``."""
    from mlip.inference.predict import iter_predict
    from mlip.training.metrics import ErrorAccumulator

    labelled, names = _labelled(frames, name)
    skipped: list[tuple[int, str]] = []
    acc = ErrorAccumulator()
    for k, result in iter_predict(model, (f.atoms for _, f in labelled), device=device, max_atoms=max_atoms,
                                  on_error="skip", failures=skipped, names=names):  # fmt: skip
        acc.add_frame(labelled[k][1], result)
    failures = [(labelled[k][0], reason) for k, reason in skipped]
    metrics = acc.metrics() if acc.n_frames else None
    return metrics, failures, len(frames) - len(labelled)


def score_committee(
    frames, models, name: str, *, device: str, max_atoms: int
) -> tuple[dict, list[tuple[int, str]], int]:
    """As :func:`score_file` for a committee: the metrics of the members' mean prediction, plus ``"committee"``:

    * ``energy_std_error_pearson`` / ``_spearman``: over frames, the correlation of the members' energy standard
      deviation per atom with the mean's absolute energy error per atom;
    * ``forces_std_error_pearson`` / ``_spearman``: over atoms, the correlation of ``sqrt(Σ_xyz var F)`` with
      ``|F_mean - F_ref|``;
    * ``mean_energy_std_mev_per_atom``, ``mean_forces_std_mev_per_A``: the average spreads.

    A frame that any member cannot evaluate is left out (and listed in ``failures``).
    """
    import numpy as np
    from scipy.stats import pearsonr, spearmanr

    from mlip.inference.predict import iter_predict
    from mlip.training.metrics import ErrorAccumulator

    labelled, names = _labelled(frames, name)
    runs, skipped = [], {}
    for model in models:
        failures: list[tuple[int, str]] = []
        runs.append(dict(iter_predict(model, (f.atoms for _, f in labelled), device=device, max_atoms=max_atoms,
                                      on_error="skip", failures=failures, names=names)))  # fmt: skip
        skipped.update(dict(failures))
    acc = ErrorAccumulator()
    e_std, e_err, f_std, f_err = [], [], [], []
    for k, (_, frame) in enumerate(labelled):
        if k in skipped:
            continue
        members = [run[k] for run in runs]
        mean = {key: np.mean([m[key] for m in members], axis=0) for key in members[0] if key != "charges"}
        acc.add_frame(frame, mean)
        n = len(frame.atoms)
        if frame.energy is not None:
            e_std.append(np.std([m["energy"] for m in members]) / n)
            e_err.append(abs(mean["energy"] - frame.energy) / n)
        if frame.forces is not None:
            scored = np.ones(n, dtype=bool) if frame.fixed is None else ~np.asarray(frame.fixed, dtype=bool)
            spread = np.sqrt(np.var([m["forces"] for m in members], axis=0).sum(axis=1))
            f_std.extend(spread[scored])
            f_err.extend(np.linalg.norm(mean["forces"] - np.asarray(frame.forces), axis=1)[scored])
    metrics = acc.metrics() if acc.n_frames else None
    if metrics is not None:

        def corr(fn, a, b):
            return float(fn(a, b)[0]) if len(a) > 2 and np.ptp(a) > 0 and np.ptp(b) > 0 else None

        metrics["committee"] = {
            "members": len(models),
            "energy_std_error_pearson": corr(pearsonr, e_std, e_err),
            "energy_std_error_spearman": corr(spearmanr, e_std, e_err),
            "forces_std_error_pearson": corr(pearsonr, f_std, f_err),
            "forces_std_error_spearman": corr(spearmanr, f_std, f_err),
            "mean_energy_std_mev_per_atom": 1e3 * float(np.mean(e_std)) if e_std else None,
            "mean_forces_std_mev_per_A": 1e3 * float(np.mean(f_std)) if f_std else None,
        }
    failures = [(labelled[k][0], reason) for k, reason in sorted(skipped.items())]
    return metrics, failures, len(frames) - len(labelled)


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="mlip-eval", description="Error metrics of a model on labelled files.")
    p.add_argument("files", nargs="+")
    p.add_argument("--model", required=True, action="append",
                   help="model file (or committee file); give it several times for a committee (metrics of the mean, spread vs error)")  # fmt: skip
    p.add_argument("--out", default=None, help="write the metrics JSON here")
    p.add_argument("--energy-key")
    p.add_argument("--forces-key")
    p.add_argument("--stress-key")
    p.add_argument("--virials-key")
    p.add_argument("--charges-key")
    p.add_argument("--no-unit-check", action="store_true", help="accept labels of implausible magnitude")
    p.add_argument(
        "--stress-transform", choices=[t.value for t in StressTransform], default="none",
        help="fix every stress label as it is read, as data.stress_transform does in training (e.g. swap_xz_yz)",
    )  # fmt: skip
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
    keys = LabelKeys(
        energy_key=args.energy_key,
        forces_key=args.forces_key,
        stress_key=args.stress_key,
        virials_key=args.virials_key,
        charges_key=args.charges_key,
        check_units=not args.no_unit_check,
        stress_transform=StressTransform(args.stress_transform),
    )
    results: dict = {}
    incomplete = []
    for f in args.files:
        name = Path(f).name
        frames, _ = split_isolated_atoms(read_frames(f, keys, require_keys=True))
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
