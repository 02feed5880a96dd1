"""Parity plots (predicted vs reference) for energies per atom and force components."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlip.fileio import atomic_write

__all__ = ["parity_plot"]


def parity_plot(sets: dict[str, dict[str, np.ndarray]], path: str | Path) -> None:
    """Write a two-panel PNG: energy per atom (eV/atom) and force components (eV/Å), one colour per set.

    ``sets`` maps a label (``"valid"``, a test file name) to :meth:`~mlip.training.metrics.ErrorAccumulator.arrays`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    for label, a in sets.items():
        if len(a["energy_ref"]):
            axes[0].scatter(a["energy_ref"] / a["n_atoms"], a["energy_pred"] / a["n_atoms"], s=8, label=label)
        if len(a["forces_ref"]):
            axes[1].scatter(a["forces_ref"].ravel(), a["forces_pred"].ravel(), s=3, alpha=0.5, label=label)
    for ax, title, unit in ((axes[0], "Energy", "eV/atom"), (axes[1], "Force components", "eV/Å")):
        lo, hi = ax.get_xlim()
        lo, hi = min(lo, ax.get_ylim()[0]), max(hi, ax.get_ylim()[1])
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel(f"reference ({unit})")
        ax.set_ylabel(f"predicted ({unit})")
        ax.set_title(title)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    with atomic_write(path, "wb") as fh:  # whole or not at all
        fig.savefig(fh, format="png", dpi=120)
    plt.close(fig)
