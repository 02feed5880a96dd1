"""Parity plots (predicted vs reference): energies per atom, force components and, where labelled, stress
components, each set's RMSE and MAE in the legend."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlip.fileio import atomic_write

__all__ = ["parity_plot"]

# (title, unit of the axes, unit of the errors, errors per axis unit, the arrays of a set -> (reference, predicted))
_PANELS = (
    ("Energy", "eV/atom", "meV/atom", 1e3,
     lambda a: (a["energy_ref"] / a["n_atoms"], a["energy_pred"] / a["n_atoms"])),
    ("Force components", "eV/Å", "meV/Å", 1e3, lambda a: (a["forces_ref"].ravel(), a["forces_pred"].ravel())),
    ("Stress components", "eV/Å³", "meV/Å³", 1e3, lambda a: (a["stress_ref"].ravel(), a["stress_pred"].ravel())),
)  # fmt: skip


def parity_plot(sets: dict[str, dict[str, np.ndarray]], path: str | Path) -> dict[str, list[str]]:
    """Write a PNG with a panel per labelled quantity: energy per atom (eV/atom), force components (eV/Å) and,
    when any set has stress labels, stress components (eV/Å³); one colour per set, whose legend entry gives its
    RMSE and MAE (meV/atom, meV/Å, meV/Å³). Returns ``{panel title: legend entries}``.

    ``sets`` maps a label (``"valid"``, a test file name) to :meth:`~mlip.training.metrics.ErrorAccumulator.arrays`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in _PANELS if any(len(p[4](a)[0]) for a in sets.values())] or list(_PANELS[:2])
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.6), squeeze=False)
    legends: dict[str, list[str]] = {}
    for ax, (title, unit, err_unit, scale, pick) in zip(axes[0], panels):
        legends[title] = []
        for label, a in sets.items():
            ref, pred = pick(a)
            if not len(ref):
                continue
            diff = scale * (pred - ref)
            entry = (
                f"{label}: RMSE {np.sqrt(np.mean(diff**2)):.3g}, MAE {np.mean(np.abs(diff)):.3g} {err_unit}"
            )
            legends[title].append(entry)
            ax.scatter(ref, pred, s=8 if title == "Energy" else 3, alpha=1.0 if title == "Energy" else 0.5,
                       label=entry)  # fmt: skip
        lo, hi = ax.get_xlim()
        lo, hi = min(lo, ax.get_ylim()[0]), max(hi, ax.get_ylim()[1])
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel(f"reference ({unit})")
        ax.set_ylabel(f"predicted ({unit})")
        ax.set_title(title)
        if legends[title]:
            ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    with atomic_write(path, "wb") as fh:  # whole or not at all
        fig.savefig(fh, format="png", dpi=120)
    plt.close(fig)
    return legends
