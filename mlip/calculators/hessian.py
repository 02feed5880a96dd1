"""Moved to :mod:`mlip.inference.hessian`; this module keeps the old import path."""

from mlip.inference.hessian import hessian

__all__ = ["hessian"]
