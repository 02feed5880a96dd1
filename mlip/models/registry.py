"""Backbone registry: ``name -> (config class, model class)``; ``build_model(dict)`` validates and builds."""

from __future__ import annotations

from torch import nn

from mlip.errors import MLIPInputError
from mlip.models.config import MACEConfig
from mlip.models.facet import Facet, FacetConfig
from mlip.models.mace import MACE
from mlip.models.tdn import TDN, TDNConfig

#: Backbone name -> (config dataclass, model class); ``build_model`` and the model file look names up here.
REGISTRY: dict[str, tuple[type, type[nn.Module]]] = {
    "mace": (MACEConfig, MACE),
    "facet": (FacetConfig, Facet),
    "tdn": (TDNConfig, TDN),
}


__all__ = ["build_model", "check_model_section", "REGISTRY"]


def build_model(config: dict) -> nn.Module:
    """Build the backbone named ``config["name"]`` from the rest of ``config`` (validated by its dataclass)."""
    if "name" not in config:
        raise MLIPInputError(f"model config needs a 'name' (one of {sorted(REGISTRY)})")
    name = config["name"]
    if name not in REGISTRY:
        raise MLIPInputError(f"unknown model {name!r}; available: {sorted(REGISTRY)}")
    config_cls, model_cls = REGISTRY[name]
    return model_cls(config_cls.from_dict(dict(config)))


def check_model_section(config: dict) -> None:
    """Validate a model section before the data that completes it is read: every field is checked by the
    backbone's dataclass, with one placeholder element standing in for the elements and E0s the training data
    will give."""
    if not isinstance(config, dict):
        raise MLIPInputError(f"the model section must be a mapping, got {config!r}")
    name = config.get("name")
    if name not in REGISTRY:
        raise MLIPInputError(f"unknown model {name!r}; available: {sorted(REGISTRY)}")
    config_cls, _ = REGISTRY[name]
    config_cls.from_dict({"atomic_numbers": [1], "atomic_energies": [0.0], **config})
