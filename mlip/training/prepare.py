"""Data preparation of a training run: frames from files, a store or a built-in generator, labelled by the run's
data specification (:meth:`mlip.training.config.DataConfig.spec`), split, checked, and the model's statistics
and E0s filled in (:mod:`mlip.data.statistics`, the one routine of both storages)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from mlip.data import (
    Frame,
    GraphDataset,
    generate_emt_dataset,
    resolve_e0,
    split_frames,
    split_isolated_atoms,
)
from mlip.data.checks import require_known_elements
from mlip.data.graph import check_config_types_present, weight_by_config_type
from mlip.data.statistics import accumulate, label_statistics
from mlip.data.store import shard_arrays
from mlip.data.stress_check import require_consistent_stress
from mlip.datasets.nacl import generate_nacl_dataset
from mlip.errors import MLIPInputError
from mlip.training.config import RunConfig
from mlip.training.finetune import InitModel, init_model_config, new_element_e0s
from mlip.training.replay import load_replay
from mlip.training.store_data import is_preprocessed, prepare_preprocessed

__all__ = [
    "PreparedData",
    "load_frames",
    "dataset_statistics",
    "data_source",
    "check_label_coverage",
    "prepare_data",
    "with_replay",
]


@dataclass
class PreparedData:
    """Datasets and the completed model config of a run; with ``train.init_from``, the file (``init``) and, with
    ``data.replay_file``, the replay sample and the replay head's ``E_0`` (eV, in model element order)."""

    train: Dataset
    valid: Dataset
    tests: dict[str, Dataset]
    model_config: dict
    init: InitModel | None = None
    replay: Dataset | None = None
    replay_e0s: list[float] | None = None


def load_frames(cfg) -> tuple[list[Frame], list[Frame], dict[str, list[Frame]], dict[int, float]]:
    """Train, validation and test frames plus isolated-atom energies (``{Z: eV}``, from the training file and
    ``e0_file``) of a DataConfig ``cfg``, labelled by ``cfg.spec()``; isolated atoms are taken out of every set."""
    spec = cfg.spec()
    if cfg.train_file is None and cfg.builtin == "tosi_fumi_nacl":
        frames = generate_nacl_dataset(cfg.nacl_frames, seed=cfg.seed)
        tests = {
            f"nacl_{kind}": generate_nacl_dataset(
                cfg.nacl_test_frames, seed=cfg.seed + 1000 + k, kinds=(kind,)
            )
            for k, kind in enumerate(("crystal", "melt", "slab", "clusters"))
        }
        frames, isolated = split_isolated_atoms(frames)
    elif cfg.train_file is None:
        frames = generate_emt_dataset(cfg.emt_frames, seed=cfg.seed)
        tests = {"emt_test": generate_emt_dataset(cfg.emt_test_frames, seed=cfg.seed + 1000)}
        frames, isolated = split_isolated_atoms(frames)
    else:
        refs = spec.references()
        frames, isolated = spec.read(cfg.train_file, require_keys=True, references=refs)
        if spec.check_stress:
            require_consistent_stress(frames, where=str(cfg.train_file), applied=spec.keys.stress_transform)
        tests = {Path(p).name: spec.read(p, references=refs)[0] for p in cfg.test_files}
    isolated.update(spec.e0_file_energies())
    if cfg.valid_file:
        train, valid = frames, spec.read(cfg.valid_file)[0]
    else:
        train, valid = split_frames(
            frames, valid_fraction=cfg.valid_fraction, valid_last=cfg.valid_last, seed=cfg.seed,
            group_key=cfg.split_by,
        )  # fmt: skip
    for name, fr in [("train", train), ("valid", valid)]:
        if not fr:
            raise MLIPInputError(f"the {name} set is empty")
        if all(f.energy is None for f in fr) and all(f.forces is None for f in fr):
            raise MLIPInputError(
                f"the {name} set has no energy or force labels (check energy_key / forces_key)"
            )
    return train, valid, tests, isolated


def dataset_statistics(train: GraphDataset, frames: list[Frame], e0_spec, isolated: dict[int, float]) -> dict:
    """``{"elements", "e0", "shift", "scale", "avg_num_neighbors", ...}`` of the training ``frames`` (their graphs
    ``train``): the statistics of :mod:`mlip.data.statistics` (the routine of a store too) and the edges per atom
    of all graphs."""
    stats = label_statistics(accumulate([(shard_arrays(frames), None)]), e0_spec=e0_spec, isolated=isolated)
    n_atoms = int(train.atom_counts().sum())
    return {**stats, "avg_num_neighbors": train.edge_count() / max(n_atoms, 1)}


def data_source(d) -> str:
    """A data config's training source, as recorded in the model file's provenance."""
    if d.train_file is not None:
        return str(d.train_file)
    return "built-in Tosi-Fumi NaCl" if d.builtin == "tosi_fumi_nacl" else "built-in EMT Cu-Au"


def check_label_coverage(counts: dict[str, int | None], n_frames: int, cfg: RunConfig) -> None:
    """Refuse a training set in which no frame carries a label that the loss weights (``counts``: frames with an
    energy and with a force label): a misspelled key would otherwise train silently on the other labels (with
    ``e0s: zero``, on forces alone). ``train.<x>_weight: 0`` asks for training without that label."""
    d, t = cfg.data, cfg.train
    for name in ("energy", "forces"):
        if getattr(t, f"{name}_weight") > 0 and counts.get(name) == 0:
            key = getattr(d, f"{name}_key")
            looked = f"data.{name}_key {key!r}" if key else f"REF_{name}, the calculator's {name}, {name}"
            raise MLIPInputError(
                f"{data_source(d)}: none of the {n_frames} training frames has a{'n' if name == 'energy' else ''} "
                f"{name} label (looked for {looked}); set data.{name}_key, or train.{name}_weight: 0 to train "
                "without it"
            )


def prepare_data(cfg: RunConfig, init: InitModel | None = None) -> PreparedData:
    """Read and split the data, resolve E0s and fill in the model statistics not set by the user; with ``init``
    (``train.init_from``), build on that model instead (:mod:`mlip.training.finetune`) and sample the replay
    data."""
    d = cfg.data
    model_config = {**cfg.model}
    model_config.setdefault("dtype", cfg.train.dtype)
    if d.format == "preprocessed" or (d.format == "auto" and is_preprocessed(d.train_file)):
        if d.train_file is None:
            raise MLIPInputError(
                "data.format 'preprocessed' needs data.train_file: the mlip-preprocess output directory"
            )
        train, valid, tests, model_config, counts = prepare_preprocessed(d, model_config, d.spec())
        check_label_coverage(counts, len(train), cfg)
        if init is not None:
            data_e0 = dict(zip(model_config["atomic_numbers"], model_config["atomic_energies"]))
            model_config = init_model_config(
                init, cfg.model, cfg.train.dtype, data_e0, keep_file_e0s=cfg.data.e0s is None
            )
        return with_replay(
            PreparedData(train=train, valid=valid, tests=tests, model_config=model_config, init=init), cfg
        )
    train_frames, valid_frames, test_frames, isolated = load_frames(d)
    if d.config_type_weights:
        check_config_types_present(
            d.config_type_weights, {f.config_type for f in train_frames}, where=data_source(d)
        )
    counts = {name: sum(getattr(f, name) is not None for f in train_frames) for name in ("energy", "forces")}
    check_label_coverage(counts, len(train_frames), cfg)
    zs = sorted({int(z) for f in train_frames for z in f.atoms.numbers})
    e0_spec = d.e0s if d.e0s is not None else ("isolated" if isolated else "average")
    if init is not None and d.e0s is None:  # the file's E0s, and new elements' from the new data
        e0 = {
            **{z: init.e0s[z] for z in zs if z in init.e0s},
            **new_element_e0s(init, zs, train_frames, isolated),
        }
    elif init is not None:
        e0 = resolve_e0(e0_spec, frames=train_frames, isolated=isolated, atomic_numbers=zs)
    if init is not None:
        model_config = init_model_config(
            init, cfg.model, cfg.train.dtype, e0, keep_file_e0s=cfg.data.e0s is None
        )
        zs = list(model_config["atomic_numbers"])
    r_max = float(model_config.get("r_max", 5.0))
    if d.config_type_weights:
        train_frames = [weight_by_config_type(f, d.config_type_weights) for f in train_frames]
    train = GraphDataset(train_frames, r_max, name="train")
    valid = GraphDataset(valid_frames, r_max, name="valid")
    tests = {name: GraphDataset(fr, r_max, name=name) for name, fr in test_frames.items()}
    for name, ds in [("valid", valid), *tests.items()]:
        require_known_elements(ds.elements(), zs, where=name)
    if init is None:
        stats = dataset_statistics(train, train_frames, e0_spec, isolated)
        model_config.update({"atomic_numbers": zs, "atomic_energies": [stats["e0"][str(z)] for z in zs]})
        for key in ("avg_num_neighbors", "shift", "scale"):
            model_config.setdefault(key, stats[key])
    return with_replay(
        PreparedData(train=train, valid=valid, tests=tests, model_config=model_config, init=init), cfg
    )


def with_replay(data: PreparedData, cfg: RunConfig) -> PreparedData:
    """``data`` with the replay sample and the replay head's ``E_0`` (the file's; 0 for new elements, which the
    replay data cannot hold) when ``data.replay_file`` is set."""
    if cfg.data.replay_file is None:
        return data
    zs = list(data.model_config["atomic_numbers"])
    data.replay = load_replay(cfg.data, cfg.data.spec(), float(data.model_config["r_max"]), zs)
    known = data.init.e0s
    data.replay_e0s = [known.get(z, 0.0) for z in zs]
    return data
