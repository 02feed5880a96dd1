"""Training: Lightning module, losses, EMA, metrics, plots and the run driver.

Its modules are the public units (each lists its public names in ``__all__``); the package imports none of them,
so that ``import mlip.training.config`` does not load Lightning.
"""

__all__: list[str] = []
