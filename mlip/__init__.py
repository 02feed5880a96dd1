"""mlip: equivariant machine-learned interatomic potentials.

Layers (each imports only from those above it): :mod:`mlip.keys`; :mod:`mlip.kernels` and :mod:`mlip.data`;
:mod:`mlip.nn`; :mod:`mlip.models`; :mod:`mlip.training` and :mod:`mlip.calculators`.
"""

from mlip.version import __version__  # the package version (PEP 440)


def load_model(path, device="cpu", dtype=None):
    """Load a deployable model file (see :func:`mlip.models.io.load_model`)."""
    from mlip.models.io import load_model as _load

    return _load(path, device=device, dtype=dtype)


def predict(model, frames, **options):
    """Energies, forces, stress (and charges) of many structures, batched (see
    :func:`mlip.inference.predict.predict`)."""
    from mlip.inference.predict import predict as _predict

    return _predict(model, frames, **options)


def hessian(atoms, model, **options):
    """``[3N, 3N]`` Hessian of the energy (eV/Å²) by autograd (see :func:`mlip.inference.hessian.hessian`)."""
    from mlip.inference.hessian import hessian as _hessian

    return _hessian(atoms, model, **options)


__all__ = ["__version__", "hessian", "load_model", "predict"]
