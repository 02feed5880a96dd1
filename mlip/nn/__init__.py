"""Building blocks shared by the models: radial bases, cutoffs, radial MLPs and splines, the spherical-grid MLP,
readouts."""

from mlip.nn.grid_mlp import GridMLP
from mlip.nn.radial import BesselBasis, PolynomialCutoff, RadialMLP
from mlip.nn.readout import LinearReadout, MLPReadout
from mlip.nn.spline import SplineRadial

__all__ = [
    "BesselBasis",
    "GridMLP",
    "LinearReadout",
    "MLPReadout",
    "PolynomialCutoff",
    "RadialMLP",
    "SplineRadial",
]
