"""Typed training configuration. YAML is read only by ``train.py``; everything here is dataclasses.

Every value is checked when the dataclass is built (types by :func:`mlip.fields.check_fields`, then ranges and
choices), so a bad config fails with one line naming ``section.key`` before any data is read.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlip.data.spec import DataSpec
from mlip.data.stress_check import StressTransform
from mlip.errors import MLIPFileNotFoundError, MLIPInputError
from mlip.fields import check_choice, check_fields, check_range
from mlip.models.adapters import AdapterConfig
from mlip.models.registry import check_model_section

__all__ = ["DataConfig", "TrainConfig", "RunConfig", "parse_max_time", "DEFAULT_MODEL"]


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
    The final evaluation of the exported model (validation and test sets) batches the way :func:`mlip.predict`
    does: at most ``eval_max_atoms`` atoms and ``valid_batch_size`` frames per batch, a larger frame alone.
    ``fixed_tags``: atoms with these tags count as fixed and are left out of the force loss (OC20: ``[0]``, the
    subsurface atoms). ``energy_references``: a file of per-system reference energies
    (:func:`mlip.data.references.load_energy_references`) subtracted from every frame, which turns OC20's total
    energies into adsorption energies; ``system_key`` is the ``info`` key with each frame's system id. For a
    preprocessed directory both are fixed when it is written (``mlip-preprocess --fixed-tags/--energy-references``)
    and must match its manifest here. ``config_type_weights`` (``{config_type: w}``, mace-torch's option of the
    same name) multiplies the loss weight of every training frame whose ``config_type`` (extxyz ``info``) is listed;
    frames of other types keep weight 1, and a listed type that no training frame has is refused (a misspelling
    would otherwise change nothing). ``check_units`` refuses labels of implausible magnitude (stress in kBar,
    energies in kcal/mol: :mod:`mlip.data.units`); set it false only for data that really lie outside its bounds.
    ``check_stress`` compares the training file's stress labels with the energies of its strained copies of one
    structure (:mod:`mlip.data.stress_check`) and refuses labels that a reordering or a sign flip fits clearly
    better; ``stress_transform`` (``none``, ``swap_xz_yz``, ``swap_xy_xz``, ``swap_xy_yz``, ``negate``) applies
    such a fix to every stress label of every file as it is read.

    ``pbc`` (three true/false flags) gives every frame that periodicity as it is read: ``[true, true, false]`` makes
    OC20's frames (periodic in all three directions, vacuum above the slab) slabs, which a long-range model sums
    in two periodic directions (:mod:`mlip.longrange.slab`); a preprocessed directory records it.

    Multihead replay (:mod:`mlip.training.replay`, needs ``train.init_from``): ``replay_file`` (a file or an
    ``mlip-preprocess`` directory of the pretraining data) trains the pretraining head beside the new data's;
    ``replay_fraction`` of its frames (at most ``replay_max_frames``) are sampled once, and every step adds one
    batch of ``replay_batch_size`` (default ``batch_size``) of them.
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
    config_type_weights: dict[str, float] = field(default_factory=dict)
    energy_key: str | None = None
    forces_key: str | None = None
    stress_key: str | None = None
    virials_key: str | None = None
    charges_key: str | None = None
    batch_size: int = 10
    max_atoms_per_batch: int | None = None
    valid_batch_size: int = 20
    eval_max_atoms: int = 4096
    num_workers: int = 0
    seed: int = 0
    emt_frames: int = 160
    emt_test_frames: int = 40
    builtin: str = "emt"
    nacl_frames: int = 240
    nacl_test_frames: int = 20
    check_units: bool = True
    stress_transform: str = "none"
    check_stress: bool = True
    replay_file: str | None = None
    replay_fraction: float = 1.0
    replay_max_frames: int | None = None
    replay_batch_size: int | None = None
    pbc: list[bool] | None = None

    def __post_init__(self) -> None:
        check_fields(self, "data")
        if self.pbc is not None and len(self.pbc) != 3:
            raise MLIPInputError(
                f"data.pbc must be three true/false flags, e.g. [true, true, false], got {self.pbc}"
            )
        check_range(self, "data", "replay_fraction", low=0.0, high=1.0, low_open=True)
        for name in ("replay_max_frames", "replay_batch_size"):
            check_range(self, "data", name, low=1)
        check_choice(self, "data", "format", ("auto", "files", "preprocessed"))
        check_choice(self, "data", "mptrj_energy", ("uncorrected", "corrected"))
        check_choice(self, "data", "builtin", ("emt", "tosi_fumi_nacl"))
        check_choice(self, "data", "stress_transform", tuple(t.value for t in StressTransform))
        check_range(self, "data", "valid_fraction", low=0.0, high=1.0, low_open=True, high_open=True)
        for name in ("valid_last", "batch_size", "valid_batch_size", "max_atoms_per_batch", "eval_max_atoms",
                     "emt_test_frames", "nacl_test_frames"):  # fmt: skip
            check_range(self, "data", name, low=1)
        for name in ("emt_frames", "nacl_frames"):
            check_range(self, "data", name, low=2)
        check_range(self, "data", "num_workers", low=0)
        _check_e0s(self.e0s)
        for k, v in self.config_type_weights.items():
            if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise MLIPInputError(
                    f"data.config_type_weights must map config_type names to weights >= 0, got {k!r}: {v!r}"
                )

    @classmethod
    def from_dict(cls, values: dict) -> DataConfig:
        """Validate a ``data`` section (unknown keys named)."""
        if not isinstance(values, dict):
            raise MLIPInputError(f"config section 'data' must be a mapping, got {values!r}")
        return _build(cls, values, "data")

    def spec(self) -> DataSpec:
        """The data specification of this section (:class:`mlip.data.spec.DataSpec`): how every frame of the run,
        from files or a store, in training, validation, tests and replay, is labelled."""
        names = ("energy_key", "forces_key", "stress_key", "virials_key", "charges_key", "fixed_tags", "check_units",
                 "stress_transform", "mptrj_energy", "energy_references", "system_key", "check_stress", "e0_file",
                 "pbc")  # fmt: skip
        return DataSpec.from_options(**{name: getattr(self, name) for name in names})

    def input_files(self) -> dict[str, str]:
        """``{"data.<key>": path}`` of every file or directory this section names."""
        files = {
            f"data.{k}": getattr(self, k)
            for k in ("train_file", "valid_file", "e0_file", "energy_references", "replay_file")
        }
        files.update({f"data.test_files[{i}]": p for i, p in enumerate(self.test_files)})
        return {k: v for k, v in files.items() if v is not None}


@dataclass(kw_only=True)
class TrainConfig:
    """Optimisation, loss, precision, logging and the Lightning trainer's hardware flags.

    ``lr`` is the learning rate for one process's batch; with ``devices × num_nodes = k`` processes the global batch
    is ``k`` times larger and ``lr_scaling`` (``none``, ``linear`` or ``sqrt``) sets the rate actually used
    (:func:`mlip.training.schedule.scaled_lr`). Checkpoints (``RUN_DIR/checkpoints/last.ckpt``, for ``--resume``)
    are written at the end of every epoch, or every ``checkpoint_every_n_steps`` optimizer steps when set.

    Loss (:mod:`mlip.training.losses`): ``loss`` is the default ``ρ`` of every property (``mse`` or ``huber``
    with threshold ``huber_delta``); ``energy_loss``, ``forces_loss`` and ``stress_loss`` override it per property
    (forces also take ``conditional_huber``, MACE-MP-0's loss, with ``conditional_huber_thresholds`` in eV/Å).
    ``energy_per_atom`` (default true) fits the energy per atom (eV/atom), else the total energy (eV).

    Stage two (:mod:`mlip.training.stage_two`, mace-torch's ``--swa`` stage): from the fraction
    ``stage_two_start`` of the budget (the larger of the ``max_epochs`` and ``max_time`` fractions) on, the loss
    weights become ``stage_two_energy_weight`` / ``stage_two_forces_weight`` / ``stage_two_stress_weight`` (``None``:
    unchanged) and the learning rate at most ``stage_two_lr``; ``None`` (the default) keeps one stage.
    ``refit_e0s`` re-fits the per-element reference energies to the training residuals by least squares
    (:mod:`mlip.training.e0_refit`): ``end`` (default, on the exported EMA model), ``stage_two_and_end`` (also
    when stage two starts) or ``none``; ``refit_e0s_max_frames`` caps the frames of the fit (evenly spaced).

    Fine-tuning (:mod:`mlip.training.finetune`): ``init_from`` starts from a model file (weights, ``E_0``,
    scale and shift; new elements extend it); ``init_refit_e0s`` re-fits the ``E_0`` to the new training data
    before the first step (for data from another level of theory); ``freeze`` lists parameter-name patterns that do
    not train; ``lr_groups`` (``{pattern: lr}``) sets learning rates per group; ``adapter``
    (:class:`~mlip.models.adapters.AdapterConfig` as a mapping: ``kind`` lora or tucker, ``rank``, ...) trains
    low-rank adapters instead of the weights and merges them into the exported model; ``replay_weight`` weighs the
    replay head's loss (``data.replay_file``). ``committee: N`` trains N models with seeds ``seed, seed+1, ...``
    into ``RUN_DIR/member_k`` and writes ``committee.pt`` (:mod:`mlip.models.committee`).

    ``compile_eval`` runs the final validation and test evaluation of the exported model through
    ``torch.compile`` (:meth:`~mlip.models.base.EdgePotential.compile_network`; inference only, so training itself
    stays eager).
    """

    loss: str = "mse"
    huber_delta: float = 0.01
    energy_loss: str | None = None
    forces_loss: str | None = None
    stress_loss: str | None = None
    energy_per_atom: bool = True
    conditional_huber_thresholds: list[float] = field(default_factory=lambda: [100.0, 200.0, 300.0])
    energy_weight: float = 1.0
    forces_weight: float = 100.0
    stress_weight: float = 1.0
    charges_weight: float = 0.0
    stage_two_start: float | None = None
    stage_two_energy_weight: float | None = 1000.0
    stage_two_forces_weight: float | None = None
    stage_two_stress_weight: float | None = None
    stage_two_lr: float | None = 1.0e-3
    refit_e0s: str = "end"
    refit_e0s_max_frames: int | None = None
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
    compile_eval: bool = False
    init_from: str | None = None
    init_refit_e0s: bool = False
    freeze: list[str] = field(default_factory=list)
    lr_groups: dict[str, float] = field(default_factory=dict)
    adapter: dict | None = None
    replay_weight: float = 1.0
    committee: int = 1

    def __post_init__(self) -> None:
        check_fields(self, "train")
        check_range(self, "train", "replay_weight", low=0.0)
        check_range(self, "train", "committee", low=1)
        if not all(isinstance(p, str) and p for p in self.freeze):
            raise MLIPInputError(
                f"train.freeze must be a list of parameter-name patterns, got {self.freeze!r}"
            )
        for k, v in self.lr_groups.items():
            if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise MLIPInputError(
                    f"train.lr_groups must map name patterns to learning rates > 0, got {k!r}: {v!r}"
                )
        if self.adapter is not None:
            AdapterConfig.from_dict(self.adapter)
        if self.adapter is not None and self.init_from is None:
            raise MLIPInputError(
                "train.adapter needs train.init_from (adapters fine-tune a trained model; on a new model they "
                "would train on frozen random weights)"
            )
        if self.init_refit_e0s and self.init_from is None:
            raise MLIPInputError(
                "train.init_refit_e0s needs train.init_from (the model whose E0s are re-fitted)"
            )
        check_choice(self, "train", "loss", ("mse", "huber"))
        for name in ("energy_loss", "stress_loss"):
            if getattr(self, name) is not None:
                check_choice(self, "train", name, ("mse", "huber"))
        if self.forces_loss is not None:
            check_choice(self, "train", "forces_loss", ("mse", "huber", "conditional_huber"))
        check_choice(self, "train", "refit_e0s", ("none", "end", "stage_two_and_end"))
        check_range(self, "train", "stage_two_start", low=0.0, high=1.0, high_open=True)
        check_range(self, "train", "refit_e0s_max_frames", low=1)
        t = self.conditional_huber_thresholds
        if len(t) != 3 or t != sorted(t):
            raise MLIPInputError(
                f"train.conditional_huber_thresholds must be 3 increasing numbers (eV/Å), got {t!r}"
            )
        check_choice(self, "train", "optimizer", ("adam", "adamw"))
        check_choice(self, "train", "scheduler", ("plateau", "cosine", "none"))
        check_choice(self, "train", "lr_scaling", ("none", "linear", "sqrt"))
        check_choice(self, "train", "dtype", ("float32", "float64"))
        check_choice(self, "train", "accelerator", ("cpu", "gpu", "cuda", "mps", "tpu", "auto"))
        for name in ("lr", "huber_delta", "grad_clip", "stage_two_lr"):
            check_range(self, "train", name, low=0.0, low_open=True)
        for name in ("energy_weight", "forces_weight", "stress_weight", "charges_weight", "weight_decay",
                     "stage_two_energy_weight", "stage_two_forces_weight", "stage_two_stress_weight"):  # fmt: skip
            check_range(self, "train", name, low=0.0)
        check_range(self, "train", "plateau_factor", low=0.0, high=1.0, low_open=True, high_open=True)
        check_range(self, "train", "lr_final_factor", low=0.0, high=1.0, low_open=True)
        check_range(self, "train", "ema_decay", low=0.0, high=1.0, low_open=True, high_open=True)
        for name in ("max_epochs", "num_nodes", "log_every_n_steps", "check_val_every_n_epoch",
                     "checkpoint_every_n_steps"):  # fmt: skip
            check_range(self, "train", name, low=1)
        check_range(self, "train", "plateau_patience", low=0)
        self.max_time = parse_max_time(self.max_time)
        self.devices = _check_devices(self.devices)


@dataclass(kw_only=True)
class RunConfig:
    """A whole run: ``model`` (a dict validated by the backbone's own dataclass), ``data`` and ``train``. With
    ``train.init_from`` the model section may be empty or name only some keys: the rest comes from the file."""

    model: dict = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_dict(cls, raw: dict) -> RunConfig:
        """Validate a plain dict (sections ``model``, ``data``, ``train``; a missing or empty ``model`` section
        is the default job's small MACE, :data:`DEFAULT_MODEL`)."""
        if not isinstance(raw, dict):
            raise MLIPInputError(f"a config must be a mapping with sections model, data, train; got {raw!r}")
        unknown = sorted(set(raw) - {"model", "data", "train"})
        if unknown:
            raise MLIPInputError(f"unknown top-level config section(s) {unknown}; use model, data, train")
        for name in ("model", "data", "train"):
            if raw.get(name) is not None and not isinstance(raw[name], dict):
                raise MLIPInputError(f"config section '{name}' must be a mapping, got {raw[name]!r}")
        return cls(
            model=copy.deepcopy(dict(raw.get("model") or {})),
            data=_build(DataConfig, raw.get("data") or {}, "data"),
            train=_build(TrainConfig, raw.get("train") or {}, "train"),
        )

    def __post_init__(self) -> None:
        if self.train.init_from is None:
            if not self.model:  # the default job's model
                self.model = copy.deepcopy(DEFAULT_MODEL)
            self.model.setdefault("name", "mace")
            check_model_section(self.model)
        elif "name" in self.model:
            # a model section beside train.init_from names the keys it changes; without a name, its backbone is
            # the file's, and the file is checked against it when the run starts (before any data is read),
            # never here: validating a config reads no model file
            check_model_section(self.model)
        else:  # the keys shared by every backbone are checked by the default backbone's dataclass
            shared = {k: v for k, v in self.model.items() if k in ("dtype", "backend")}
            check_model_section({"name": "mace", **shared})
        if self.data.replay_file is not None and self.train.init_from is None:
            raise MLIPInputError(
                "data.replay_file needs train.init_from: the replay head starts as the pretrained model's head"
            )

    def input_files(self) -> dict[str, str]:
        """``{"data.<key>" or "train.init_from": path}`` of every file or directory the run reads."""
        files = self.data.input_files()
        if self.train.init_from is not None:
            files["train.init_from"] = self.train.init_from
        return files

    def check_inputs_exist(self) -> None:
        """Refuse a config naming a data or model file that does not exist (before any file is read)."""
        for key, path in self.input_files().items():
            if not Path(path).exists():
                raise MLIPFileNotFoundError(f"{key}: no such file or directory: {path}")

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
        raise MLIPInputError(
            f"unknown option(s) {unknown} in section '{section}'; allowed: {sorted(allowed)}"
        )
    return cls(**values)


_E0_CHOICES = ("isolated", "average", "zero")


def _check_e0s(spec) -> None:
    if spec is None or spec in _E0_CHOICES:
        return
    if isinstance(spec, dict):
        from ase.data import atomic_numbers

        for k, v in spec.items():
            known = (isinstance(k, int) and 1 <= k <= 118) or (isinstance(k, str) and k in atomic_numbers)
            if not known:
                raise MLIPInputError(f"data.e0s: {k!r} is not an element symbol or atomic number")
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise MLIPInputError(f"data.e0s[{k!r}] must be a number (eV), got {v!r}")
        return
    raise MLIPInputError(
        f"data.e0s must be one of {list(_E0_CHOICES)}, a mapping {{element: eV}} or null; got {spec!r}"
    )


_TIME = re.compile(r"^(?:(\d+):)?(\d+):(\d+):(\d+)$")


def parse_max_time(value) -> str | None:
    """``"DD:HH:MM:SS"`` (or ``"HH:MM:SS"``) -> the canonical ``"DD:HH:MM:SS"`` Lightning reads; ``None`` passes.

    A number is refused: YAML reads an unquoted ``1:30`` as 90 (base 60), which could mean minutes or hours.
    """
    if value is None:
        return None
    m = _TIME.match(value.strip())
    if not m:
        raise MLIPInputError(f"train.max_time must be 'DD:HH:MM:SS' (e.g. \"00:01:30:00\"), got {value!r}")
    d, h, mi, s = (int(x or 0) for x in m.groups())
    if h >= 24 or mi >= 60 or s >= 60:
        raise MLIPInputError(f"train.max_time {value!r}: hours must be < 24, minutes and seconds < 60")
    if d == h == mi == s == 0:
        raise MLIPInputError(f"train.max_time must be longer than zero, got {value!r}")
    return f"{d:02d}:{h:02d}:{mi:02d}:{s:02d}"


def _check_devices(value):
    """``train.devices``: a count >= 1, -1 (all), ``"auto"``, or a list of device indices."""
    if value == "auto" or value == -1:
        return value
    if isinstance(value, bool):
        raise MLIPInputError(f"train.devices must be a count, -1, 'auto' or a list of indices, got {value!r}")
    if isinstance(value, int) and value >= 1:
        return value
    if isinstance(value, str) and value.isdigit() and int(value) >= 1:
        return int(value)
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                  for v in value):  # fmt: skip
        return value
    raise MLIPInputError(
        f"train.devices must be a count >= 1, -1, 'auto' or a list of indices, got {value!r}"
    )


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
