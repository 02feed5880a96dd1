"""Low-rank adapters for fine-tuning: LoRA on channel-mixing matrices, Tucker cores (FLoRA) on higher-order tensors.

A pretrained weight ``W`` is frozen and the adapter learns a correction ``ΔW`` of few parameters; the model
computes with ``W + ΔW``, and :func:`merge_adapters` writes that sum back into ``W`` for deployment (no cost at run
time, an ordinary model file).

LoRA (Hu et al., arXiv:2106.09685) on a matrix ``W [n_in, n_out]`` (or a stack ``W [..., n_in, n_out]``, one
adapter per leading index: per irrep and element of an element-dependent linear):

.. math::  ΔW = \\frac{α}{r} A B, \\qquad A \\in ℝ^{n_{in} × r} \\sim \\mathcal N(0, 1/n_{in}),\\; B = 0 \\in ℝ^{r × n_{out}}

Tucker core (FLoRA, "Low-Rank Core Space for N-dimension", 2025) on a tensor ``W [n_1, ..., n_N]`` (MACE's
symmetric-contraction weights ``[elements, paths, channels]``, element-dependent linears
``[irreps, elements, C_in, C_out]``):

.. math::  ΔW = \\frac{α}{r}\\, G ×_1 U_1 ×_2 U_2 \\cdots ×_N U_N, \\qquad G = 0 \\in ℝ^{r_1 × \\cdots × r_N},\\;
           U_k \\in ℝ^{n_k × r_k} \\text{ orthonormal columns},\\; r_k = \\min(r, n_k)

with ``Π r_k + Σ n_k r_k`` parameters instead of ``Π n_k``, keeping the tensor's modes apart instead of
flattening it into a matrix. Both start at ``ΔW = 0``, so training starts from the pretrained model exactly.

Equivariance: every adapted tensor is indexed by channels, paths, irreps or elements, never by the magnetic index
``m`` (which lives in fixed coupling buffers), so ``W + ΔW`` is a weight of the same equivariant layer and the
adapted model is exactly as equivariant as the base model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import torch
from torch import nn
from torch.nn.utils import parametrize

from mlip.errors import MLIPInputError
from mlip.models.selection import match_parameters

__all__ = [
    "AdapterKind",
    "AdapterConfig",
    "LoRA",
    "TuckerAdapter",
    "attach_adapters",
    "merge_adapters",
    "has_adapters",
    "DEFAULT_TARGETS",
]


class AdapterKind(str, Enum):
    """``lora``: low-rank matrices on channel-mixing weights; ``tucker``: Tucker cores on higher-order tensors."""

    LORA = "lora"
    TUCKER = "tucker"


#: Default parameter-name patterns each adapter kind adapts (those a backbone lacks are skipped).
DEFAULT_TARGETS: dict[AdapterKind, tuple[str, ...]] = {
    AdapterKind.LORA: (
        "interactions.*.linear_up.weights.*",
        "interactions.*.linear.weights.*",
        "mixers.*.lift.weights.*",
        "mixers.*.output.weights.*",
        "mixers.*.skip.weights.*",
        "products.*.linear.weights.*",
    ),
    AdapterKind.TUCKER: (
        "products.*.contraction.weight",
        "interactions.*.skip.weight",
        "mixers.*.w1",
        "mixers.*.w2",
    ),
}


@dataclass(frozen=True, kw_only=True)
class AdapterConfig:
    """Which adapter, where, and what else trains.

    Attributes:
        kind: :class:`AdapterKind` (``"lora"`` or ``"tucker"``).
        rank: ``r`` (per mode for Tucker, capped at each mode's size).
        alpha: scale numerator ``α`` of ``ΔW``; ``None``: ``α = r`` (scale 1).
        targets: parameter-name patterns (``fnmatch``) to adapt; ``None``: :data:`DEFAULT_TARGETS` of ``kind``.
            Each given pattern must match a parameter of at least two axes.
        trainable: patterns of parameters trained in full beside the adapters (default: the readouts); every other
            base parameter is frozen.
    """

    kind: AdapterKind
    rank: int = 4
    alpha: float | None = None
    targets: tuple[str, ...] | None = None
    trainable: tuple[str, ...] = ("readouts.*",)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", AdapterKind(self.kind))
        except ValueError:
            raise MLIPInputError(
                f"train.adapter.kind must be one of {[k.value for k in AdapterKind]}, got {self.kind!r}"
            ) from None
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise MLIPInputError(f"train.adapter.rank must be an integer >= 1, got {self.rank!r}")
        if self.alpha is not None and not (isinstance(self.alpha, (int, float)) and self.alpha > 0):
            raise MLIPInputError(f"train.adapter.alpha must be > 0 or null, got {self.alpha!r}")
        for name in ("targets", "trainable"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise MLIPInputError(f"train.adapter.{name} must be a list of name patterns, got {value!r}")
            object.__setattr__(self, name, tuple(value))

    @classmethod
    def from_dict(cls, raw: dict) -> AdapterConfig:
        if not isinstance(raw, dict) or "kind" not in raw:
            raise MLIPInputError(
                f"train.adapter must be a mapping with a 'kind' (lora or tucker), got {raw!r}"
            )
        unknown = sorted(set(raw) - {"kind", "rank", "alpha", "targets", "trainable"})
        if unknown:
            raise MLIPInputError(
                f"unknown train.adapter option(s) {unknown}; allowed: kind, rank, alpha, targets, trainable"
            )
        return cls(**raw)

    @property
    def factor(self) -> float:
        """The factor ``α / r`` of ``ΔW``."""
        return (self.alpha if self.alpha is not None else self.rank) / self.rank


class LoRA(nn.Module):
    """Parametrization ``W -> W + s A B`` of a weight ``[..., n_in, n_out]`` (see the module docstring)."""

    def __init__(self, weight: torch.Tensor, rank: int, scale: float) -> None:
        super().__init__()
        *lead, n_in, n_out = weight.shape
        r = min(rank, n_in, n_out)
        opts = {"dtype": weight.dtype, "device": weight.device}
        self.a = nn.Parameter(torch.randn(*lead, n_in, r, **opts) / math.sqrt(n_in))
        self.b = nn.Parameter(torch.zeros(*lead, r, n_out, **opts))
        self.scale = float(scale)

    def delta(self) -> torch.Tensor:
        return self.scale * (self.a @ self.b)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + self.delta()


class TuckerAdapter(nn.Module):
    """Parametrization ``W -> W + s G ×_1 U_1 ... ×_N U_N`` of a tensor ``[n_1, ..., n_N]`` (module docstring)."""

    def __init__(self, weight: torch.Tensor, rank: int, scale: float) -> None:
        super().__init__()
        opts = {"dtype": weight.dtype, "device": weight.device}
        ranks = [min(rank, n) for n in weight.shape]
        self.core = nn.Parameter(torch.zeros(*ranks, **opts))
        gen = torch.Generator().manual_seed(0x7C0E + weight.numel())
        factors = []
        for n, r in zip(weight.shape, ranks):
            q, _ = torch.linalg.qr(torch.randn(n, r, generator=gen, dtype=torch.float64))
            factors.append(nn.Parameter(q.to(**opts)))
        self.factors = nn.ParameterList(factors)
        self.scale = float(scale)

    def delta(self) -> torch.Tensor:
        out = self.core
        for k, u in enumerate(self.factors):  # mode-k product: contract axis k of out with u's second axis
            out = torch.movedim(torch.tensordot(out, u, dims=([k], [1])), -1, k)
        return self.scale * out

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + self.delta()


def attach_adapters(model: nn.Module, config: AdapterConfig) -> dict:
    """Freeze ``model``'s parameters, attach adapters to the targets, unfreeze ``config.trainable``; in place.

    Returns a report: ``{"kind", "rank", "adapted": {name: adapter parameters}, "adapter_parameters",
    "trainable_parameters", "base_parameters"}``.
    """
    if has_adapters(model):
        raise MLIPInputError("this model already has adapters; merge them (merge_adapters) first")
    params = dict(model.named_parameters())
    base_count = sum(p.numel() for p in params.values())
    explicit = config.targets is not None
    patterns = config.targets if explicit else DEFAULT_TARGETS[config.kind]
    matches = match_parameters(
        model, patterns, key="train.adapter.targets", required=explicit, where=lambda n, p: p.ndim >= 2,
        what="weight of two or more axes",
    )  # fmt: skip
    targets = list(dict.fromkeys(n for hit in matches.values() for n in hit))
    if not targets:
        raise MLIPInputError(f"no {config.kind.value} adapter target in the {model.config.name} model")
    for p in model.parameters():
        p.requires_grad_(False)
    cls = LoRA if config.kind is AdapterKind.LORA else TuckerAdapter
    adapted = {}
    for name in targets:
        owner, _, attr = name.rpartition(".")
        module = model.get_submodule(owner)
        adapter = cls(params[name].detach(), config.rank, config.factor)
        parametrize.register_parametrization(module, attr, adapter, unsafe=False)
        adapted[name] = sum(p.numel() for p in adapter.parameters())
    selected = match_parameters(
        model, config.trainable, key="train.adapter.trainable", where=lambda n, p: "parametrizations" not in n
    )
    for names in selected.values():
        for name in names:
            model.get_parameter(name).requires_grad_(True)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "kind": config.kind.value,
        "rank": config.rank,
        "adapted": adapted,
        "adapter_parameters": sum(adapted.values()),
        "trainable_parameters": trainable,
        "base_parameters": base_count,
    }


def has_adapters(model: nn.Module) -> bool:
    """Whether any submodule of ``model`` carries an adapter parametrization."""
    return any(parametrize.is_parametrized(m) for m in model.modules())


def merge_adapters(model: nn.Module) -> nn.Module:
    """Write ``W + ΔW`` into every adapted weight and remove the adapters, in place; returns ``model``, whose
    parameter names and state dict are then those of the base architecture (frozen flags are reset to trainable)."""
    for module in list(model.modules()):
        if parametrize.is_parametrized(module):
            for attr in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(module, attr, leave_parametrized=True)
    for p in model.parameters():
        p.requires_grad_(True)
    return model
