"""Typed model configurations. ``from_dict`` validates a plain dict (from YAML or a model file) into one."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from mlip.errors import MLIPInputError
from mlip.fields import check_fields
from mlip.kernels.backend import Backend
from mlip.kernels.product import ProductKind
from mlip.longrange.config import LongRangeConfig

PRODUCT_BASES = ("symmetric_contraction", "gaunt")
#: The first MACE layer's interaction block (:class:`MACEConfig`).
FIRST_INTERACTIONS = ("residual", "agnostic")
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


__all__ = [
    "parse_device",
    "parse_dtype",
    "check_backend",
    "BackboneConfig",
    "MACEConfig",
    "check_common",
    "config_from_dict",
    "config_to_dict",
    "PRODUCT_BASES",
    "FIRST_INTERACTIONS",
]


def parse_dtype(name: str | torch.dtype) -> torch.dtype:
    """``"float32"`` / ``"float64"`` (or the torch dtype) -> ``torch.dtype``."""
    if isinstance(name, torch.dtype):
        if name not in _DTYPES.values():
            raise MLIPInputError(f"unsupported dtype {name}; use float32 or float64")
        return name
    if name not in _DTYPES:
        raise MLIPInputError(f"unsupported dtype {name!r}; use 'float32' or 'float64'")
    return _DTYPES[name]


def parse_device(device: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` (or any device this torch build has) -> ``torch.device``, checked to
    exist here: an unknown name or a CUDA device on a CPU-only torch is a one-line :class:`MLIPInputError`
    (torch raises ``RuntimeError`` or ``AssertionError`` only when the first tensor is moved there)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise MLIPInputError(f"unknown device {device!r}; use 'cpu' or 'cuda' (or 'cuda:N')") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MLIPInputError(
            f"device {str(device)!r}: this torch ({torch.__version__}) sees no CUDA device; use --device cpu"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise MLIPInputError(f"device {str(device)!r}: there are {torch.cuda.device_count()} CUDA devices")
    try:
        torch.empty(0, device=dev)
    except (RuntimeError, AssertionError) as err:
        raise MLIPInputError(
            f"device {str(device)!r} cannot be used here ({' '.join(str(err).split())})"
        ) from None
    return dev


def check_backend(cfg, field_name: str, torch_only: bool) -> None:
    """``model.backend`` must be ``auto`` or ``torch`` when ``field_name``'s choice has only a PyTorch
    implementation (the backends never stand in for one another)."""
    if torch_only and cfg.backend not in ("auto", "torch"):
        raise MLIPInputError(
            f"model.backend {cfg.backend!r} implements tensor_product 'cg' and the symmetric contraction only; "
            f"model.{field_name} {getattr(cfg, field_name)!r} runs with backend 'auto' or 'torch'"
        )


@dataclass(frozen=True, kw_only=True)
class BackboneConfig:
    """The fields every backbone shares; a model's config subclasses it, adds its own fields and may redeclare a
    field to change its default.

    Attributes:
        atomic_numbers: supported elements Z, sorted.
        atomic_energies: E0 per element (eV), same order.
        r_max: cutoff (Å).
        num_bessel: radial Bessel functions.
        num_polynomial_cutoff: envelope exponent p.
        max_ell: highest degree of the edge spherical harmonics.
        channels: feature channels C (mace-torch ``num_channels``).
        max_L: highest degree of the hidden features (``Cx0e+Cx1o+...``).
        num_interactions: message-passing layers.
        radial_mlp: hidden sizes of the radial MLP.
        readout_mlp: hidden size of the last layer's MLP readout.
        avg_num_neighbors: message normalisation (from the training set).
        scale, shift: per-atom energy scale and shift (eV) of the interaction energy.
        dtype: ``"float32"`` or ``"float64"`` for the network (geometry and energies are float64 regardless).
        backend: kernel backend (:class:`~mlip.kernels.backend.Backend`; ``"auto"``: cuEquivariance's CUDA
            kernels on CUDA when installed, the native kernels on the CPU, else ``"torch"``; or ``"torch"``,
            ``"native"``, ``"reference"``, ``"cuequivariance"``, which only ``tensor_product: cg`` with the
            symmetric contraction has: other kinds take ``"auto"`` or ``"torch"``).
        tensor_product: the message product's kind (:class:`~mlip.kernels.product.ProductKind`: ``"cg"``,
            ``"gaunt_fft"``, ``"gaunt_grid"``, ``"vector_grid"``, ``"cp"``).
        radial: per-edge weights from ``"mlp"`` (radial MLP of the Bessel basis, as mace-torch) or ``"spline"``
            (:class:`~mlip.nn.spline.SplineRadial`, cubic B-splines of the distance, Facet's radial function).
        num_spline_knots: B-spline basis size for ``radial="spline"``.
        pair_repulsion: add the ZBL pair repulsion (:class:`~mlip.nn.pair.ZBLRepulsion`) to the interaction energy,
            inside the scale and shift as mace-torch's ``ScaleShiftMACE`` does.
        distance_transform: ``None``, or ``"agnesi"`` (:class:`~mlip.nn.pair.AgnesiTransform`): the radial basis
            reads the transformed distance (``radial="mlp"`` only).
        long_range: learned charges and their Coulomb energy
            (:class:`~mlip.longrange.config.LongRangeConfig`, or its dict); ``None`` for a short-range model.
    """

    name: str
    atomic_numbers: tuple[int, ...]
    atomic_energies: tuple[float, ...]
    r_max: float = 5.0
    num_bessel: int = 8
    num_polynomial_cutoff: int = 5
    max_ell: int = 3
    channels: int = 128
    max_L: int = 1
    num_interactions: int = 2
    radial_mlp: tuple[int, ...] = field(default=(64, 64, 64))
    readout_mlp: int = 16
    avg_num_neighbors: float = 1.0
    scale: float = 1.0
    shift: float = 0.0
    dtype: str = "float32"
    backend: str = "auto"
    tensor_product: str = "cg"
    radial: str = "mlp"
    num_spline_knots: int = 16
    long_range: LongRangeConfig | None = None
    pair_repulsion: bool = False
    distance_transform: str | None = None

    def __post_init__(self) -> None:
        check_common(self)
        for name in ("channels", "num_interactions"):
            if int(getattr(self, name)) < 1:
                raise MLIPInputError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_L > self.max_ell:
            raise MLIPInputError(f"model.max_L ({self.max_L}) cannot exceed max_ell ({self.max_ell})")
        kinds = [k.value for k in ProductKind]
        if self.tensor_product not in kinds:
            raise MLIPInputError(f"model.tensor_product must be one of {kinds}, got {self.tensor_product!r}")
        check_backend(self, "tensor_product", self.tensor_product != "cg")

    @classmethod
    def from_dict(cls, config: dict):
        return config_from_dict(cls, config)

    def to_dict(self) -> dict:
        return config_to_dict(self)


@dataclass(frozen=True, kw_only=True)
class MACEConfig(BackboneConfig):
    """MACE hyperparameters (Batatia et al. 2022; names follow mace-torch where they exist). Shared fields as
    :class:`BackboneConfig`; ``max_ell`` is also the highest degree of the messages A.

    Attributes:
        correlation: body order of the product basis minus one (ν_max).
        product_basis: ``"symmetric_contraction"`` (MACE) or ``"gaunt"``
            (:class:`~mlip.kernels.gaunt_product_basis.GauntProductBasis`).
        cp_rank: CP rank for ``tensor_product="cp"`` (default ``7 L^2``).
        first_interaction: ``"residual"`` (mace-torch's ``RealAgnosticResidualInteractionBlock`` in every layer)
            or ``"agnostic"`` (``RealAgnosticInteractionBlock`` in the first layer, mace-torch's default and that
            of the MACE foundation models: its element-dependent linear acts on the messages, and the first
            product has no skip connection).

    With ``tensor_product="vector_grid"`` the messages also carry the pseudotensors ``1e, 2o, ...`` of the odd
    couplings.
    """

    name: str = "mace"
    correlation: int = 3
    product_basis: str = "symmetric_contraction"
    cp_rank: int | None = None
    first_interaction: str = "residual"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.first_interaction not in FIRST_INTERACTIONS:
            raise MLIPInputError(
                f"model.first_interaction must be one of {FIRST_INTERACTIONS}, got {self.first_interaction!r}"
            )
        for name in ("num_bessel", "correlation"):
            if int(getattr(self, name)) < 1:
                raise MLIPInputError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        kind = ProductKind(self.tensor_product)
        if self.product_basis not in PRODUCT_BASES:
            raise MLIPInputError(
                f"model.product_basis must be one of {PRODUCT_BASES}, got {self.product_basis!r}"
            )
        check_backend(self, "product_basis", self.product_basis == "gaunt")
        if self.product_basis == "gaunt" and kind is ProductKind.VECTOR_GRID:
            raise MLIPInputError(
                "product_basis 'gaunt' needs natural-parity messages; tensor_product 'vector_grid' adds "
                "pseudotensors: use product_basis 'symmetric_contraction' with it"
            )
        if self.cp_rank is not None and (kind is not ProductKind.CP or self.cp_rank < 1):
            raise MLIPInputError(f"model.cp_rank={self.cp_rank} needs tensor_product 'cp' and a rank >= 1")


def check_common(cfg) -> None:
    """Validate and normalise the fields every backbone config shares (elements, E0s, cutoff, statistics, dtype,
    backend, radial network); tuples are frozen in place."""
    check_fields(cfg, "model")
    zs = tuple(int(z) for z in cfg.atomic_numbers)
    if not zs or list(zs) != sorted(set(zs)) or not all(1 <= z <= 118 for z in zs):
        raise MLIPInputError(
            f"model.atomic_numbers must be sorted, unique, in 1..118: got {cfg.atomic_numbers}"
        )
    if len(cfg.atomic_energies) != len(zs):
        raise MLIPInputError(
            f"atomic_energies needs one value per element ({len(zs)}), got {len(cfg.atomic_energies)}"
        )
    for name in ("max_ell", "max_L"):
        if getattr(cfg, name) < 0:
            raise MLIPInputError(f"model.{name} must be >= 0, got {getattr(cfg, name)}")
    for name in ("num_polynomial_cutoff", "readout_mlp"):
        if getattr(cfg, name) < 1:
            raise MLIPInputError(f"model.{name} must be >= 1, got {getattr(cfg, name)}")
    if any(width < 1 for width in cfg.radial_mlp):
        raise MLIPInputError(f"model.radial_mlp widths must be >= 1, got {list(cfg.radial_mlp)}")
    for name in ("r_max", "avg_num_neighbors", "scale"):
        if not getattr(cfg, name) > 0:
            raise MLIPInputError(f"model.{name} must be > 0, got {getattr(cfg, name)}")
    parse_dtype(cfg.dtype)
    Backend(cfg.backend)
    if cfg.radial not in ("mlp", "spline"):
        raise MLIPInputError(f"model.radial must be 'mlp' or 'spline', got {cfg.radial!r}")
    if cfg.distance_transform not in (None, "agnesi"):
        raise MLIPInputError(
            f"model.distance_transform must be null or 'agnesi', got {cfg.distance_transform!r}"
        )
    if cfg.distance_transform is not None and cfg.radial != "mlp":
        raise MLIPInputError(
            "model.distance_transform needs radial 'mlp' (the spline reads the distance itself)"
        )
    if not isinstance(cfg.pair_repulsion, bool):
        raise MLIPInputError(f"model.pair_repulsion must be true or false, got {cfg.pair_repulsion!r}")
    if cfg.num_spline_knots < 4:
        raise MLIPInputError(f"model.num_spline_knots must be >= 4, got {cfg.num_spline_knots}")
    if isinstance(cfg.long_range, dict):
        object.__setattr__(cfg, "long_range", LongRangeConfig.from_dict(cfg.long_range))
    elif cfg.long_range is not None and not isinstance(cfg.long_range, LongRangeConfig):
        raise MLIPInputError(f"model.long_range must be a mapping or null, got {cfg.long_range!r}")
    object.__setattr__(cfg, "atomic_numbers", zs)
    object.__setattr__(cfg, "atomic_energies", tuple(float(e) for e in cfg.atomic_energies))
    object.__setattr__(cfg, "radial_mlp", tuple(int(x) for x in cfg.radial_mlp))


def config_from_dict(cls, config: dict):
    """``cls(**config)`` after refusing unknown keys with the list of allowed ones."""
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise MLIPInputError(
            f"unknown {config.get('name', cls.__name__)} option(s) {unknown}; allowed: {sorted(allowed)}"
        )
    return cls(**config)


def config_to_dict(cfg) -> dict:
    d = dataclasses.asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
