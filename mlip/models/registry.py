"""Backbone registry: ``name -> (config class, model class)``; ``build_model(dict)`` validates and builds."""

from __future__ import annotations

from torch import nn

from mlip.models.config import MACEConfig
from mlip.models.facet import Facet, FacetConfig
from mlip.models.mace import MACE
from mlip.models.tdn import TDN, TDNConfig

REGISTRY: dict[str, tuple[type, type[nn.Module]]] = {
    "mace": (MACEConfig, MACE),
    "facet": (FacetConfig, Facet),
    "tdn": (TDNConfig, TDN),
}


def build_model(config: dict) -> nn.Module:
    """Build the backbone named ``config["name"]`` from the rest of ``config`` (validated by its dataclass)."""
    if "name" not in config:
        raise ValueError(f"model config needs a 'name' (one of {sorted(REGISTRY)})")
    name = config["name"]
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {sorted(REGISTRY)}")
    config_cls, model_cls = REGISTRY[name]
    return model_cls(config_cls.from_dict(dict(config)))
