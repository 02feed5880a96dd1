"""Backbones built from the kernels, the model registry and the model file."""

from mlip.models.base import EdgePotential, NodeFeatures
from mlip.models.config import BackboneConfig, MACEConfig, parse_dtype
from mlip.models.facet import EquivariantRMSNorm, Facet, FacetConfig
from mlip.models.interaction import InteractionBlock, ProductBlock
from mlip.models.io import convert_model, load_model, save_model
from mlip.models.mace import MACE
from mlip.models.registry import REGISTRY, build_model
from mlip.models.tdn import TDN, TDNConfig

__all__ = [
    "BackboneConfig",
    "EdgePotential",
    "EquivariantRMSNorm",
    "InteractionBlock",
    "MACE",
    "ProductBlock",
    "REGISTRY",
    "Facet",
    "FacetConfig",
    "MACEConfig",
    "NodeFeatures",
    "TDN",
    "TDNConfig",
    "build_model",
    "convert_model",
    "load_model",
    "parse_dtype",
    "save_model",
]
