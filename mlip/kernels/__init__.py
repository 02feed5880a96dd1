"""Equivariant products: descriptors (what), reference and fast backends (how).

Features are channel-last, ``[..., irreps.dim, channels]`` (see :mod:`mlip.kernels.irreps`).
"""

from mlip.kernels.backend import Backend, cueq_available
from mlip.kernels.cg import clebsch_gordan, spherical_harmonics, wigner_d
from mlip.kernels.channelwise import ChannelwiseTPDescriptor, channelwise_tp
from mlip.kernels.cp import CPFactors, CPTensorProduct, cp_factors
from mlip.kernels.gaunt import SphereGrid, gaunt_alpha, gaunt_coefficients
from mlip.kernels.gaunt_fft import GauntFFTTP
from mlip.kernels.gaunt_grid import DegreeWeights, GauntGridTP, gaunt_product_reference
from mlip.kernels.irreps import Irrep, Irreps, parse_hidden_irreps
from mlip.kernels.linear import EquivariantLinear
from mlip.kernels.symmetric_contraction import SymmetricContraction, SymmetricContractionDescriptor
from mlip.kernels.vector_grid import VectorGridTP

__all__ = [
    "Backend",
    "CPFactors",
    "CPTensorProduct",
    "ChannelwiseTPDescriptor",
    "DegreeWeights",
    "GauntFFTTP",
    "GauntGridTP",
    "SphereGrid",
    "EquivariantLinear",
    "Irrep",
    "Irreps",
    "SymmetricContraction",
    "SymmetricContractionDescriptor",
    "VectorGridTP",
    "channelwise_tp",
    "clebsch_gordan",
    "cp_factors",
    "gaunt_alpha",
    "gaunt_coefficients",
    "gaunt_product_reference",
    "cueq_available",
    "parse_hidden_irreps",
    "spherical_harmonics",
    "wigner_d",
]
