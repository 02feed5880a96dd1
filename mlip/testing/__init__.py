"""The physics test kit: checks any mlip model can be run through (see :mod:`mlip.testing.suite`)."""

from mlip.testing import structures
from mlip.testing.physics import (
    batch_error,
    cutoff_smoothness,
    force_fd_error,
    permutation_error,
    predict,
    random_rotation,
    reflection_error,
    rotation_error,
    stress_fd_error,
    translation_error,
)

__all__ = [
    "batch_error",
    "cutoff_smoothness",
    "force_fd_error",
    "permutation_error",
    "predict",
    "random_rotation",
    "reflection_error",
    "rotation_error",
    "stress_fd_error",
    "structures",
    "translation_error",
]
