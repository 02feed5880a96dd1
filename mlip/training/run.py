"""The training driver: data -> statistics -> Lightning fit -> model file, metrics.json, parity.png."""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset

from mlip import keys as K
from mlip.data import (
    Frame,
    GraphDataset,
    LabelKeys,
    generate_emt_dataset,
    make_loader,
    read_frames,
    resolve_e0,
    split_frames,
    split_isolated_atoms,
)
from mlip.data.batch import collate
from mlip.data.graph import check_config_types_present, weight_by_config_type
from mlip.data.references import EnergyReferences
from mlip.data.sampler import BudgetBatchSampler
from mlip.data.stress_check import StressTransform, require_consistent_stress
from mlip.errors import MLIPInputError
from mlip.fileio import DirectoryLock, check_output_dir, write_json_atomic
from mlip.models import build_model, convert_model, save_model
from mlip.models.adapters import has_adapters, merge_adapters
from mlip.models.heads import model_with_head
from mlip.training.config import RunConfig
from mlip.training.finetune import (
    InitModel,
    extended_state,
    init_model_config,
    new_element_e0s,
    read_init_model,
)
from mlip.training.metrics import evaluate
from mlip.training.module import PotentialModule
from mlip.training.plots import parity_plot
from mlip.training.replay import load_replay, replay_loader
from mlip.training.run_dir import (
    AtomicCheckpointIO,
    HistoryCSVLogger,
    check_inputs_are_not_outputs,
    check_resumable,
    fit_or_interrupt,
    prepare_run_dir,
    remove_stale_temporaries,
    resolve_checkpoint,
)
from mlip.training.store_data import is_preprocessed, prepare_preprocessed

__all__ = [
    "PreparedData",
    "load_frames",
    "dataset_statistics",
    "data_source",
    "check_label_coverage",
    "prepare_data",
    "run_training",
    "refit_e0s_at_end",
    "write_outputs",
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


def _label_keys(cfg) -> LabelKeys:
    return LabelKeys(
        energy_key=cfg.energy_key,
        forces_key=cfg.forces_key,
        stress_key=cfg.stress_key,
        virials_key=cfg.virials_key,
        charges_key=cfg.charges_key,
        fixed_tags=tuple(int(t) for t in cfg.fixed_tags),
        check_units=cfg.check_units,
        stress_transform=StressTransform(cfg.stress_transform),
    )


def _references(cfg) -> EnergyReferences | None:
    if cfg.energy_references is None:
        return None
    return EnergyReferences.from_file(cfg.energy_references, key=cfg.system_key)


def load_frames(cfg) -> tuple[list[Frame], list[Frame], dict[str, list[Frame]], dict[int, float]]:
    """Train, validation and test frames plus isolated-atom energies, as configured."""
    keys = _label_keys(cfg)
    if cfg.train_file is None and cfg.builtin == "tosi_fumi_nacl":
        from mlip.datasets.nacl import generate_nacl_dataset

        frames = generate_nacl_dataset(cfg.nacl_frames, seed=cfg.seed)
        tests = {
            f"nacl_{kind}": generate_nacl_dataset(
                cfg.nacl_test_frames, seed=cfg.seed + 1000 + k, kinds=(kind,)
            )
            for k, kind in enumerate(("crystal", "melt", "slab", "clusters"))
        }
    elif cfg.train_file is None:
        if cfg.builtin != "emt":
            raise MLIPInputError(f"unknown builtin dataset {cfg.builtin!r}; use 'emt' or 'tosi_fumi_nacl'")
        frames = generate_emt_dataset(cfg.emt_frames, seed=cfg.seed)
        tests = {"emt_test": generate_emt_dataset(cfg.emt_test_frames, seed=cfg.seed + 1000)}
    else:
        refs = _references(cfg)
        frames = read_frames(
            cfg.train_file, keys, mptrj_energy=cfg.mptrj_energy, references=refs, require_keys=True
        )
        if cfg.check_stress:
            require_consistent_stress(frames, where=str(cfg.train_file), applied=cfg.stress_transform)
        tests = {
            Path(p).name: read_frames(p, keys, mptrj_energy=cfg.mptrj_energy, references=refs)
            for p in cfg.test_files
        }
    frames, isolated = split_isolated_atoms(frames)
    if cfg.e0_file:
        _, extra = split_isolated_atoms(read_frames(cfg.e0_file, keys))
        isolated.update(extra)
    if cfg.valid_file:
        train, valid = (
            frames,
            split_isolated_atoms(
                read_frames(cfg.valid_file, keys, mptrj_energy=cfg.mptrj_energy, references=_references(cfg))
            )[0],
        )
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


def dataset_statistics(train: GraphDataset, e0: dict[int, float]) -> dict[str, float]:
    """``avg_num_neighbors`` (edges per atom), ``shift`` (mean per-atom energy after E0, eV) and ``scale``
    (RMS of force components, eV/Å; 1 without forces), mace-torch's ``rms_forces_scaling``."""
    n_edges = sum(g[K.EDGE_INDEX].shape[1] for g in train.graphs)
    n_atoms = sum(len(g[K.POSITIONS]) for g in train.graphs)
    per_atom, forces = [], []
    for g in train.graphs:
        if g[K.ENERGY_WEIGHT].item() > 0:
            ref = sum(e0[int(z)] for z in g[K.ATOMIC_NUMBERS])
            per_atom.append((g[K.ENERGY].item() - ref) / len(g[K.POSITIONS]))
        if g[K.FORCES_WEIGHT].item() > 0:
            forces.append(g[K.FORCES].numpy().ravel())
    rms = float(np.sqrt(np.mean(np.concatenate(forces) ** 2))) if forces else 1.0
    return {
        "avg_num_neighbors": n_edges / max(n_atoms, 1),
        "shift": float(np.mean(per_atom)) if per_atom else 0.0,
        "scale": rms if rms > 1e-8 else 1.0,
    }


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
        train, valid, tests, model_config, counts = prepare_preprocessed(d, model_config, _label_keys(d))
        check_label_coverage(counts, len(train), cfg)
        if init is not None:
            data_e0 = dict(zip(model_config["atomic_numbers"], model_config["atomic_energies"]))
            model_config = init_model_config(
                init, cfg.model, cfg.train.dtype, data_e0, keep_file_e0s=cfg.data.e0s is None
            )
        return _with_replay(
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
    spec = d.e0s if d.e0s is not None else ("isolated" if isolated else "average")
    if init is not None and d.e0s is None:  # the file's E0s, and new elements' from the new data
        e0 = {
            **{z: init.e0s[z] for z in zs if z in init.e0s},
            **new_element_e0s(init, zs, train_frames, isolated),
        }
    else:
        e0 = resolve_e0(spec, frames=train_frames, isolated=isolated, atomic_numbers=zs)
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
        unknown = {int(z) for g in ds.graphs for z in g[K.ATOMIC_NUMBERS]} - set(zs)
        if unknown:
            raise MLIPInputError(f"{name} contains elements {sorted(unknown)} absent from the training set")
    if init is None:
        stats = dataset_statistics(train, e0)
        model_config.update({"atomic_numbers": zs, "atomic_energies": [e0[z] for z in zs]})
        for key, value in stats.items():
            model_config.setdefault(key, value)
    return _with_replay(
        PreparedData(train=train, valid=valid, tests=tests, model_config=model_config, init=init), cfg
    )


def _with_replay(data: PreparedData, cfg: RunConfig) -> PreparedData:
    """``data`` with the replay sample and the replay head's ``E_0`` (the file's; 0 for new elements, which the
    replay data cannot hold) when ``data.replay_file`` is set."""
    if cfg.data.replay_file is None:
        return data
    zs = list(data.model_config["atomic_numbers"])
    data.replay = load_replay(cfg.data, _label_keys(cfg.data), float(data.model_config["r_max"]), zs)
    known = data.init.e0s
    data.replay_e0s = [known.get(z, 0.0) for z in zs]
    return data


def _trainer(cfg: RunConfig, run_dir: Path) -> L.Trainer:
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger

    t = cfg.train
    loggers = [
        HistoryCSVLogger(str(run_dir)),
        TensorBoardLogger(str(run_dir), name="tensorboard", version=""),
    ]
    try:
        return L.Trainer(
            default_root_dir=str(run_dir),
            max_epochs=t.max_epochs,
            max_time=t.max_time,
            accelerator=t.accelerator,
            devices=t.devices,
            strategy=t.strategy,
            num_nodes=t.num_nodes,
            gradient_clip_val=t.grad_clip,
            inference_mode=False,
            logger=loggers,
            plugins=[AtomicCheckpointIO()],
            callbacks=[
                # save_top_k=1 without a monitor keeps the latest checkpoint; Lightning >= 2.5 writes last.ckpt
                # only when it has saved a regular checkpoint in the same step, so top_k=0 would leave nothing
                # to resume from
                ModelCheckpoint(
                    dirpath=str(run_dir / "checkpoints"),
                    save_last=True,
                    save_top_k=1,
                    every_n_train_steps=t.checkpoint_every_n_steps,
                ),  # fmt: skip
                LearningRateMonitor(logging_interval="epoch"),
            ],
            log_every_n_steps=t.log_every_n_steps,
            enable_progress_bar=t.progress_bar,
            check_val_every_n_epoch=t.check_val_every_n_epoch,
            num_sanity_val_steps=0,
            use_distributed_sampler=cfg.data.max_atoms_per_batch
            is None,  # the budget sampler shards by itself
        )
    except (MisconfigurationException, ValueError) as err:
        if isinstance(err, MLIPInputError):
            raise
        raise MLIPInputError(f"train section: {err}") from err


def _is_primary_process() -> bool:
    """Rank 0 of a distributed run (read from the launcher's environment before the trainer exists)."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def run_training(cfg: RunConfig, run_dir: str | Path, *, resume: str | None = None) -> dict | None:
    """Train, then (on rank 0) write ``model.pt``, ``metrics.json`` and ``parity.png`` into ``run_dir``.

    ``resume``: a Lightning checkpoint path, or ``"last"`` for ``run_dir/checkpoints/last.ckpt``.
    Returns the metrics dict on rank 0 (None on other ranks).

    Before any data is read, the data files must exist and the run directory must be writable and free: rank 0
    holds a lock on it for the whole run (:class:`mlip.fileio.DirectoryLock`), a directory holding another run is
    refused unless resuming, and a resumed checkpoint must match the model section
    (:mod:`mlip.training.run_dir`).
    """
    if cfg.train.committee > 1:
        from mlip.training.committee_run import run_committee

        return run_committee(cfg, run_dir, resume=resume)
    run_dir = Path(run_dir)
    cfg.check_inputs_exist()
    check_output_dir(run_dir, what="run directory")
    check_inputs_are_not_outputs(run_dir, cfg.input_files())
    primary = _is_primary_process()
    lock = DirectoryLock(run_dir, "training") if primary else contextlib.nullcontext()
    with lock:
        checkpoint = resolve_checkpoint(run_dir, resume)
        if primary:
            prepare_run_dir(run_dir, checkpoint)
            remove_stale_temporaries(run_dir)
        return _train(cfg, run_dir, checkpoint)


def _train(cfg: RunConfig, run_dir: Path, checkpoint: Path | None) -> dict | None:
    L.seed_everything(cfg.train.seed, workers=True, verbose=False)
    init = None if cfg.train.init_from is None else read_init_model(cfg.train.init_from, cfg.model)
    data = prepare_data(cfg, init)
    keep = None if checkpoint is None else check_resumable(checkpoint, data.model_config)
    init_state = None
    if init is not None:
        init_state = extended_state(init, build_model(data.model_config))
    module = PotentialModule(
        data.model_config, vars(cfg.train), replay_e0s=data.replay_e0s, init_state=init_state
    )
    _log_parameters(module)
    trainer = _trainer(cfg, run_dir)
    for logger in trainer.loggers:  # a resumed run keeps the history up to its checkpoint
        if isinstance(logger, HistoryCSVLogger):
            logger.keep_until_step = keep
    d = cfg.data
    if d.max_atoms_per_batch is not None:
        sampler = BudgetBatchSampler(
            data.train.atom_counts(), max_cost=d.max_atoms_per_batch, max_items=d.batch_size, seed=d.seed,
            num_replicas=trainer.world_size, rank=trainer.global_rank,
        )  # fmt: skip
        train_loader = DataLoader(
            data.train, batch_sampler=sampler, collate_fn=collate, num_workers=d.num_workers
        )
    else:
        train_loader = make_loader(  # train.seed varies the order too (committee members)
            data.train,
            batch_size=d.batch_size,
            shuffle=True,
            seed=d.seed + cfg.train.seed,
            num_workers=d.num_workers,
        )
    if data.replay is not None:
        from lightning.pytorch.utilities import CombinedLoader

        if trainer.world_size > 1:
            raise MLIPInputError("data.replay_file trains on one process; run it with train.devices: 1")
        replay = replay_loader(
            data.replay, batch_size=d.replay_batch_size or d.batch_size, steps=len(train_loader), seed=d.seed
        )
        train_loader = CombinedLoader({"main": train_loader, "replay": replay}, mode="min_size")
    if init is not None and cfg.train.init_refit_e0s and checkpoint is None:
        module.refit_e0s(make_loader(data.train, batch_size=d.valid_batch_size, shuffle=False))
    fit_or_interrupt(
        trainer,
        run_dir,
        module,
        train_loader,
        make_loader(data.valid, batch_size=d.valid_batch_size, shuffle=False),
        ckpt_path=None if checkpoint is None else str(checkpoint),
    )
    if not trainer.is_global_zero:
        return None
    return write_outputs(module, data, cfg, run_dir)


def _log_parameters(module: PotentialModule) -> None:
    from lightning.pytorch.utilities import rank_zero_info

    counts = module.parameter_counts()
    rep = module.adapter_report
    extra = (
        "" if rep is None else f"; {rep['kind']} adapters of rank {rep['rank']}: {rep['adapter_parameters']}"
    )
    rank_zero_info(f"parameters: {counts['total']}, trained: {counts['trainable']}{extra}")


def _refit_loaders(data: PreparedData, cfg: RunConfig):
    """Train and validation loaders of the end-of-training E0 fit (at most ``refit_e0s_max_frames`` training
    frames, evenly spaced)."""
    from torch.utils.data import Subset

    train, cap = data.train, cfg.train.refit_e0s_max_frames
    if cap is not None and len(train) > cap:
        train = Subset(train, np.linspace(0, len(train) - 1, cap).round().astype(int).tolist())
    bs = cfg.data.valid_batch_size
    return make_loader(train, batch_size=bs, shuffle=False), make_loader(
        data.valid, batch_size=bs, shuffle=False
    )


def refit_e0s_at_end(module: PotentialModule, data: PreparedData, cfg: RunConfig) -> dict:
    """Re-fit the exported model's E0s on the training frames; report training and validation energy RMSE
    (meV/atom) before and after (:mod:`mlip.training.e0_refit`)."""
    from mlip.training.e0_refit import energy_normal_equations

    train_loader, valid_loader = _refit_loaders(data, cfg)
    model = module.model
    before = model.atomic_energies.detach().cpu().clone()
    valid_eq = energy_normal_equations(model, valid_loader)
    report = module.refit_e0s(train_loader)
    delta = model.atomic_energies.detach().cpu() - before
    return {
        "train_energy_rmse_before": report.get("rmse_before"),
        "train_energy_rmse_after": report.get("rmse_after"),
        "valid_energy_rmse_before": valid_eq.rmse(),
        "valid_energy_rmse_after": valid_eq.rmse(delta),
        "train_frames": report.get("frames"),
        "delta_e0": report.get("delta_e0", {}),
    }


def write_outputs(module: PotentialModule, data: PreparedData, cfg: RunConfig, run_dir: Path) -> dict:
    """Re-fit the E0s (``train.refit_e0s``), export the EMA model and evaluate it on validation and test sets
    (every file written atomically)."""
    ctx = module.ema.applied(module._ema_target) if module.ema is not None else contextlib.nullcontext()
    with ctx:
        refit = refit_e0s_at_end(module, data, cfg) if cfg.train.refit_e0s != "none" else None
        model = module.model
        if has_adapters(model):  # W + ΔW written into the weights: an ordinary model file
            model = merge_adapters(copy.deepcopy(model))
        model.cpu()
        provenance = {"train_file": data_source(cfg.data), "config": cfg.to_dict()}
        if cfg.train.init_from is not None:
            provenance["init_from"] = str(cfg.train.init_from)
        save_model(model, run_dir / "model.pt", provenance=provenance)
        if module.replay_head is not None:
            replay_model = model_with_head(model, copy.deepcopy(module.replay_head).cpu())
            save_model(
                replay_model, run_dir / "model_replay_head.pt", provenance={**provenance, "head": "replay"}
            )
        scorer = convert_model(model).compile_network() if cfg.train.compile_eval else model
        budget = {"max_atoms": cfg.data.eval_max_atoms, "max_frames": cfg.data.valid_batch_size}
        results = {"valid": evaluate(scorer, data.valid, **budget)}
        tests = {n: evaluate(scorer, ds, **budget) for n, ds in data.tests.items()}
    metrics = {"valid": results["valid"].metrics(), "test": {n: acc.metrics() for n, acc in tests.items()}}
    metrics["parameters"] = module.parameter_counts()
    if module.adapter_report is not None:
        metrics["adapter"] = module.adapter_report
    if refit is not None:
        metrics["e0_refit"] = refit
    if module.stage_two is not None:
        metrics["stage_two"] = module.stage_two
    write_json_atomic(run_dir / "metrics.json", metrics)
    parity_plot(
        {"valid": results["valid"].arrays(), **{n: a.arrays() for n, a in tests.items()}},
        run_dir / "parity.png",
    )
    return metrics
