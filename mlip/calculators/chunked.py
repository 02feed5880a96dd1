"""Moved to :mod:`mlip.inference.chunked`; this module keeps the old import path."""

from mlip.inference.chunked import chunked_evaluate

__all__ = ["chunked_evaluate"]
