"""Training data from a preprocessed directory (``data.format: preprocessed``): split by indices, statistics from
the cached streaming pass of :mod:`mlip.data.store_stats`, graphs built in the loader workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlip.data import GraphDataset, read_frames, split_indices, split_isolated_atoms
from mlip.data.store import PreprocessedDataset, read_manifest
from mlip.data.store_stats import store_elements, store_statistics

__all__ = ["is_preprocessed", "prepare_preprocessed"]


def is_preprocessed(path: str | Path | None) -> bool:
    """True for a directory written by ``mlip-preprocess`` (complete or not)."""
    return path is not None and Path(path).is_dir()


def prepare_preprocessed(d, model_config: dict, keys) -> tuple:
    """``(train, valid, tests, model_config)`` for a DataConfig ``d`` whose ``train_file`` is a preprocessed
    directory. ``model_config`` must hold ``r_max``; atomic numbers, E0s and the statistics are filled in."""
    path = Path(d.train_file)
    manifest = read_manifest(path)
    r_max = float(model_config.get("r_max", 5.0))
    n = manifest["n_frames"]
    if d.valid_file:
        train_idx, valid = np.arange(n), None
    else:
        groups = None
        if d.split_by:
            full = PreprocessedDataset(path, r_max)
            groups = []
            for i in range(n):
                meta = full.meta(i)  # the frame's metadata only, no Atoms built
                if d.split_by not in meta:
                    raise ValueError(f"{path}: frame {i} has no {d.split_by!r} to split by")
                groups.append(meta[d.split_by])
        train_idx, valid_idx = split_indices(
            n, valid_fraction=d.valid_fraction, valid_last=d.valid_last, seed=d.seed, groups=groups
        )
        valid = PreprocessedDataset(path, r_max, indices=valid_idx, name="valid")
    train = PreprocessedDataset(path, r_max, indices=train_idx, name="train")
    if valid is None:
        valid = GraphDataset(split_isolated_atoms(read_frames(d.valid_file, keys))[0], r_max, name="valid")
    spec = d.e0s if d.e0s is not None else "average"
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    rank = getattr(
        rank_zero_only, "rank", 0
    )  # set from RANK / LOCAL_RANK / SLURM_PROCID before the trainer exists
    stats = store_statistics(train, e0_spec=spec, wait_seconds=None if rank == 0 else 3600.0)
    zs = stats["elements"]
    tests = {Path(p).name: GraphDataset(read_frames(p, keys), r_max, name=Path(p).name) for p in d.test_files}
    if isinstance(valid, PreprocessedDataset):
        unknown = set(store_elements(valid)) - set(zs)
        if unknown:
            raise ValueError(f"valid contains elements {sorted(unknown)} absent from the training set")
    model_config = {
        **model_config,
        "atomic_numbers": zs,
        "atomic_energies": [stats["e0"][str(z)] for z in zs],
    }
    for key in ("avg_num_neighbors", "shift", "scale"):
        model_config.setdefault(key, stats[key])
    return train, valid, tests, model_config
