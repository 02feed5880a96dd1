"""Typed training configuration. YAML is read only by ``train.py``; everything here is dataclasses."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(kw_only=True)
class DataConfig:
    """Where the data comes from and how it is split and labelled.

    ``train_file=None`` uses a built-in dataset: ``builtin: emt`` (default), the Cu–Au set of
    :func:`mlip.data.generate_emt_dataset` (``emt_frames`` to train and validate, ``emt_test_frames`` to test), or
    ``builtin: tosi_fumi_nacl``, the NaCl set of :func:`mlip.data.nacl.generate_nacl_dataset` (``nacl_frames``,
    and one test set of ``nacl_test_frames`` per configuration kind: ``nacl_crystal``, ``nacl_melt``,
    ``nacl_slab``, ``nacl_clusters``).
    ``e0s``: ``"isolated"`` (isolated-atom frames in ``train_file`` or ``e0_file``), ``"average"``
    (least squares), ``"zero"`` or a dict ``{symbol or Z: eV}``; ``None`` picks ``isolated`` when isolated-atom
    frames exist, else ``average``. ``split_by`` (e.g. ``mp_id``) keeps all frames sharing that ``info`` key on one
    side of the train/validation split. ``format``: ``preprocessed`` reads ``train_file`` as a directory written by
    ``mlip-preprocess`` (``auto``, the default, does so for any directory); ``files`` reads it with the readers.
    ``mptrj_energy``: ``uncorrected`` or ``corrected`` energies from MPtrj JSON. ``max_atoms_per_batch``: when
    set, training batches are filled up to that many atoms (and at most ``batch_size`` frames) by
    :class:`mlip.data.sampler.BudgetBatchSampler`, which also shares them out over distributed ranks.
    ``fixed_tags``: atoms with these tags count as fixed and are left out of the force loss (OC20: ``[0]``, the
    subsurface atoms). ``energy_references``: a file of per-system reference energies
    (:func:`mlip.data.references.load_energy_references`) subtracted from every frame, which turns OC20's total
    energies into adsorption energies; ``system_key`` is the ``info`` key with each frame's system id. For a
    preprocessed directory both are fixed when it is written (``mlip-preprocess --fixed-tags/--energy-references``)
    and must match its manifest here.
    """

    train_file: str | None = None
    valid_file: str | None = None
    test_files: list[str] = field(default_factory=list)
    e0_file: str | None = None
    e0s: Any = None
    valid_fraction: float = 0.1
    valid_last: int | None = None
    split_by: str | None = None
    format: str = "auto"
    mptrj_energy: str = "uncorrected"
    fixed_tags: list[int] = field(default_factory=list)
    energy_references: str | None = None
    system_key: str = "sid"
    energy_key: str | None = None
    forces_key: str | None = None
    stress_key: str | None = None
    virials_key: str | None = None
    charges_key: str | None = None
    batch_size: int = 10
    max_atoms_per_batch: int | None = None
    valid_batch_size: int = 20
    num_workers: int = 0
    seed: int = 0
    emt_frames: int = 160
    emt_test_frames: int = 40
    builtin: str = "emt"
    nacl_frames: int = 240
    nacl_test_frames: int = 20


@dataclass(kw_only=True)
class TrainConfig:
    """Optimisation, loss, precision, logging and the Lightning trainer's hardware flags.

    ``lr`` is the learning rate for one process's batch; with ``devices × num_nodes = k`` processes the global batch
    is ``k`` times larger and ``lr_scaling`` (``none``, ``linear`` or ``sqrt``) sets the rate actually used
    (:func:`mlip.training.schedule.scaled_lr`). Checkpoints (``RUN_DIR/checkpoints/last.ckpt``, for ``--resume``)
    are written at the end of every epoch, or every ``checkpoint_every_n_steps`` optimizer steps when set.
    """

    loss: str = "mse"
    huber_delta: float = 0.01
    energy_weight: float = 1.0
    forces_weight: float = 100.0
    stress_weight: float = 1.0
    charges_weight: float = 0.0
    optimizer: str = "adam"
    lr: float = 0.01
    lr_scaling: str = "none"
    weight_decay: float = 5e-7
    amsgrad: bool = True
    scheduler: str = "plateau"
    plateau_factor: float = 0.8
    plateau_patience: int = 50
    lr_final_factor: float = 0.01
    ema_decay: float | None = 0.99
    grad_clip: float | None = 10.0
    max_epochs: int = 100
    max_time: str | None = None
    dtype: str = "float32"
    accelerator: str = "cpu"
    devices: Any = 1
    strategy: str = "auto"
    num_nodes: int = 1
    seed: int = 0
    log_every_n_steps: int = 10
    progress_bar: bool = True
    check_val_every_n_epoch: int = 1
    checkpoint_every_n_steps: int | None = None


@dataclass(kw_only=True)
class RunConfig:
    """A whole run: ``model`` (a dict validated by the backbone's own dataclass), ``data`` and ``train``."""

    model: dict = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_dict(cls, raw: dict) -> RunConfig:
        unknown = sorted(set(raw) - {"model", "data", "train"})
        if unknown:
            raise ValueError(f"unknown top-level config section(s) {unknown}; use model, data, train")
        return cls(
            model=dict(raw.get("model") or {}),
            data=_build(DataConfig, raw.get("data") or {}, "data"),
            train=_build(TrainConfig, raw.get("train") or {}, "train"),
        )

    def to_dict(self) -> dict:
        return {
            "model": dict(self.model),
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
        }


def _build(cls, values: dict, section: str):
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} in section '{section}'; allowed: {sorted(allowed)}")
    return cls(**values)


DEFAULT_MODEL = {
    "name": "mace",
    "r_max": 4.5,
    "num_bessel": 8,
    "max_ell": 2,
    "channels": 16,
    "max_L": 1,
    "correlation": 2,
    "num_interactions": 2,
    "radial_mlp": [32, 32],
}
"""The small MACE of the built-in default job."""
