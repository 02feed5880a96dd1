"""Building blocks shared by the models: radial bases, cutoffs, radial MLPs and splines, readouts."""

from mlip.nn.radial import BesselBasis, PolynomialCutoff, RadialMLP
from mlip.nn.readout import LinearReadout, MLPReadout
from mlip.nn.spline import SplineRadial

__all__ = ["BesselBasis", "LinearReadout", "MLPReadout", "PolynomialCutoff", "RadialMLP", "SplineRadial"]
