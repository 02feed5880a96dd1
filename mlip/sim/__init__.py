"""Simulation engines: the TorchSim model, batched relaxation and molecular dynamics (ASE and TorchSim), and the
single-structure relaxation of an ASE calculator."""

from mlip.sim.relax import relax

__all__ = ["relax"]
