"""Scoring a model or a committee on labelled frames: the error metrics of :mod:`mlip.training.metrics` over
predictions by :func:`mlip.predict` (batched under an atom budget), with the frames that cannot be evaluated
reported rather than fatal. Used by ``mlip-eval`` and by the committee run's final evaluation."""

from __future__ import annotations

import numpy as np

from mlip.inference.predict import iter_predict
from mlip.training.metrics import ErrorAccumulator

__all__ = ["score_file", "score_committee"]


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
    from scipy.stats import pearsonr, spearmanr

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
