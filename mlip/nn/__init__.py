"""Building blocks shared by the models: radial bases, cutoffs, radial MLPs, readouts."""

from mlip.nn.radial import BesselBasis, PolynomialCutoff, RadialMLP
from mlip.nn.readout import LinearReadout, MLPReadout

__all__ = ["BesselBasis", "LinearReadout", "MLPReadout", "PolynomialCutoff", "RadialMLP"]
