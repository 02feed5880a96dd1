"""Training data from a preprocessed directory (``data.format: preprocessed``): split by indices, statistics from
the cached streaming pass of :mod:`mlip.data.store_stats`, graphs built in the loader workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlip.data import GraphDataset, read_frames, split_indices, split_isolated_atoms
from mlip.data.graph import check_config_types_present
from mlip.data.references import EnergyReferences
from mlip.data.store import SETTINGS, PreprocessedDataset, read_manifest
from mlip.data.store_stats import store_elements, store_statistics
from mlip.errors import MLIPInputError

__all__ = ["is_preprocessed", "prepare_preprocessed"]


def is_preprocessed(path: str | Path | None) -> bool:
    """True for a directory written by ``mlip-preprocess`` (complete or not: it holds ``manifest.json``,
    ``settings.json`` or shards), not for a directory of LMDB files or of anything else."""
    if path is None or not Path(path).is_dir():
        return False
    p = Path(path)
    return (p / "manifest.json").exists() or (p / SETTINGS).exists() or any(p.glob("shard-[0-9]*"))


def _check_settings(d, manifest: dict, path: Path) -> None:
    """Fixed tags, energy references, MPtrj energies and the stress transform are applied when the directory is
    written: the config must agree with the manifest rather than be silently ignored."""
    wanted = {
        "fixed_tags": [int(t) for t in d.fixed_tags],
        "energy_references": d.energy_references,
        "mptrj_energy": d.mptrj_energy,
        "stress_transform": d.stress_transform,
    }
    defaults = {"fixed_tags": [], "stress_transform": "none"}
    for key, value in wanted.items():
        stored = manifest.get(key, defaults.get(key))
        if key == "energy_references" and value is not None and stored is not None:
            same = Path(value).resolve() == Path(stored).resolve()
        else:
            same = stored == value or (key == "mptrj_energy" and value == "uncorrected" and stored is None)
        if not same:
            flag = "--" + key.replace("_", "-")
            raise MLIPInputError(
                f"data.{key} is {value!r} but {path} was written with {stored!r}; it is applied by "
                f"mlip-preprocess ({flag}), so rerun it into a new directory or change the config"
            )


def prepare_preprocessed(d, model_config: dict, keys) -> tuple:
    """``(train, valid, tests, model_config, label_counts)`` for a DataConfig ``d`` whose ``train_file`` is a
    preprocessed directory. ``model_config`` must hold ``r_max``; atomic numbers, E0s and the statistics are filled
    in. ``label_counts``: training frames with energy and with force labels (``None`` from statistics cached by an
    older version)."""
    path = Path(d.train_file)
    manifest = read_manifest(path)
    _check_settings(d, manifest, path)
    refs = None
    if manifest.get("energy_references"):
        refs = EnergyReferences.from_file(manifest["energy_references"], key=d.system_key)
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
                    raise MLIPInputError(f"{path}: frame {i} has no {d.split_by!r} to split by")
                groups.append(meta[d.split_by])
        train_idx, valid_idx = split_indices(
            n, valid_fraction=d.valid_fraction, valid_last=d.valid_last, seed=d.seed, groups=groups
        )
        valid = PreprocessedDataset(path, r_max, indices=valid_idx, name="valid")
    train = PreprocessedDataset(
        path, r_max, indices=train_idx, name="train", config_type_weights=d.config_type_weights
    )
    if d.config_type_weights:
        present = {train.meta(i).get("config_type") for i in range(len(train))}
        check_config_types_present(d.config_type_weights, present, where=str(path))
    if valid is None:
        valid = GraphDataset(
            split_isolated_atoms(read_frames(d.valid_file, keys, references=refs))[0], r_max, name="valid"
        )
    spec = d.e0s if d.e0s is not None else "average"
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    rank = getattr(
        rank_zero_only, "rank", 0
    )  # set from RANK / LOCAL_RANK / SLURM_PROCID before the trainer exists
    stats = store_statistics(train, e0_spec=spec, wait_seconds=None if rank == 0 else 3600.0)
    zs = stats["elements"]
    tests = {
        Path(p).name: GraphDataset(read_frames(p, keys, references=refs), r_max, name=Path(p).name)
        for p in d.test_files
    }
    if isinstance(valid, PreprocessedDataset):
        unknown = set(store_elements(valid)) - set(zs)
        if unknown:
            raise MLIPInputError(f"valid contains elements {sorted(unknown)} absent from the training set")
    model_config = {
        **model_config,
        "atomic_numbers": zs,
        "atomic_energies": [stats["e0"][str(z)] for z in zs],
    }
    for key in ("avg_num_neighbors", "shift", "scale"):
        model_config.setdefault(key, stats[key])
    counts = {name: stats.get(f"n_{name}_labels") for name in ("energy", "forces")}
    return train, valid, tests, model_config, counts
