"""What every consumer of a trained model shares (``../shared/DESIGN.md``, layer 6): one model loader
(:func:`resolve_model`), batching under atom and edge budgets (:func:`batched_outputs`), :func:`predict`, Hessians
(:func:`hessian`) and chunked evaluation of large systems (:func:`chunked_evaluate`). Training's end-of-run
evaluation, the calculators, the simulation engines and ``mlip-eval`` all go through it."""

from mlip.inference.batching import batched_outputs
from mlip.inference.chunked import chunked_evaluate
from mlip.inference.hessian import hessian
from mlip.inference.loader import resolve_model
from mlip.inference.predict import PredictionError, Predictions, iter_predict, predict

__all__ = [
    "PredictionError",
    "Predictions",
    "batched_outputs",
    "chunked_evaluate",
    "hessian",
    "iter_predict",
    "predict",
    "resolve_model",
]
