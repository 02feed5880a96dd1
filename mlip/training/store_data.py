"""Training data from a preprocessed directory (``data.format: preprocessed``): split by indices, statistics from
the cached streaming pass of :mod:`mlip.data.store_stats`, graphs built in the loader workers.

The store was labelled when it was written; its manifest records how (:mod:`mlip.data.spec`), and a config whose
data specification differs is refused. What training applies itself is applied here as it is to files: the
isolated atoms (the store's, plus ``data.e0_file``'s) give the E0s, the stress check runs over the training
frames, and validation and test files are read with the same specification (label keys, references, MPtrj
energy).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mlip.data import GraphDataset, split_indices
from mlip.data.checks import require_known_elements
from mlip.data.graph import Frame, check_config_types_present
from mlip.data.spec import DataSpec
from mlip.data.store import SETTINGS, PreprocessedDataset, read_manifest
from mlip.data.store_stats import store_elements, store_statistics
from mlip.data.stress_check import require_consistent_stress
from mlip.errors import MLIPInputError

__all__ = ["is_preprocessed", "prepare_preprocessed", "store_isolated_atoms"]


def is_preprocessed(path: str | Path | None) -> bool:
    """True for a directory written by ``mlip-preprocess`` (complete or not: it holds ``manifest.json``,
    ``settings.json`` or shards), not for a directory of LMDB files or of anything else."""
    if path is None or not Path(path).is_dir():
        return False
    p = Path(path)
    return (p / "manifest.json").exists() or (p / SETTINGS).exists() or any(p.glob("shard-[0-9]*"))


def store_isolated_atoms(manifest: dict) -> dict[int, float]:
    """``{Z: eV}`` of the isolated atoms that ``mlip-preprocess`` took out of a store's frames."""
    return {int(z): float(e) for z, e in (manifest.get("isolated_atoms") or {}).items()}


class _StressLabelled(Sequence):
    """The frames of a store with stress labels, read when indexed (for the stress check)."""

    def __init__(self, ds: PreprocessedDataset) -> None:
        self.ds = ds
        keep = []
        for shard, start in zip(ds.shards, ds.starts):
            has = np.asarray(shard.arrays()["has"])[:, 2]
            keep.append(start + np.flatnonzero(has))
        labelled = np.concatenate(keep) if keep else np.zeros(0, dtype=np.int64)
        self.items = np.flatnonzero(np.isin(ds.indices, labelled))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Frame:
        return self.ds.frame(int(self.items[i]))


def _split(d, path: Path, n: int, r_max: float):
    if d.valid_file:
        return np.arange(n), None
    groups = None
    if d.split_by:
        full = PreprocessedDataset(path, r_max)
        groups = []
        for i in range(n):
            meta = full.meta(i)  # the frame's metadata only, no Atoms built
            if d.split_by not in meta:
                raise MLIPInputError(f"{path}: frame {i} has no {d.split_by!r} to split by")
            groups.append(meta[d.split_by])
    return split_indices(
        n, valid_fraction=d.valid_fraction, valid_last=d.valid_last, seed=d.seed, groups=groups
    )


def prepare_preprocessed(d, model_config: dict, spec: DataSpec) -> tuple:
    """``(train, valid, tests, model_config, label_counts)`` for a DataConfig ``d`` whose ``train_file`` is a
    preprocessed directory, labelled by ``spec`` (``d.spec()``). ``model_config`` must hold ``r_max``; atomic
    numbers, E0s and the statistics are filled in. ``label_counts``: training frames with energy and with force
    labels."""
    path = Path(d.train_file)
    manifest = read_manifest(path)
    spec.check_store(manifest.get("data_spec"), path)
    isolated = {**store_isolated_atoms(manifest), **spec.e0_file_energies()}
    refs = spec.references()
    r_max = float(model_config.get("r_max", 5.0))
    train_idx, valid_idx = _split(d, path, manifest["n_frames"], r_max)
    train = PreprocessedDataset(
        path, r_max, indices=train_idx, name="train", config_type_weights=d.config_type_weights
    )
    if d.config_type_weights:
        present = {train.meta(i).get("config_type") for i in range(len(train))}
        check_config_types_present(d.config_type_weights, present, where=str(path))
    if spec.check_stress:
        require_consistent_stress(_StressLabelled(train), where=str(path), applied=spec.keys.stress_transform)
    if valid_idx is None:
        valid = GraphDataset(spec.read(d.valid_file, references=refs)[0], r_max, name="valid")
    else:
        valid = PreprocessedDataset(path, r_max, indices=valid_idx, name="valid")
    e0_spec = d.e0s if d.e0s is not None else ("isolated" if isolated else "average")
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    rank = getattr(rank_zero_only, "rank", 0)  # set from RANK / LOCAL_RANK / SLURM_PROCID before the trainer
    stats = store_statistics(
        train, e0_spec=e0_spec, isolated=isolated, wait_seconds=None if rank == 0 else 3600.0
    )
    zs = stats["elements"]
    tests = {
        Path(p).name: GraphDataset(spec.read(p, references=refs)[0], r_max, name=Path(p).name)
        for p in d.test_files
    }
    for name, ds in [("valid", valid), *tests.items()]:
        present = store_elements(ds) if isinstance(ds, PreprocessedDataset) else ds.elements()
        require_known_elements(present, zs, where=name)
    model_config = {
        **model_config,
        "atomic_numbers": zs,
        "atomic_energies": [stats["e0"][str(z)] for z in zs],
    }
    for key in ("avg_num_neighbors", "shift", "scale"):
        model_config.setdefault(key, stats[key])
    counts = {name: stats.get(f"n_{name}_labels") for name in ("energy", "forces")}
    return train, valid, tests, model_config, counts
