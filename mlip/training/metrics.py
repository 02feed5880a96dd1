"""Error metrics in the units users quote: meV/atom, meV/Å, meV/Å³.

Energy errors are per atom, ``(Ê - E)/N`` per frame; force and stress errors are per Cartesian component.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from mlip import keys as K
from mlip.inference.batching import batched_outputs

__all__ = ["ErrorAccumulator", "evaluate"]


@dataclass
class ErrorAccumulator:
    """Collects predictions and references batch by batch (for metrics and parity plots)."""

    energy_ref: list = field(default_factory=list)
    energy_pred: list = field(default_factory=list)
    n_atoms: list = field(default_factory=list)
    forces_ref: list = field(default_factory=list)
    forces_pred: list = field(default_factory=list)
    stress_ref: list = field(default_factory=list)
    stress_pred: list = field(default_factory=list)
    charges_ref: list = field(default_factory=list)
    charges_pred: list = field(default_factory=list)
    charges_z: list = field(default_factory=list)
    n_frames: int = 0

    def add(self, pred: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> None:
        self.n_frames += int(batch[K.N_ATOMS].shape[0])
        e_mask = batch[K.ENERGY_WEIGHT] > 0
        self.energy_ref.append(batch[K.ENERGY][e_mask].detach().cpu().numpy())
        self.energy_pred.append(pred[K.ENERGY][e_mask].detach().cpu().numpy())
        self.n_atoms.append(batch[K.N_ATOMS][e_mask].cpu().numpy())
        if K.FORCES in pred:
            f_mask = (batch[K.FORCES_WEIGHT] > 0)[batch[K.BATCH]]
            if K.FORCES_MASK in batch:  # fixed atoms are not scored
                f_mask = f_mask & (batch[K.FORCES_MASK] > 0)
            self.forces_ref.append(batch[K.FORCES][f_mask].detach().cpu().numpy())
            self.forces_pred.append(pred[K.FORCES][f_mask].detach().cpu().numpy())
        if K.STRESS in pred:
            s_mask = batch[K.STRESS_WEIGHT] > 0
            self.stress_ref.append(batch[K.STRESS][s_mask].detach().cpu().numpy())
            self.stress_pred.append(pred[K.STRESS][s_mask].detach().cpu().numpy())
        if K.CHARGES in pred:
            q_mask = (batch[K.CHARGES_WEIGHT] > 0)[batch[K.BATCH]] if K.CHARGES_WEIGHT in batch else None
            self.charges_pred.append(pred[K.CHARGES].detach().cpu().numpy())
            self.charges_z.append(batch[K.ATOMIC_NUMBERS].cpu().numpy())
            ref = np.full(len(pred[K.CHARGES]), np.nan)
            if q_mask is not None and bool(q_mask.any()):
                ref[q_mask.cpu().numpy()] = batch[K.CHARGES][q_mask].detach().cpu().numpy()
            self.charges_ref.append(ref)

    def add_frame(self, frame, result: dict) -> None:
        """One labelled :class:`~mlip.data.Frame` and its prediction (a result of :func:`mlip.predict`: float64
        NumPy arrays in ASE's units and signs)."""
        self.n_frames += 1
        n = len(frame.atoms)
        if frame.energy is not None:
            self.energy_ref.append(np.array([frame.energy], dtype=np.float64))
            self.energy_pred.append(np.array([result["energy"]], dtype=np.float64))
            self.n_atoms.append(np.array([n]))
        if frame.forces is not None:
            scored = np.ones(n, dtype=bool) if frame.fixed is None else ~np.asarray(frame.fixed, dtype=bool)
            self.forces_ref.append(np.asarray(frame.forces, dtype=np.float64)[scored])
            self.forces_pred.append(result["forces"][scored])
        if frame.stress is not None and "stress" in result:
            self.stress_ref.append(np.asarray(frame.stress, dtype=np.float64).reshape(1, 3, 3))
            self.stress_pred.append(result["stress"].reshape(1, 3, 3))
        if "charges" in result:
            self.charges_pred.append(result["charges"])
            self.charges_z.append(np.asarray(frame.atoms.numbers))
            ref = np.full(n, np.nan) if frame.charges is None else np.asarray(frame.charges, dtype=np.float64)
            self.charges_ref.append(ref)

    def arrays(self) -> dict[str, np.ndarray]:
        def cat(xs, shape):
            return np.concatenate(xs) if xs else np.zeros(shape)

        return {
            "energy_ref": cat(self.energy_ref, (0,)),
            "energy_pred": cat(self.energy_pred, (0,)),
            "n_atoms": cat(self.n_atoms, (0,)),
            "forces_ref": cat(self.forces_ref, (0, 3)),
            "forces_pred": cat(self.forces_pred, (0, 3)),
            "stress_ref": cat(self.stress_ref, (0, 3, 3)),
            "stress_pred": cat(self.stress_pred, (0, 3, 3)),
            "charges_ref": cat(self.charges_ref, (0,)),
            "charges_pred": cat(self.charges_pred, (0,)),
            "charges_z": cat(self.charges_z, (0,)).astype(np.int64),
        }

    def metrics(self) -> dict:
        """``energy_rmse_mev_per_atom``, ``energy_mae_mev_per_atom``, ``forces_rmse_mev_per_A``,
        ``forces_mae_mev_per_A``, ``stress_rmse_mev_per_A3`` / ``stress_mae_mev_per_A3`` (when stress labels
        exist) and ``n_frames``; for a model with charges, ``mean_charge_e`` (mean predicted charge per element
        symbol, e) and, where charge labels exist, ``charges_rmse_me`` / ``charges_mae_me`` (milli-e)."""
        a = self.arrays()
        out: dict[str, float] = {"n_frames": self.n_frames}
        if len(a["energy_ref"]):
            de = 1000.0 * (a["energy_pred"] - a["energy_ref"]) / a["n_atoms"]
            out["energy_rmse_mev_per_atom"] = float(np.sqrt(np.mean(de**2)))
            out["energy_mae_mev_per_atom"] = float(np.mean(np.abs(de)))
        if len(a["forces_ref"]):
            df = 1000.0 * (a["forces_pred"] - a["forces_ref"])
            out["forces_rmse_mev_per_A"] = float(np.sqrt(np.mean(df**2)))
            out["forces_mae_mev_per_A"] = float(np.mean(np.abs(df)))
        if len(a["stress_ref"]):
            ds = 1000.0 * (a["stress_pred"] - a["stress_ref"])
            out["stress_rmse_mev_per_A3"] = float(np.sqrt(np.mean(ds**2)))
            out["stress_mae_mev_per_A3"] = float(np.mean(np.abs(ds)))
        if len(a["charges_pred"]):
            from ase.data import chemical_symbols

            zs = a["charges_z"]
            out["mean_charge_e"] = {
                chemical_symbols[z]: float(a["charges_pred"][zs == z].mean()) for z in np.unique(zs)
            }
            labelled = np.isfinite(a["charges_ref"])
            if labelled.any():
                dq = 1000.0 * (a["charges_pred"][labelled] - a["charges_ref"][labelled])
                out["charges_rmse_me"] = float(np.sqrt(np.mean(dq**2)))
                out["charges_mae_me"] = float(np.mean(np.abs(dq)))
        return out


def evaluate(
    model,
    dataset,
    *,
    max_atoms: int = 4096,
    max_frames: int | None = None,
    compute_stress: bool | None = None,
) -> ErrorAccumulator:
    """Score ``model`` on the labelled graphs of ``dataset`` (a map-style dataset or a list of graphs).

    The graphs go through :func:`mlip.inference.batching.batched_outputs`, the batching of :func:`mlip.predict`:
    batches of at most ``max_atoms`` atoms and ``max_frames`` frames (a larger frame alone), on the model's device.
    Forces always; stress where a frame of the batch has a stress label, unless ``compute_stress`` says.
    """
    acc = ErrorAccumulator()
    device = next(model.parameters()).device
    graphs = ((i, dataset[i]) for i in range(len(dataset)))
    for _, batch, out in batched_outputs(
        model,
        graphs,
        device=device,
        max_atoms=max_atoms,
        max_frames=max_frames,
        compute_stress=compute_stress,
    ):
        acc.add(out, batch)
    return acc
