"""Moved to :mod:`mlip.datasets.nacl` (the generator needs :mod:`mlip.longrange`, a layer above :mod:`mlip.data`).
This module keeps the old import path working; it is the one declared exception of the layer contract
(``pyproject.toml``), and ``import mlip.data`` does not import it."""

from mlip.datasets.nacl import TosiFumiNaCl, generate_nacl_dataset

__all__ = ["TosiFumiNaCl", "generate_nacl_dataset"]
