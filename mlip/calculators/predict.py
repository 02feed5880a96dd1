"""Moved to :mod:`mlip.inference.predict`; this module keeps the old import path."""

from mlip.inference.predict import PredictionError, Predictions, iter_predict, predict

__all__ = ["PredictionError", "Predictions", "iter_predict", "predict"]
