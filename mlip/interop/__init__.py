"""Bridges to other libraries: :mod:`mlip.interop.pyg` (PyTorch Geometric data) and :mod:`mlip.interop.e3nn`
(e3nn irreps, layouts and tensor products). Each is imported on its own, so that neither library is needed to
import mlip."""

__all__: list[str] = []  # the modules are the public units, each with its own __all__
