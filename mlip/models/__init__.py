"""Backbones built from the kernels, the model registry and the model file."""

from mlip.models.adapters import AdapterConfig, attach_adapters, merge_adapters
from mlip.models.base import EdgePotential, NodeFeatures
from mlip.models.committee import load_committee, save_committee
from mlip.models.config import BackboneConfig, MACEConfig, parse_device, parse_dtype
from mlip.models.facet import EquivariantRMSNorm, Facet, FacetConfig
from mlip.models.heads import EnergyHead, model_with_head
from mlip.models.interaction import InteractionBlock, ProductBlock
from mlip.models.io import convert_model, load_model, save_model
from mlip.models.mace import MACE
from mlip.models.registry import REGISTRY, build_model
from mlip.models.tdn import TDN, TDNConfig

__all__ = [
    "AdapterConfig",
    "EnergyHead",
    "attach_adapters",
    "merge_adapters",
    "load_committee",
    "save_committee",
    "model_with_head",
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
    "parse_device",
    "parse_dtype",
    "save_model",
]
